"""What Redis holds is not trusted: a corrupt or forged row entry is a logged miss
that gets replaced, a unique-index key never yields a row without the looked-up
values, two different index values never share a key, and ids no row can have
cost no I/O at all."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxa_django import Context
from fluxa_django.runtime import codec
from fluxa_django.testing.plugin import QueryCounter
from tests.cache_helpers import products, redis_value, tiers_of
from tests.generated import ProductEntityProvider, UserEntityProvider

P = ProductEntityProvider
AssertQueries = Callable[..., AbstractContextManager[QueryCounter]]


def _forged(stamp: str, row: list[Any]) -> bytes:
    """An entry in the current format whose row holds what the caller likes."""
    return codec.encode_row(stamp, row)  # msgpack.ExtType values are packed as they are


@pytest.mark.parametrize(
    "damage",
    [
        "bad decimal",
        "bad date",
        "truncated",
        "not msgpack",
        "another id",
        "row too short",
    ],
)
def test_a_corrupt_row_entry_is_a_logged_miss_and_is_replaced(
    fluxa_ctx: Context, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    first, second = products(fluxa_ctx, 2)
    engine = fluxa_ctx.engine
    tiers = tiers_of(engine, P)
    P.get_by_ids(engine.new_context(), [first.id, second.id])  # both cached in Redis
    good = redis_value(engine, P, first.id)
    assert good is not None
    row = list(codec.decode_row(tiers.stamp, good) or ())
    bad: bytes
    if damage == "bad decimal":
        bad = _forged(tiers.stamp, [*row[:2], msgpack.ExtType(1, b"not a number"), *row[3:]])
    elif damage == "bad date":
        bad = _forged(tiers.stamp, [*row[:-2], msgpack.ExtType(3, b"yesterday"), row[-1]])
    elif damage == "truncated":
        bad = good[:-3]
    elif damage == "not msgpack":
        bad = codec.stamp_prefix(tiers.stamp) + b"\xc1\xc1\xc1"
    elif damage == "another id":
        other = redis_value(engine, P, second.id)
        assert other is not None
        bad = other
    else:
        bad = _forged(tiers.stamp, row[:3])
    tiers.client.set(tiers.key(first.id), bad)
    assert tiers.local is not None
    tiers.local.clear()  # the local tier would answer before Redis
    caplog.set_level(logging.WARNING, logger="fluxa_django.cache")
    from fluxa_django.runtime import tiers as tiers_module

    tiers_module._warned.clear()
    found = P.must_get_by_id(engine.new_context(), first.id)
    assert found.id == first.id and found.name == first.name
    assert any("not its row" in r.getMessage() for r in caplog.records)
    replaced = redis_value(engine, P, first.id)
    assert replaced is not None and replaced != bad
    assert codec.decode_row(tiers.stamp, replaced) == codec.decode_row(tiers.stamp, good)


def test_a_forged_unique_key_never_returns_a_row_without_the_values(fluxa_ctx: Context) -> None:
    dune, neuromancer = products(fluxa_ctx, 2, prefix="Book")
    engine = fluxa_ctx.engine
    tiers = tiers_of(engine, P)
    key = tiers.unique_key("Name", codec.unique_token((dune.name,)))
    tiers.client.set(key, str(neuromancer.id))  # points at the other row
    found = P.get_by_unique_index_name(engine.new_context(), dune.name)
    assert found is not None and found.id == dune.id
    assert tiers.client.get(key) == str(dune.id).encode(), "the key was set right"


def test_two_column_values_that_joined_with_nul_collide_get_different_tokens() -> None:
    assert codec.unique_token(("a\x00str:x", "y")) != codec.unique_token(("a", "x\x00str:y"))
    assert codec.unique_token((1, "2")) != codec.unique_token(("1", 2))
    assert codec.unique_token((b"x",)) != codec.unique_token(("x",))


_INDEX_VALUE = st.one_of(st.text(max_size=8), st.integers(), st.binary(max_size=8), st.none())


@settings(max_examples=500, deadline=None)
@given(
    a=st.lists(_INDEX_VALUE, min_size=1, max_size=3),
    b=st.lists(_INDEX_VALUE, min_size=1, max_size=3),
)
def test_unique_tokens_are_equal_only_for_equal_values(a: list[Any], b: list[Any]) -> None:
    same = [(type(x), x) for x in a] == [(type(y), y) for y in b]
    assert (codec.unique_token(tuple(a)) == codec.unique_token(tuple(b))) == same


@pytest.mark.parametrize("id_", [0, -1, -(2**70), 2**64, 2**200])
def test_impossible_ids_cost_no_round_trip_and_cache_nothing(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries, id_: int
) -> None:
    engine = fluxa_ctx.engine
    before = engine.redis().client.dbsize()
    with fluxa_assert_queries(mysql=0, redis=0):
        assert UserEntityProvider.get_by_id(fluxa_ctx, id_) is None
        assert P.get_by_id(engine.new_context(), id_) is None
        assert UserEntityProvider.get_by_ids(fluxa_ctx, [id_, id_]) == []
    assert engine.redis().client.dbsize() == before


def test_impossible_ids_among_real_ones_are_skipped(fluxa_ctx: Context) -> None:
    (product,) = products(fluxa_ctx, 1)
    ctx = fluxa_ctx.engine.new_context()
    ctx.disable_context_cache()
    asked: list[str] = []
    ctx.register_query_logger(lambda e: asked.append(e["query"]), mysql=False, local=False)
    found = P.get_by_ids(ctx, [0, product.id, 2**64])
    assert [p.id for p in found] == [product.id]
    # one GET of the possible id (not an MGET of three), then its lease and fill
    assert asked[0] == tiers_of(fluxa_ctx.engine, P).key(product.id)
    assert all(q == "1 key(s)" for q in asked[1:]), asked
