"""The local-cache invalidation listener survives anything on its channel: a
malformed message is logged and ignored, and a listener that fails for any reason
subscribes again, so the local tier keeps being invalidated (SPEC §5)."""

from __future__ import annotations

import logging
from typing import Any

import msgpack
import pytest

from fluxa_django import Context, Engine
from fluxa_django.backends.localcache import MISSING
from tests.cache_helpers import bus_of, local_row, settled_products, wait_until
from tests.generated import ProductEntityProvider

P = ProductEntityProvider


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
    (product,) = settled_products(fluxa_ctx, reader, 1)
    caplog.set_level(logging.WARNING, logger="fluxa_django.cache")
    bus = bus_of(reader)
    client = reader.redis().client
    for payload in MALFORMED:
        assert client.publish(bus.channel, payload) >= 1
    listener = bus._thread
    assert listener is not None

    def seen_by_the_reader() -> int:  # the session engine's listener logs them too
        return sum(
            "malformed invalidation" in r.getMessage() and r.thread == listener.ident
            for r in caplog.records
        )

    wait_until(lambda: seen_by_the_reader() >= len(MALFORMED), timeout=5.0)
    assert bus.healthy
    still_invalidates(fluxa_ctx, reader, product.id, "After garbage")


def test_a_listener_that_fails_subscribes_again(
    fluxa_ctx: Context, reader: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    (product,) = settled_products(fluxa_ctx, reader, 1)
    bus = bus_of(reader)
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
    (product,) = settled_products(fluxa_ctx, reader, 1)
    bus = bus_of(reader)
    subscribed = bus.subscriptions
    bus.stop()  # the thread ends as if it had died
    assert not bus.healthy
    bus._stop.clear()  # not stopped on purpose: the next read must bring it back
    P.get_by_id(reader.new_context(), product.id)
    wait_until(lambda: bus.healthy and bus.subscriptions > subscribed, timeout=5.0)
    still_invalidates(fluxa_ctx, reader, product.id, "After a dead listener")
