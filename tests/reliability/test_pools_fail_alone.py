"""Pools fail alone (SPEC §3): in a Django process, a pool whose server is down or
hung costs nothing to requests that never use it. The engine is still built, the
failure is logged once naming the pool, ``check --deploy`` reports it, a use of
the pool raises ``PoolError`` naming it within a bounded time (at once while it
stays away), and the pool is used again once its server is back.

The Kafka and ClickHouse servers are the project's own (Tansu, clickhouse-server),
reached through a loopback proxy the test turns off, hangs and turns on again.
"""

from __future__ import annotations

import io
import logging
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from fluxa_django import Context, PoolError, get_engine
from fluxa_django.conf import reset_engine
from tests.cache_helpers import wait_until
from tests.reliability.proxy import Proxy
from tests.reliability.summary import LINES
from tests.services import CLICKHOUSE_URI, KAFKA_BROKER, REDIS_ADDRESS, REDIS_TEST_DB

KAFKA_HOST, _, KAFKA_PORT = KAFKA_BROKER.rpartition(":")
_CLICKHOUSE = urllib.parse.urlsplit(CLICKHOUSE_URI)


@pytest.fixture
def own_engine(fluxa_ctx: Context) -> Iterator[None]:
    """Each test builds its engine from its settings; the session engine is kept aside
    (``fluxa_ctx``: empty tables and Redis, the Django test database)."""
    from fluxa_django import conf

    saved = conf._engine
    conf._engine = None
    yield
    reset_engine()
    conf._engine = saved


@pytest.fixture
def proxies() -> Iterator[tuple[Proxy, Proxy]]:
    kafka = Proxy(int(KAFKA_PORT), KAFKA_HOST)
    clickhouse = Proxy(_CLICKHOUSE.port or 9000, _CLICKHOUSE.hostname or "127.0.0.1")
    yield kafka, clickhouse
    kafka.close()
    clickhouse.close()


def settings_with(kafka: Proxy, clickhouse: Proxy) -> dict[str, Any]:
    return {
        "POOLS": {
            "default": {
                "mysql": {"database": "default"},
                "redis": f"{REDIS_ADDRESS}:{REDIS_TEST_DB}",
                "local_cache": 1000,
            },
            "search": {"redis": f"{REDIS_ADDRESS}:0"},
            "events": {"kafka": {"brokers": [kafka.address]}},
            "analytics": {"clickhouse": {"uri": f"clickhouse://{clickhouse.address}/default"}},
        },
        "ENTITIES": ["tests.entities"],
        "OPTIONS": {"app_name": "fluxa-tests"},
    }


def timed_request(client: Client, name: str) -> float:
    started = time.monotonic()
    response = client.get("/create/", {"name": name})
    assert response.status_code == 200, response.content
    return time.monotonic() - started


def test_dead_optional_pools_cost_other_requests_nothing(
    own_engine: None, proxies: tuple[Proxy, Proxy], caplog: pytest.LogCaptureFixture
) -> None:
    kafka, clickhouse = proxies
    kafka.refuse()
    clickhouse.refuse()
    caplog.set_level(logging.WARNING, logger="fluxa_django")
    with override_settings(FLUXA=settings_with(kafka, clickhouse)):
        engine = get_engine()
        assert set(engine.unavailable) == {"kafka:events", "clickhouse:analytics"}
        logged = [
            r.getMessage() for r in caplog.records if "unavailable at start" in r.getMessage()
        ]
        assert len(logged) == 2 and any("'events'" in m for m in logged)
        client = Client()
        timed_request(client, "warm-up")  # the first request imports the views
        waits = [timed_request(client, f"alone {i}") for i in range(5)]
        assert max(waits) < 2.0, f"requests that use no dead pool waited {waits}"

        with pytest.raises(PoolError, match="clickhouse pool 'analytics'"):
            engine.clickhouse("analytics").query("SELECT 1")
        started = time.monotonic()
        with pytest.raises(PoolError, match="kafka pool 'events'"):
            engine.kafka("events").produce_sync("fluxa_alone", b"x", timeout=1.0)
        first = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(PoolError, match=r"kafka pool 'events'.*not tried again"):
            engine.kafka("events").produce_sync("fluxa_alone", b"x", timeout=1.0)
        again = time.monotonic() - started
        assert again < 1.0, f"the second use waited {again:.2f} s for a pool known to be down"

        plan = io.StringIO()
        call_command("fluxa_migrate", "--plan", stdout=plan)  # needs only MySQL: works
        out = io.StringIO()
        call_command("check", "--deploy", stdout=out, stderr=out)
        report = out.getvalue()
        assert "fluxa.W100" in report and "clickhouse pool analytics" in report

        clickhouse.forward()  # the server is back: used again, without a restart
        wait_until(lambda: _answers(engine, "analytics"), timeout=10.0, interval=0.2)
        LINES.append(
            f"pools fail alone: 5 requests with kafka+clickhouse down took at most "
            f"{max(waits) * 1000:.0f} ms; a dead kafka pool failed its first use after "
            f"{first:.2f} s and the next at once ({again * 1000:.0f} ms)"
        )


def _answers(engine: Any, code: str) -> bool:
    try:
        return bool(engine.clickhouse(code).query_row("SELECT 1") == (1,))
    except PoolError:
        return False


def test_a_hung_optional_pool_fails_a_use_within_its_connect_timeout(
    own_engine: None, proxies: tuple[Proxy, Proxy]
) -> None:
    kafka, clickhouse = proxies
    kafka.forward()
    clickhouse.hang()  # accepts connections, never answers
    with override_settings(FLUXA=settings_with(kafka, clickhouse)):
        engine = get_engine()
        assert "clickhouse:analytics" in engine.unavailable
        started = time.monotonic()
        with pytest.raises(PoolError, match="clickhouse pool 'analytics'"):
            engine.clickhouse("analytics").query("SELECT 1")
        waited = time.monotonic() - started
        assert waited < 5.0, f"a use waited {waited:.2f} s (connect timeout 2 s)"
        started = time.monotonic()
        with pytest.raises(PoolError, match="not tried again"):
            engine.clickhouse("analytics").query("SELECT 1")
        assert time.monotonic() - started < 1.0, "a pool known to hang is not waited for again"
        client = Client()
        timed_request(client, "warm-up")
        assert timed_request(client, "while clickhouse hangs") < 2.0
