"""The cache tiers (context -> local -> Redis -> MySQL) against real MariaDB + Redis.

ProductEntity has the local tier, the Redis row cache and the cached unique index
"Name"; UserEntity has the Redis row cache only. "Fresh context" means a new
``Context``: its own context cache is empty, so its reads go to the shared tiers.
"""

from __future__ import annotations

import datetime
import os
import signal
import statistics
import threading
import time
import traceback
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from django.db import transaction

from fluxa_django import Context, Engine, Query
from fluxa_django.backends.localcache import MISSING
from fluxa_django.runtime import codec
from fluxa_django.runtime.tiers import LEASE_MS, LOCAL_TTL, REDIS_TTL
from tests.cache_helpers import (
    AssertQueries,
    build_engine,
    local_row,
    new_category,
    new_product,
    products,
    redis_value,
    settled_products,
    tiers_of,
    users,
    wait_until,
)
from tests.entities import Tag
from tests.generated import (
    CategoryEntityProvider,
    ProductEntity,
    ProductEntityProvider,
    Status,
    UserEntityProvider,
)
from tests.services import REDIS_ADDRESS, REDIS_TEST_DB

P = ProductEntityProvider
U = UserEntityProvider


@pytest.fixture
def engine(fluxa_ctx: Context) -> Engine:
    """The session engine, with empty tiers and its invalidation listener up."""
    engine = fluxa_ctx.engine
    assert engine.local_cache().usage() == 0
    bus = tiers_of(engine, P).bus
    assert bus is not None
    assert bus.ensure_started(wait=5.0), "the local cache invalidation listener did not start"
    return engine


def fresh(engine: Engine) -> Context:
    return engine.new_context()


def mysql_row(engine: Engine, provider: Any, id_: int) -> tuple[Any, ...] | None:
    rows = engine.mysql().query(f"{provider.select_sql} WHERE `id` = ?", id_)
    return tuple(rows[0]) if rows else None


def warm(engine: Engine, provider: Any, *ids: int) -> None:
    """Read the rows once in a fresh context: fills Redis (and the local tier)."""
    provider.get_by_ids(fresh(engine), ids)


# -- 1. round trips -----------------------------------------------------------------------


def test_context_cache_hit_costs_no_round_trip(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    product = products(fluxa_ctx, 1)[0]
    user = users(fluxa_ctx, 1)[0]
    reader = fresh(engine)
    first_product = P.must_get_by_id(reader, product.id)
    first_user = U.must_get_by_id(reader, user.id)
    with fluxa_assert_queries(mysql=0, redis=0):
        assert P.get_by_id(reader, product.id) is first_product
        assert U.get_by_id(reader, user.id) is first_user
        assert P.get_by_ids(reader, [product.id]) == [first_product]


def test_local_hit_costs_no_round_trip(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    product = products(fluxa_ctx, 1)[0]
    warm(engine, P, product.id)
    assert local_row(engine, P, product.id) is not MISSING
    with fluxa_assert_queries(mysql=0, redis=0):
        found = P.must_get_by_id(fresh(engine), product.id)
    assert found.name == product.name
    assert found is not product


def test_redis_hit_costs_exactly_one_get(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    user = users(fluxa_ctx, 1)[0]
    warm(engine, U, user.id)
    with fluxa_assert_queries(mysql=0, redis=1) as counter:
        found = U.must_get_by_id(fresh(engine), user.id)
    assert counter.operations == [("redis", "get")]
    assert (found.name, found.email, found.age) == (user.name, user.email, user.age)


def test_cold_miss_reads_mysql_once_and_fills_redis(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    user = users(fluxa_ctx, 1)[0]
    assert redis_value(engine, U, user.id) is None
    with fluxa_assert_queries(mysql=1, redis=3) as counter:
        found = U.must_get_by_id(fresh(engine), user.id)
    assert counter.operations == [
        ("redis", "get"),
        ("redis", "lease"),
        ("mysql", "select"),
        ("redis", "fill"),
    ]
    assert found.name == user.name
    cached = redis_value(engine, U, user.id)
    assert cached is not None
    assert codec.decode_row(U.cache_stamp, cached) == mysql_row(engine, U, user.id)
    assert tiers_of(engine, U).client.ttl(tiers_of(engine, U).key(user.id)) > REDIS_TTL - 60
    with fluxa_assert_queries(mysql=0, redis=1):
        U.must_get_by_id(fresh(engine), user.id)


def test_cold_miss_fills_local_and_redis(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    product = products(fluxa_ctx, 1)[0]
    with fluxa_assert_queries(mysql=1, redis=3):
        P.must_get_by_id(fresh(engine), product.id)
    assert local_row(engine, P, product.id) == mysql_row(engine, P, product.id)
    assert redis_value(engine, P, product.id) is not None
    with fluxa_assert_queries(mysql=0, redis=0):
        assert P.must_get_by_id(fresh(engine), product.id).name == product.name


def test_get_by_ids_of_100_cached_ids_is_one_redis_round_trip(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    made = users(fluxa_ctx, 100)
    ids = [u.id for u in made]
    warm(engine, U, *ids)
    wanted = list(reversed(ids))
    with fluxa_assert_queries(mysql=0, redis=1) as counter:
        found = U.get_by_ids(fresh(engine), wanted)
    assert counter.operations == [("redis", "mget")]
    assert [u.id for u in found] == wanted
    assert {u.id: u.name for u in found} == {u.id: u.name for u in made}


def test_get_by_ids_of_100_locally_cached_ids_costs_nothing(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    made = products(fluxa_ctx, 100)
    ids = [p.id for p in made]
    warm(engine, P, *ids)
    with fluxa_assert_queries(mysql=0, redis=0):
        found = P.get_by_ids(fresh(engine), ids)
    assert [p.id for p in found] == ids
    engine.local_cache().clear()  # Redis only now
    with fluxa_assert_queries(mysql=0, redis=1) as counter:
        found = P.get_by_ids(fresh(engine), ids)
    assert counter.operations == [("redis", "mget")]
    assert [p.name for p in found] == [p.name for p in made]


def test_get_by_ids_mixing_cached_and_uncached_costs_one_round_trip_per_tier(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    made = users(fluxa_ctx, 60)
    ids = [u.id for u in made]
    warm(engine, U, *ids[:20])
    # Busy keys: another reader's lease, a writer's marker.
    tiers = tiers_of(engine, U)
    busy = {ids[20]: codec.LEASE_PREFIX + b"someone-else:1", ids[21]: codec.WRITING}
    for id_, value in busy.items():
        tiers.client.set(tiers.key(id_), value)
    absent = [10_000_001, 10_000_002]
    wanted = [*ids, *absent]
    with fluxa_assert_queries(mysql=1, redis=3) as counter:
        found = U.get_by_ids(fresh(engine), wanted)
    assert counter.operations == [
        ("redis", "mget"),
        ("redis", "lease"),
        ("mysql", "select"),
        ("redis", "fill"),
    ]
    assert [u.id for u in found] == ids
    assert [u._row for u in found] == [mysql_row(engine, U, i) for i in ids]
    assert all(redis_value(engine, U, i) == codec.NOT_FOUND for i in absent)
    assert all(redis_value(engine, U, i) == value for i, value in busy.items()), "not filled"
    with fluxa_assert_queries(mysql=1, redis=1) as counter:  # only the busy keys: MySQL
        assert [u.id for u in U.get_by_ids(fresh(engine), wanted)] == ids
    assert counter.operations == [("redis", "mget"), ("mysql", "select")]
    tiers.client.delete(*(tiers.key(i) for i in busy))
    warm(engine, U, *busy)
    with fluxa_assert_queries(mysql=0, redis=1):
        assert [u.id for u in U.get_by_ids(fresh(engine), wanted)] == ids


def test_get_by_ids_across_all_tiers_costs_one_round_trip_per_tier(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    made = products(fluxa_ctx, 30)
    ids = [p.id for p in made]
    warm(engine, P, *ids)
    tiers = tiers_of(engine, P)
    assert tiers.local is not None
    # ids[0:10]: local; ids[10:20]: Redis only; ids[20:30]: nowhere
    tiers.local.invalidate([(tiers.prefix, i) for i in ids[10:]])
    tiers.client.delete(*[tiers.key(i) for i in ids[20:]])
    with fluxa_assert_queries(mysql=1, redis=3) as counter:
        found = P.get_by_ids(fresh(engine), ids)
    assert counter.operations == [
        ("redis", "mget"),
        ("redis", "lease"),
        ("mysql", "select"),
        ("redis", "fill"),
    ]
    assert [p.id for p in found] == ids
    assert [p.name for p in found] == [p.name for p in made]
    with fluxa_assert_queries(mysql=0, redis=0):
        assert len(P.get_by_ids(fresh(engine), ids)) == 30


def test_search_many_selects_ids_then_reads_through_the_tiers(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    made = products(fluxa_ctx, 5)
    made_users = users(fluxa_ctx, 5)
    query = Query().filter(P.fields.name.like("Product %")).sort_by_desc(P.fields.id)
    user_query = Query().filter(U.fields.name.like("User%")).sort_by_asc(U.fields.id)
    with fluxa_assert_queries(mysql=2, redis=3) as counter:  # cold: ids, then the rows
        found = P.search_many(fresh(engine), query)
    assert counter.operations == [
        ("mysql", "select"),
        ("redis", "mget"),
        ("redis", "lease"),
        ("mysql", "select"),
        ("redis", "fill"),
    ]
    assert [p.id for p in found] == sorted((p.id for p in made), reverse=True)
    with fluxa_assert_queries(mysql=1, redis=0):  # warm: local tier
        found = P.search_many(fresh(engine), query)
    assert [p.id for p in found] == sorted((p.id for p in made), reverse=True)
    warm(engine, U, *(u.id for u in made_users))
    with fluxa_assert_queries(mysql=1, redis=1) as counter:  # warm: Redis tier
        found_users = U.search_many(fresh(engine), user_query)
    assert counter.operations == [("mysql", "select"), ("redis", "mget")]
    assert [u.name for u in found_users] == [u.name for u in made_users]


# -- 2. not-found marker ----------------------------------------------------------------------


def test_missing_id_is_cached_as_not_found_until_it_is_created(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    missing = 777_777
    with fluxa_assert_queries(mysql=1):
        assert U.get_by_id(fresh(engine), missing) is None
    assert redis_value(engine, U, missing) == codec.NOT_FOUND
    with fluxa_assert_queries(mysql=0, redis=1):
        assert U.get_by_id(fresh(engine), missing) is None
    writer = fresh(engine)
    user = U.new_with_id(writer, missing)
    user.name = "Late"
    user.email = "late@example.com"
    writer.flush()
    assert redis_value(engine, U, missing) is None, "the flush must drop the not-found marker"
    found = U.get_by_id(fresh(engine), missing)
    assert found is not None and found.name == "Late"


def test_missing_id_is_cached_as_not_found_locally_until_it_is_created(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    category = new_category(fluxa_ctx)
    fluxa_ctx.flush()
    missing = 888_888
    assert P.get_by_id(fresh(engine), missing) is None
    assert local_row(engine, P, missing) is None  # "known missing"
    with fluxa_assert_queries(mysql=0, redis=0):
        assert P.get_by_id(fresh(engine), missing) is None
        assert P.get_by_ids(fresh(engine), [missing]) == []
    writer = fresh(engine)
    product = P.new_with_id(writer, missing)
    product.name = "Late product"
    product.category = category
    writer.flush()
    assert local_row(engine, P, missing) is MISSING
    found = P.get_by_id(fresh(engine), missing)
    assert found is not None and found.name == "Late product"
    assert [p.id for p in P.get_by_ids(fresh(engine), [missing])] == [missing]


@pytest.mark.parametrize(
    "odd",
    [
        pytest.param("01", id="str-leading-zero"),
        pytest.param("1 ", id="str-trailing-space"),
        pytest.param(1.0, id="float"),
        pytest.param(Decimal("1.0"), id="decimal"),
        pytest.param(True, id="bool"),
    ],
)
def test_an_id_in_another_form_never_serves_a_stale_row(
    fluxa_ctx: Context, engine: Engine, odd: Any
) -> None:
    """An id that is not a plain int (an unconverted request parameter, a float from JSON)
    must not cache row 1 under a key that the flush of row 1 does not invalidate."""
    user = U.new_with_id(fluxa_ctx, 1)
    user.name = "One"
    user.email = "one@example.com"
    user.age = 30
    fluxa_ctx.flush()

    def ages() -> list[int | None]:
        """The age read by get_by_id and by get_by_ids (None: not found)."""
        one = U.get_by_id(fresh(engine), odd)
        many = U.get_by_ids(fresh(engine), [odd, 2])
        return [None if one is None else one.age, many[0].age if many else None]

    try:
        ages()
    except (TypeError, ValueError):
        return  # refusing a non-int id is fine
    writer = fresh(engine)
    U.must_get_by_id(writer, 1).age = 31
    writer.flush()
    assert all(age in (None, 31) for age in ages()), (
        f"reading id {odd!r} served the row from before the flush "
        f"(Redis keys: {sorted(tiers_of(engine, U).client.keys('*'))!r})"
    )


# -- 3. format and schema stamp ------------------------------------------------------------


def test_redis_value_is_the_msgpack_row_with_the_schema_stamp(
    fluxa_ctx: Context, engine: Engine
) -> None:
    user = users(fluxa_ctx, 1)[0]
    warm(engine, U, user.id)
    raw = redis_value(engine, U, user.id)
    assert raw is not None
    assert not codec.is_control(raw)
    assert codec.decode_row(U.cache_stamp, raw) == mysql_row(engine, U, user.id)
    assert msgpack.unpackb(raw) == [U.cache_stamp, [user.id, user.name, user.email, user.age]]
    assert codec.decode_row("otherstamp", raw) is None


def test_entry_of_another_schema_is_never_decoded(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    user = users(fluxa_ctx, 1)[0]
    tiers = tiers_of(engine, U)
    foreign = codec.encode_row("otherstamp", (user.id, "Mallory", "mallory@example.com", 99))
    tiers.client.set(tiers.key(user.id), foreign)
    expected = mysql_row(engine, U, user.id)
    with fluxa_assert_queries(mysql=1):
        found = U.must_get_by_id(fresh(engine), user.id)
    assert found._row == expected
    assert found.name == user.name and found.age == user.age
    # The reader took the lease over the foreign entry and filled the current row.
    raw = redis_value(engine, U, user.id)
    assert raw is not None and codec.decode_row(U.cache_stamp, raw) == expected
    with fluxa_assert_queries(mysql=0, redis=1):
        found_many = U.get_by_ids(fresh(engine), [user.id])
    assert [u._row for u in found_many] == [expected]


GARBAGE = [
    pytest.param(b"\xc1\xc1\xc1", id="invalid-msgpack"),
    pytest.param(b"plain text", id="text"),
    pytest.param(b"\x92\xac", id="truncated"),
    pytest.param(msgpack.packb(42), id="int"),
    pytest.param(msgpack.packb(["a", "b", "c"]), id="wrong-array"),
    pytest.param(b"\x00Zunknown-control", id="unknown-control"),
    pytest.param(b"12345", id="digits"),
    pytest.param(b"", id="empty"),
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_in_a_row_key_is_a_miss(
    fluxa_ctx: Context, engine: Engine, garbage: bytes, fluxa_assert_queries: AssertQueries
) -> None:
    made = users(fluxa_ctx, 2)
    tiers = tiers_of(engine, U)
    for user in made:
        tiers.client.set(tiers.key(user.id), garbage)
    with fluxa_assert_queries(mysql=1):
        found = U.get_by_id(fresh(engine), made[0].id)
    assert found is not None and found._row == mysql_row(engine, U, made[0].id)
    with fluxa_assert_queries(mysql=1):
        found_many = U.get_by_ids(fresh(engine), [u.id for u in made])
    assert [u._row for u in found_many] == [mysql_row(engine, U, u.id) for u in made]


def _every_value_product(ctx: Context) -> tuple[ProductEntity, ProductEntity]:
    category = new_category(ctx)
    full = new_product(ctx, category, "Ünïcödé ☃ product")
    full.price = 12345678.91
    full.status = Status.ARCHIVED
    full.tags = {Tag.NEW, Tag.SALE}
    full.description = "line one\nline two\ttab \x01 " + "x" * 3000
    full.weight = 0.1
    full.released = datetime.date(2024, 2, 29)
    full.created_at = datetime.datetime(2023, 12, 31, 23, 59, 58)
    empty = new_product(ctx, category, "Nulls")
    empty.price = 0.05
    empty.tags = None
    empty.weight = None
    empty.released = None
    ctx.flush()
    return full, empty


def test_every_column_type_round_trips_exactly_through_redis_and_local(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    made = _every_value_product(fluxa_ctx)
    ids = [p.id for p in made]
    from_mysql = P.get_by_ids(fresh(engine), ids)  # cold: read from MySQL, fills the tiers
    engine.local_cache().clear()
    with fluxa_assert_queries(mysql=0, redis=1):
        from_redis = P.get_by_ids(fresh(engine), ids)
    with fluxa_assert_queries(mysql=0, redis=0):
        from_local = P.get_by_ids(fresh(engine), ids)
    assert isinstance(from_mysql[0]._row[2], Decimal)
    for source in (from_redis, from_local):
        for a, b in zip(from_mysql, source, strict=True):
            assert a._row == b._row
            assert [type(v) for v in a._row] == [type(v) for v in b._row]
            for name in P.attribute_names:
                assert getattr(a, name) == getattr(b, name), name
    full = from_redis[0]
    assert full.price == 12345678.91
    assert full.tags == {Tag.NEW, Tag.SALE}
    assert full.status is Status.ARCHIVED
    assert full.released == datetime.date(2024, 2, 29)
    assert full.created_at == datetime.datetime(2023, 12, 31, 23, 59, 58)
    assert full.name == "Ünïcödé ☃ product"
    nulls = from_redis[1]
    assert (nulls.tags, nulls.weight, nulls.released) == (None, None, None)
    assert nulls.price == 0.05


def test_setting_back_the_values_read_from_redis_is_not_a_change(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    made = _every_value_product(fluxa_ctx)
    warm(engine, P, *(p.id for p in made))
    engine.local_cache().clear()
    ctx = fresh(engine)
    for id_, source in ((made[0].id, "redis"), (made[1].id, "redis")):
        with fluxa_assert_queries(mysql=0):
            product = P.must_get_by_id(ctx, id_)
        product.name = product.name
        product.price = product.price
        product.status = product.status
        product.tags = product.tags
        product.description = product.description
        product.weight = product.weight
        product.released = product.released
        product.created_at = product.created_at
        product.category_id = product.category_id
        assert not product.is_dirty, source
        assert product.changed_columns() == []
    with fluxa_assert_queries(mysql=0, redis=0):
        ctx.flush()


# -- 4. writes -----------------------------------------------------------------------------


def test_update_is_seen_by_fresh_contexts_from_every_tier(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    product = products(fluxa_ctx, 1)[0]
    warm(engine, P, product.id)
    assert local_row(engine, P, product.id) is not MISSING
    writer = fresh(engine)
    changed = P.must_get_by_id(writer, product.id)
    changed.name = "Renamed"
    changed.price = 5.5
    changed.tags = {Tag.SALE}
    writer.flush()
    # No tier holds the old row, and Redis holds no write marker.
    assert redis_value(engine, P, product.id) is None
    assert local_row(engine, P, product.id) is MISSING
    assert P.must_get_by_id(writer, product.id).name == "Renamed"  # the writer's context
    expected = mysql_row(engine, P, product.id)
    assert expected is not None and expected[1] == "Renamed"
    with fluxa_assert_queries(mysql=1):  # refilled from MySQL
        assert P.must_get_by_id(fresh(engine), product.id)._row == expected
    raw = redis_value(engine, P, product.id)
    assert raw is not None and codec.decode_row(P.cache_stamp, raw) == expected
    with fluxa_assert_queries(mysql=0, redis=0):  # local tier
        assert P.must_get_by_id(fresh(engine), product.id)._row == expected
    engine.local_cache().clear()
    with fluxa_assert_queries(mysql=0, redis=1):  # Redis tier
        found = P.must_get_by_id(fresh(engine), product.id)
    assert (found.name, found.price, found.tags) == ("Renamed", 5.5, {Tag.SALE})


def test_update_of_a_redis_only_entity_is_seen_by_fresh_contexts(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    user = users(fluxa_ctx, 1)[0]
    warm(engine, U, user.id)
    other = fresh(engine)
    other.disable_context_cache()
    writer = fresh(engine)
    changed = U.must_get_by_id(writer, user.id)
    changed.age = 44
    writer.flush()
    assert redis_value(engine, U, user.id) is None
    assert U.must_get_by_id(other, user.id).age == 44
    with fluxa_assert_queries(mysql=0, redis=1):
        assert U.must_get_by_id(fresh(engine), user.id).age == 44


def test_soft_deleted_row_is_still_returned_by_id_from_every_tier(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    made = products(fluxa_ctx, 2)
    target = made[0]
    warm(engine, P, *(p.id for p in made))
    writer = fresh(engine)
    P.must_get_by_id(writer, target.id).delete()
    writer.flush()
    assert redis_value(engine, P, target.id) is None
    assert local_row(engine, P, target.id) is MISSING
    found = P.must_get_by_id(fresh(engine), target.id)  # MySQL
    assert found.fake_delete
    with fluxa_assert_queries(mysql=0, redis=0):
        assert P.must_get_by_id(fresh(engine), target.id).fake_delete  # local
    engine.local_cache().clear()
    with fluxa_assert_queries(mysql=0, redis=1):
        assert P.must_get_by_id(fresh(engine), target.id).fake_delete  # Redis
    remaining = P.search_many(fresh(engine), Query().sort_by_asc(P.fields.id))
    assert [p.id for p in remaining] == [made[1].id]


def test_force_deleted_row_is_gone_from_every_tier(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    made = products(fluxa_ctx, 2)
    target = made[0]
    warm(engine, P, *(p.id for p in made))
    writer = fresh(engine)
    P.must_get_by_id(writer, target.id).force_delete()
    writer.flush()
    assert P.get_by_id(writer, target.id) is None  # the writer's context
    assert mysql_row(engine, P, target.id) is None
    assert redis_value(engine, P, target.id) is None
    assert local_row(engine, P, target.id) is MISSING
    with fluxa_assert_queries(mysql=1):
        assert P.get_by_id(fresh(engine), target.id) is None
    assert redis_value(engine, P, target.id) == codec.NOT_FOUND
    with fluxa_assert_queries(mysql=0, redis=0):
        assert P.get_by_id(fresh(engine), target.id) is None
        assert [p.id for p in P.get_by_ids(fresh(engine), [p.id for p in made])] == [made[1].id]


def test_flush_of_many_cached_rows_costs_two_redis_round_trips(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    category = new_category(fluxa_ctx)
    fluxa_ctx.flush()
    ids = list(range(900_001, 900_051))
    assert P.get_by_ids(fresh(engine), ids) == []  # 50 not-found markers, locally and in Redis
    assert all(redis_value(engine, P, i) == codec.NOT_FOUND for i in ids)
    assert all(local_row(engine, P, i) is None for i in ids)
    writer = fresh(engine)
    for id_ in ids:
        product = P.new_with_id(writer, id_)
        product.name = f"Bulk {id_}"
        product.category = category
    with fluxa_assert_queries(mysql=1, redis=2) as counter:  # mark, INSERT, release
        writer.flush()
    assert counter.operations == [("redis", "mark"), ("mysql", "insert"), ("redis", "release")]
    assert all(redis_value(engine, P, i) is None for i in ids)
    assert all(local_row(engine, P, i) is MISSING for i in ids)
    assert [p.name for p in P.get_by_ids(fresh(engine), ids)] == [f"Bulk {i}" for i in ids]
    for product in P.get_by_ids(writer, ids):
        product.price = 1.25
    with fluxa_assert_queries(mysql=1, redis=2):  # mark, one UPDATE ... CASE, release
        writer.flush()
    assert all(local_row(engine, P, i) is MISSING for i in ids)
    found = P.get_by_ids(fresh(engine), ids)
    assert [p.price for p in found] == [1.25] * 50


# -- 5. a stale fill is impossible ----------------------------------------------------------


def _take_lease(engine: Engine, provider: Any, id_: int, token: bytes) -> list[bytes]:
    tiers = tiers_of(engine, provider)
    stamp_prefix = codec.stamp_prefix(provider.cache_stamp)
    answers: list[bytes] = tiers._lease(keys=[tiers.key(id_)], args=[token, LEASE_MS, stamp_prefix])
    return answers


def _fill(engine: Engine, provider: Any, id_: int, token: bytes, row: Any) -> int:
    tiers = tiers_of(engine, provider)
    value = codec.encode_row(provider.cache_stamp, row)
    stored: int = tiers._fill(keys=[tiers.key(id_)], args=[token, REDIS_TTL, value])
    return stored


def test_redis_fill_of_a_row_read_before_a_commit_is_refused(
    fluxa_ctx: Context, engine: Engine
) -> None:
    user = users(fluxa_ctx, 1)[0]
    tiers = tiers_of(engine, U)
    # The reader: missed, took the lease, read the old row.
    token = codec.LEASE_PREFIX + b"reader:1"
    assert _take_lease(engine, U, user.id, token) == [b""]
    old_row = tiers._mysql_rows(fresh(engine), [user.id])[user.id]
    assert old_row[3] == 30
    # The writer commits meanwhile.
    writer = fresh(engine)
    U.must_get_by_id(writer, user.id).age = 31
    writer.flush()
    # The reader's fill comes too late.
    assert _fill(engine, U, user.id, token, old_row) == 0
    assert redis_value(engine, U, user.id) is None
    assert U.must_get_by_id(fresh(engine), user.id).age == 31
    assert U.must_get_by_id(fresh(engine), user.id).age == 31  # from Redis


def test_not_found_fill_of_a_read_before_an_insert_is_refused(
    fluxa_ctx: Context, engine: Engine
) -> None:
    missing = 5_550_001
    token = codec.LEASE_PREFIX + b"reader:3"
    assert _take_lease(engine, U, missing, token) == [b""]
    assert mysql_row(engine, U, missing) is None  # the reader finds nothing
    writer = fresh(engine)
    user = U.new_with_id(writer, missing)
    user.name = "Inserted meanwhile"
    user.email = "meanwhile@example.com"
    writer.flush()
    tiers = tiers_of(engine, U)
    stored = tiers._fill(keys=[tiers.key(missing)], args=[token, REDIS_TTL, codec.NOT_FOUND])
    assert stored == 0
    assert redis_value(engine, U, missing) is None
    for _ in range(2):
        found = U.get_by_id(fresh(engine), missing)
        assert found is not None and found.name == "Inserted meanwhile"


def test_redis_fill_while_a_flush_is_in_progress_is_refused(
    fluxa_ctx: Context, engine: Engine
) -> None:
    user = users(fluxa_ctx, 1)[0]
    token = codec.LEASE_PREFIX + b"reader:2"
    assert _take_lease(engine, U, user.id, token) == [b""]
    writer = fresh(engine)
    with transaction.atomic():  # the flush's cache release waits for the commit
        U.must_get_by_id(writer, user.id).age = 32
        writer.flush()
        assert redis_value(engine, U, user.id) == codec.WRITING
        # A reader elsewhere (its own connection) reads the committed, old row.
        old_row = mysql_row(engine, U, user.id)
        assert old_row is not None and old_row[3] == 30
        assert _fill(engine, U, user.id, token, old_row) == 0
        # Another reader meanwhile: reads MySQL, fills nothing.
        other = fresh(engine)
        found = U.must_get_by_id(other, user.id)
        assert redis_value(engine, U, user.id) == codec.WRITING
        assert found.age == 32  # inside the block: the transaction's own write
    assert redis_value(engine, U, user.id) is None
    assert U.must_get_by_id(fresh(engine), user.id).age == 32


def test_local_fill_of_a_row_read_before_an_invalidation_is_refused(
    fluxa_ctx: Context, engine: Engine
) -> None:
    product = products(fluxa_ctx, 1)[0]
    tiers = tiers_of(engine, P)
    local = tiers.local
    assert local is not None
    started = local.sequence  # the reader starts
    old_row = tiers._mysql_rows(fresh(engine), [product.id])[product.id]
    writer = fresh(engine)
    P.must_get_by_id(writer, product.id).name = "New name"
    writer.flush()
    key = (tiers.prefix, product.id)
    assert local.fill_rows([(key, old_row)], started, LOCAL_TTL) == 0
    assert local_row(engine, P, product.id) is MISSING
    assert P.must_get_by_id(fresh(engine), product.id).name == "New name"
    assert P.must_get_by_id(fresh(engine), product.id).name == "New name"  # local
    # A fill that started after the invalidation is stored.
    assert local.fill_rows([(key, old_row)], local.sequence, LOCAL_TTL) == 1


# -- 6. cached unique indexes -----------------------------------------------------------------


def _unique_key(engine: Engine, name: str) -> str:
    return tiers_of(engine, P).unique_key("Name", codec.unique_token((name,)))


def test_unique_lookup_is_answered_from_redis(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    made = products(fluxa_ctx, 2, prefix="Widget")
    target = made[0]
    client = tiers_of(engine, P).client
    with fluxa_assert_queries(mysql=1, redis=2) as counter:  # cold
        found = P.get_by_unique_index_name(fresh(engine), target.name)
    assert counter.operations == [("redis", "get"), ("mysql", "select"), ("redis", "set")]
    assert found is not None and found.id == target.id
    assert client.get(_unique_key(engine, target.name)) == str(target.id).encode()
    warm(engine, P, target.id)
    with fluxa_assert_queries(mysql=0, redis=1):  # index key + local row
        found = P.get_by_unique_index_name(fresh(engine), target.name)
    assert found is not None and found.id == target.id
    engine.local_cache().clear()
    with fluxa_assert_queries(mysql=0, redis=2) as counter:  # index key + Redis row
        found = P.get_by_unique_index_name(fresh(engine), target.name)
    assert counter.operations == [("redis", "get"), ("redis", "get")]
    assert found is not None and found.id == target.id
    assert P.get_by_unique_index_name(fresh(engine), "No such product") is None


def test_search_one_with_the_index_equality_uses_the_cached_index(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    target = products(fluxa_ctx, 2, prefix="Gadget")[1]
    query = Query().filter(P.fields.name.eq(target.name))
    with fluxa_assert_queries(mysql=1, redis=2):
        found = P.search_one(fresh(engine), query)
    assert found is not None and found.id == target.id
    warm(engine, P, target.id)
    with fluxa_assert_queries(mysql=0, redis=1):
        found = P.search_one(fresh(engine), query)
    assert found is not None and found.id == target.id
    # Same key as get_by_unique_index_name.
    with fluxa_assert_queries(mysql=0, redis=1):
        found = P.get_by_unique_index_name(fresh(engine), target.name)
    assert found is not None and found.id == target.id


def test_renamed_entity_is_found_by_its_new_value_only(fluxa_ctx: Context, engine: Engine) -> None:
    target = products(fluxa_ctx, 1, prefix="Before")[0]
    old_name = target.name
    assert P.get_by_unique_index_name(fresh(engine), old_name) is not None  # cached
    assert P.get_by_unique_index_name(fresh(engine), "After") is None
    writer = fresh(engine)
    P.must_get_by_id(writer, target.id).name = "After"
    writer.flush()
    client = tiers_of(engine, P).client
    assert client.get(_unique_key(engine, old_name)) is None
    for _ in range(2):  # cold, then warm
        assert P.get_by_unique_index_name(fresh(engine), old_name) is None
        assert P.search_one(fresh(engine), Query().filter(P.fields.name.eq(old_name))) is None
        found = P.get_by_unique_index_name(fresh(engine), "After")
        assert found is not None and found.id == target.id


def test_soft_deleted_entity_is_not_found_by_its_unique_value(
    fluxa_ctx: Context, engine: Engine
) -> None:
    target = products(fluxa_ctx, 1, prefix="Doomed")[0]
    assert P.get_by_unique_index_name(fresh(engine), target.name) is not None
    writer = fresh(engine)
    P.must_get_by_id(writer, target.id).delete()
    writer.flush()
    assert P.get_by_unique_index_name(fresh(engine), target.name) is None
    # Even with a mapping to the soft-deleted row planted in Redis.
    client = tiers_of(engine, P).client
    client.set(_unique_key(engine, target.name), str(target.id))
    assert P.get_by_unique_index_name(fresh(engine), target.name) is None
    assert P.search_one(fresh(engine), Query().filter(P.fields.name.eq(target.name))) is None


@pytest.mark.parametrize("planted", ["other", "absent", "garbage"])
def test_stale_unique_mapping_is_detected_and_corrected(
    fluxa_ctx: Context, engine: Engine, planted: str
) -> None:
    made = products(fluxa_ctx, 2, prefix="Thing")
    target, other = made
    key = _unique_key(engine, target.name)
    client = tiers_of(engine, P).client
    value = {"other": str(other.id), "absent": "99999999", "garbage": "\x00W"}[planted]
    client.set(key, value)
    warm(engine, P, other.id)
    found = P.get_by_unique_index_name(fresh(engine), target.name)
    assert found is not None and found.id == target.id and found.name == target.name
    assert client.get(key) == str(target.id).encode()
    found = P.search_one(fresh(engine), Query().filter(P.fields.name.eq(target.name)))
    assert found is not None and found.id == target.id


def test_case_different_lookup_is_answered_by_mysql_and_never_cached(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    target = products(fluxa_ctx, 1, prefix="Widget")[0]
    spelling = target.name.upper()
    client = tiers_of(engine, P).client
    for _ in range(2):
        with fluxa_assert_queries(mysql=1) as counter:
            found = P.get_by_unique_index_name(fresh(engine), spelling)
        assert found is not None and found.id == target.id and found.name == target.name
        assert ("redis", "set") not in counter.operations
        assert client.get(_unique_key(engine, spelling)) is None
    found = P.search_one(fresh(engine), Query().filter(P.fields.name.eq(spelling)))
    assert found is not None and found.id == target.id
    assert client.get(_unique_key(engine, spelling)) is None


# -- 7. clear_redis_cache ----------------------------------------------------------------------


def test_clear_redis_cache_deletes_the_keys_and_evicts_local_rows(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    made = products(fluxa_ctx, 3)
    made_users = users(fluxa_ctx, 2)
    ids = [p.id for p in made]
    warm(engine, P, *ids, 123_456)  # three rows and a not-found marker
    P.get_by_unique_index_name(fresh(engine), made[0].name)
    warm(engine, U, *(u.id for u in made_users))
    tiers = tiers_of(engine, P)
    keys = list(tiers.client.scan_iter(match=f"{tiers.prefix}*"))
    assert len(keys) == 5
    assert P.clear_redis_cache(fresh(engine)) == 5
    assert list(tiers.client.scan_iter(match=f"{tiers.prefix}*")) == []
    assert all(local_row(engine, P, i) is MISSING for i in ids)
    assert all(redis_value(engine, U, u.id) is not None for u in made_users), "other entities"
    with fluxa_assert_queries(mysql=1):
        assert len(P.get_by_ids(fresh(engine), ids)) == 3
    assert CategoryEntityProvider.clear_redis_cache(fresh(engine)) == 0  # no cache tiers
    assert P.clear_redis_cache(fresh(engine)) == 3


# -- 8. invalidation of another process's local tier ----------------------------------------


@pytest.fixture
def second_engine(engine: Engine) -> Iterator[Engine]:
    """Another engine on the same MySQL test database and Redis db, like another process."""
    other = build_engine(engine.mysql().database, REDIS_ADDRESS, REDIS_TEST_DB)
    try:
        assert tiers_of(other, P).prefix == tiers_of(engine, P).prefix
        assert other.local_cache() is not engine.local_cache()
        bus = tiers_of(other, P).bus
        assert bus is not None and bus is not tiers_of(engine, P).bus
        assert bus.ensure_started(wait=5.0), "the second engine's listener did not start"
        yield other
    finally:
        other.close()


def _invalidation_round(
    engine: Engine, other: Engine, id_: int, name: str, assert_queries: AssertQueries
) -> float:
    """Warm ``other``'s local tier, flush a change through ``engine``: seconds from the
    start of the flush until the row left ``other``'s local tier."""
    bus = tiers_of(other, P).bus
    assert bus is not None

    def warmed() -> bool:  # (a flush's last message may still be on its way)
        warm(other, P, id_)
        return local_row(other, P, id_) is not MISSING

    wait_until(warmed, timeout=5.0)
    with assert_queries(mysql=0, redis=0):
        assert P.must_get_by_id(fresh(other), id_).id == id_
    received = bus.received
    evicted_at: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        # Polls the other engine's local tier from another thread while engine 1 flushes.
        while not stop.is_set():
            if local_row(other, P, id_) is MISSING:
                evicted_at.append(time.monotonic())
                return
            time.sleep(0.0002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    writer = fresh(engine)
    P.must_get_by_id(writer, id_).name = name
    started = time.monotonic()
    try:
        writer.flush()
        wait_until(lambda: bool(evicted_at), timeout=5.0)
    finally:
        stop.set()
        watcher.join()
    # both messages of the flush (before the SQL: evict and block; after the commit:
    # evict and unblock) reach the other engine
    wait_until(lambda: bus.received >= received + 2, timeout=5.0)
    assert P.must_get_by_id(fresh(other), id_).name == name
    return evicted_at[0] - started


def test_flush_evicts_the_row_from_another_engines_local_tier(
    fluxa_ctx: Context,
    engine: Engine,
    second_engine: Engine,
    fluxa_assert_queries: AssertQueries,
) -> None:
    product = settled_products(fluxa_ctx, second_engine, 1)[0]
    latencies = sorted(
        _invalidation_round(
            engine, second_engine, product.id, f"Changed elsewhere {i}", fluxa_assert_queries
        )
        for i in range(20)
    )
    print(
        "\ncross-engine local invalidation, flush start -> evicted in engine 2 "
        f"(20 flushes): median {statistics.median(latencies) * 1000:.2f} ms, "
        f"max {latencies[-1] * 1000:.2f} ms"
    )


def test_another_engines_fill_started_before_the_invalidation_is_refused(
    fluxa_ctx: Context, engine: Engine, second_engine: Engine
) -> None:
    product = settled_products(fluxa_ctx, second_engine, 1)[0]
    tiers = tiers_of(second_engine, P)
    local = tiers.local
    bus = tiers.bus
    assert local is not None and bus is not None
    started = local.sequence
    old_row = tiers._mysql_rows(fresh(second_engine), [product.id])[product.id]
    received = bus.received
    writer = fresh(engine)
    P.must_get_by_id(writer, product.id).name = "Changed"
    writer.flush()
    wait_until(lambda: bus.received > received, timeout=5.0)
    assert local.fill_rows([((tiers.prefix, product.id), old_row)], started, LOCAL_TTL) == 0
    assert local_row(second_engine, P, product.id) is MISSING
    assert P.must_get_by_id(fresh(second_engine), product.id).name == "Changed"


def test_engine_without_a_healthy_listener_does_not_serve_the_local_tier(
    fluxa_ctx: Context,
    engine: Engine,
    second_engine: Engine,
    fluxa_assert_queries: AssertQueries,
) -> None:
    product = settled_products(fluxa_ctx, second_engine, 1)[0]
    warm(second_engine, P, product.id)
    assert local_row(second_engine, P, product.id) is not MISSING
    bus = tiers_of(second_engine, P).bus
    assert bus is not None
    bus.stop()
    assert not bus.healthy
    with fluxa_assert_queries(mysql=0, redis=1) as counter:
        assert P.must_get_by_id(fresh(second_engine), product.id).name == product.name
    assert counter.operations == [("redis", "get")]
    with fluxa_assert_queries(mysql=0, redis=1):
        assert len(P.get_by_ids(fresh(second_engine), [product.id])) == 1
    # A write through engine 1 is seen by engine 2 at once (it reads Redis).
    writer = fresh(engine)
    P.must_get_by_id(writer, product.id).name = "Seen at once"
    writer.flush()
    assert P.must_get_by_id(fresh(second_engine), product.id).name == "Seen at once"
    # Nothing is filled into the local tier while the listener is down.
    assert local_row(second_engine, P, product.id) is MISSING


def test_clear_redis_cache_evicts_another_engines_local_rows(
    fluxa_ctx: Context, engine: Engine, second_engine: Engine
) -> None:
    made = settled_products(fluxa_ctx, second_engine, 3)
    ids = [p.id for p in made]
    warm(second_engine, P, *ids)
    assert all(local_row(second_engine, P, i) is not MISSING for i in ids)
    assert P.clear_redis_cache(fresh(engine)) == 3
    wait_until(lambda: all(local_row(second_engine, P, i) is MISSING for i in ids), timeout=5.0)


def test_flush_in_a_forked_child_invalidates_the_parents_local_tier(
    fluxa_ctx: Context, engine: Engine, second_engine: Engine
) -> None:
    """A worker forked from a process that serves the local tier (preforking servers,
    multiprocessing) writes a row; the parent must drop its cached copy."""
    category = new_category(fluxa_ctx)
    fluxa_ctx.flush()
    missing = 4_242_424
    assert P.get_by_id(fresh(second_engine), missing) is None
    assert local_row(second_engine, P, missing) is None  # the parent: "known missing"
    bus = tiers_of(second_engine, P).bus
    assert bus is not None and bus.healthy
    received = bus.received
    # The child must not share the parent's MySQL sockets: start with no idle connection.
    second_engine.mysql().close()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        status = 1
        try:
            ctx = second_engine.new_context()
            product = P.new_with_id(ctx, missing)
            product.name = "Made by a child"
            product.category_id = category.id
            ctx.flush()  # inserts; reads nothing through the local tier
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child did not finish")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's flush failed"
    assert mysql_row(engine, P, missing) is not None
    wait_until(lambda: bus.received > received, timeout=5.0)  # the child's invalidation
    time.sleep(0.05)
    found = P.get_by_id(fresh(second_engine), missing)
    assert found is not None and found.name == "Made by a child", (
        "the parent's local tier still serves the row as missing after a child inserted it"
    )


# -- 9. Django atomic() ----------------------------------------------------------------------------


def test_reads_inside_atomic_bypass_the_tiers(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    product = products(fluxa_ctx, 1)[0]
    user = users(fluxa_ctx, 1)[0]
    with transaction.atomic():
        with fluxa_assert_queries(mysql=1, redis=0):
            assert P.must_get_by_id(fresh(engine), product.id).name == product.name
        with fluxa_assert_queries(mysql=1, redis=0):
            assert U.must_get_by_id(fresh(engine), user.id).name == user.name
        with fluxa_assert_queries(mysql=1, redis=0):
            assert len(P.get_by_ids(fresh(engine), [product.id, 999])) == 1
        with fluxa_assert_queries(redis=0):
            assert P.get_by_unique_index_name(fresh(engine), product.name) is not None
    # Nothing was filled.
    assert redis_value(engine, P, product.id) is None
    assert redis_value(engine, U, user.id) is None
    assert redis_value(engine, P, 999) is None
    assert local_row(engine, P, product.id) is MISSING
    assert tiers_of(engine, P).client.get(_unique_key(engine, product.name)) is None


def test_rolled_back_atomic_block_leaves_no_trace_in_any_tier(
    fluxa_ctx: Context, engine: Engine
) -> None:
    product = products(fluxa_ctx, 1)[0]
    user = users(fluxa_ctx, 1)[0]
    warm(engine, P, product.id)
    warm(engine, U, user.id)

    class Rollback(Exception):
        pass

    writer = fresh(engine)
    with pytest.raises(Rollback), transaction.atomic():
        P.must_get_by_id(writer, product.id).name = "Rolled back"
        U.must_get_by_id(writer, user.id).age = 99
        writer.flush()
        inside = fresh(engine)
        assert P.must_get_by_id(inside, product.id).name == "Rolled back"
        assert U.must_get_by_id(inside, user.id).age == 99
        raise Rollback
    assert mysql_row(engine, P, product.id) == tuple(
        P.must_get_by_id(fresh(engine), product.id)._row
    )
    for _ in range(2):
        assert P.must_get_by_id(fresh(engine), product.id).name == product.name
        assert U.must_get_by_id(fresh(engine), user.id).age == 30
    for raw, provider in (
        (redis_value(engine, P, product.id), P),
        (redis_value(engine, U, user.id), U),
    ):
        if raw is not None and not codec.is_control(raw):
            row = codec.decode_row(provider.cache_stamp, raw)
            assert row is not None and "Rolled back" not in row and 99 not in row
    local = local_row(engine, P, product.id)
    assert local is MISSING or local[1] == product.name


def test_flush_on_a_pool_outside_djangos_transaction_invalidates_after_a_rollback(
    fluxa_ctx: Context, engine: Engine, second_engine: Engine
) -> None:
    """A pool configured by URI is not part of Django's transaction: its flush commits at
    once, so the caches must be invalidated even if the enclosing atomic() block rolls back."""
    product = settled_products(fluxa_ctx, second_engine, 1)[0]
    warm(engine, P, product.id)
    warm(second_engine, P, product.id)

    class Rollback(Exception):
        pass

    writer = fresh(second_engine)  # its MySQL pool is a URI pool, not a Django alias
    with pytest.raises(Rollback), transaction.atomic():
        P.must_get_by_id(writer, product.id).name = "Committed on its own"
        writer.flush()
        raise Rollback
    row = mysql_row(engine, P, product.id)
    assert row is not None and row[1] == "Committed on its own", "the flush was committed"
    for reader in (second_engine, engine):

        def visible(reader: Engine = reader) -> bool:
            return P.must_get_by_id(fresh(reader), product.id).name == "Committed on its own"

        try:
            wait_until(visible, timeout=3.0)
        except AssertionError:
            pytest.fail(
                "a committed flush stays invisible: the cache invalidation waited for a "
                f"Django commit that never came (local {local_row(reader, P, product.id)!r}, "
                f"redis {redis_value(reader, P, product.id)!r})"
            )


def test_committed_atomic_block_is_seen_by_fresh_contexts(
    fluxa_ctx: Context, engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    product = products(fluxa_ctx, 1)[0]
    user = users(fluxa_ctx, 1)[0]
    warm(engine, P, product.id)
    warm(engine, U, user.id)
    writer = fresh(engine)
    with transaction.atomic():
        P.must_get_by_id(writer, product.id).name = "Committed"
        U.must_get_by_id(writer, user.id).age = 55
        writer.flush()
        # Outside the transaction nobody sees it yet, and nothing stale gets cached.
        assert redis_value(engine, P, product.id) == codec.WRITING
    assert redis_value(engine, P, product.id) is None
    assert redis_value(engine, U, user.id) is None
    assert local_row(engine, P, product.id) is MISSING
    for _ in range(2):
        assert P.must_get_by_id(fresh(engine), product.id).name == "Committed"
        assert U.must_get_by_id(fresh(engine), user.id).age == 55
    with fluxa_assert_queries(mysql=0, redis=0):
        assert P.must_get_by_id(fresh(engine), product.id).name == "Committed"


# -- 10. query logger ----------------------------------------------------------------------------


def test_query_logger_names_the_tier_of_every_operation(fluxa_ctx: Context, engine: Engine) -> None:
    product = products(fluxa_ctx, 1)[0]
    entries: list[dict[str, Any]] = []
    base = fresh(engine)
    base.register_query_logger(entries.append)

    def read() -> list[tuple[str, str, bool]]:
        entries.clear()
        P.must_get_by_id(base.clone(), product.id)
        return [(e["source"], e["operation"], e["miss"]) for e in entries]

    assert read() == [
        ("local", "get", True),
        ("redis", "get", True),
        ("redis", "lease", False),
        ("mysql", "select", False),
        ("redis", "fill", False),
    ]
    assert read() == [("local", "get", False)]
    engine.local_cache().clear()
    assert read() == [("local", "get", True), ("redis", "get", False)]
    assert all(e["pool"] == "default" for e in entries)
    assert all(e["error"] is None and e["microseconds"] >= 0 for e in entries)
    entries.clear()
    P.get_by_ids(base.clone(), [product.id, 424242, 424243])
    assert [(e["source"], e["operation"]) for e in entries] == [
        ("local", "get_many"),
        ("redis", "mget"),
        ("redis", "lease"),
        ("mysql", "select"),
        ("redis", "fill"),
    ]
    only_tiers: list[str] = []
    ctx = fresh(engine)
    ctx.register_query_logger(lambda e: only_tiers.append(e["source"]), mysql=False)
    U.get_by_id(ctx, 31337)
    assert only_tiers == ["redis", "redis", "redis"]
