"""Prometheus metrics (optional extra): round trips and tier hits/misses are counted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from fluxa_django import Context, metrics
from tests.generated import UserEntity, UserEntityProvider


@pytest.fixture
def sink(fluxa_ctx: Context) -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    previous = metrics.METRICS
    metrics.METRICS = metrics.Metrics(registry)
    metrics.METRICS.track(fluxa_ctx.engine)
    try:
        yield registry
    finally:
        metrics.METRICS = previous


def _new_user(ctx: Context) -> UserEntity:
    user = UserEntityProvider.new(ctx)
    user.name = "Ann"
    user.email = "ann@example.com"
    ctx.flush()
    return user


def test_round_trips_and_redis_tier_results_are_counted(
    fluxa_ctx: Context, sink: CollectorRegistry
) -> None:
    user = _new_user(fluxa_ctx)
    engine = fluxa_ctx.engine
    assert UserEntityProvider.get_by_id(engine.new_context(), user.id) is not None  # miss, fill
    assert UserEntityProvider.get_by_id(engine.new_context(), user.id) is not None  # hit

    def value(name: str, **labels: str) -> float:
        found = sink.get_sample_value(name, labels)
        return 0.0 if found is None else found

    assert value("fluxa_cache_requests_total", entity="UserEntity", tier="redis", result="hit") == 1
    assert (
        value("fluxa_cache_requests_total", entity="UserEntity", tier="redis", result="miss") == 1
    )
    assert (
        value("fluxa_queries_seconds_count", source="mysql", pool="default", operation="insert")
        == 1
    )
    assert (
        value("fluxa_queries_seconds_count", source="mysql", pool="default", operation="select")
        == 1
    )
    assert (
        value("fluxa_queries_seconds_count", source="redis", pool="default", operation="get") == 2
    )
    assert (
        value("fluxa_queries_seconds_count", source="redis", pool="default", operation="mark") == 1
    )
    assert value("fluxa_local_cache_keys", pool="default") == engine.local_cache("default").usage()


def test_enable_is_idempotent_and_off_by_default(fluxa_ctx: Context) -> None:
    previous = metrics.METRICS
    metrics.METRICS = None
    try:
        assert fluxa_ctx.engine.option("metrics") is None  # the test settings leave it off
        registry = CollectorRegistry()
        first = metrics.enable(fluxa_ctx.engine, registry)
        assert metrics.enable(fluxa_ctx.engine, registry) is first  # no duplicate registration
        keys = registry.get_sample_value("fluxa_local_cache_keys", {"pool": "default"})
        assert keys == fluxa_ctx.engine.local_cache("default").usage()
    finally:
        metrics.METRICS = previous
