"""The local-cache invalidation listener survives anything on its channel: a
malformed message is logged and ignored, and a listener that fails for any reason
subscribes again, so the local tier keeps being invalidated (SPEC §5)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from fluxa_django import Context, Engine
from fluxa_django.backends.localcache import MISSING
from fluxa_django.runtime.invalidation import InvalidationBus
from tests.cache_helpers import build_engine, local_row, products, tiers_of, wait_until
from tests.generated import ProductEntityProvider
from tests.services import REDIS_ADDRESS, REDIS_TEST_DB

P = ProductEntityProvider


@pytest.fixture
def reader(fluxa_ctx: Context) -> Iterator[Engine]:
    """Another process's engine: its local tier must learn of the session engine's writes."""
    engine = build_engine(fluxa_ctx.engine.mysql().database, REDIS_ADDRESS, REDIS_TEST_DB)
    try:
        assert bus_of(engine).ensure_started(wait=5.0)
        yield engine
    finally:
        engine.close()


def bus_of(engine: Engine) -> InvalidationBus:
    bus = tiers_of(engine, P).bus
    assert bus is not None
    return bus


def still_invalidates(writer: Context, reader: Engine, product_id: int, name: str) -> None:
    """A write through ``writer`` evicts ``reader``'s local copy (within 5 s)."""
    assert P.must_get_by_id(reader.new_context(), product_id).name != name
    assert local_row(reader, P, product_id) is not MISSING, "the reader holds the row locally"
    ctx = writer.engine.new_context()
    product = P.must_get_by_id(ctx, product_id)
    product.name = name
    ctx.flush()
    wait_until(lambda: local_row(reader, P, product_id) is MISSING, timeout=5.0)
    assert P.must_get_by_id(reader.new_context(), product_id).name == name


MALFORMED = [
    b"not msgpack \xc1",
    msgpack.packb(7),
    msgpack.packb(["sender", 5]),
    msgpack.packb([b"s", [["default", ["not", "a", "prefix"], [1]]]]),
    msgpack.packb([b"s", [["default", "fx:{x}:", ["one", "two"]]]]),
    msgpack.packb([b"s", [[1, 2]]]),
    msgpack.packb({"a": 1}),
    b"",
]


def test_malformed_messages_are_logged_and_ignored(
    fluxa_ctx: Context, reader: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    (product,) = products(fluxa_ctx, 1)
    caplog.set_level(logging.WARNING, logger="fluxa_django.cache")
    bus = bus_of(reader)
    client = reader.redis().client
    for payload in MALFORMED:
        assert client.publish(bus.channel, payload) >= 1
    wait_until(
        lambda: (
            sum("malformed invalidation" in r.getMessage() for r in caplog.records)
            >= len(MALFORMED)
        ),
        timeout=5.0,
    )
    assert bus.healthy
    still_invalidates(fluxa_ctx, reader, product.id, "After garbage")


def test_a_listener_that_fails_subscribes_again(
    fluxa_ctx: Context, reader: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = bus_of(reader)
    received = bus.received
    (product,) = products(fluxa_ctx, 1)
    # the flush's two messages (before the SQL, after the commit) reach the reader first
    wait_until(lambda: bus.received >= received + 2, timeout=5.0)
    failures: list[int] = []
    real = bus.evict_here

    def broken_once(items: Any, block_ms: int = 0) -> None:
        if not failures:
            failures.append(1)
            raise RuntimeError("a bug in the listener")
        real(items, block_ms)

    monkeypatch.setattr(bus, "evict_here", broken_once)
    subscribed = bus.subscriptions
    reader.redis().client.publish(
        bus.channel, msgpack.packb([b"other", [["default", "fx:{none}:", [1]]]])
    )
    wait_until(lambda: bool(failures), timeout=5.0)
    wait_until(lambda: bus.healthy and bus.subscriptions > subscribed, timeout=5.0)
    still_invalidates(fluxa_ctx, reader, product.id, "After a listener failure")


def test_a_dead_listener_thread_is_started_again(fluxa_ctx: Context, reader: Engine) -> None:
    (product,) = products(fluxa_ctx, 1)
    bus = bus_of(reader)
    subscribed = bus.subscriptions
    bus.stop()  # the thread ends as if it had died
    assert not bus.healthy
    bus._stop.clear()  # not stopped on purpose: the next read must bring it back
    P.get_by_id(reader.new_context(), product.id)
    wait_until(lambda: bus.healthy and bus.subscriptions > subscribed, timeout=5.0)
    still_invalidates(fluxa_ctx, reader, product.id, "After a dead listener")
