"""Redis going away and coming back, against a private redis-server killed for real.

Each test starts its own redis-server (no persistence) on a free port, builds an
engine on the suite's MySQL test database and that server, warms the tiers,
then SIGKILLs the server: reads must keep answering from MySQL (with a warning
on the ``fluxa_django.cache`` logger), the local tier must stop serving once the
invalidation listener notices, and a flush must be refused before any SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from fluxa_django import Context, Engine, PoolError, Query
from fluxa_django.backends.localcache import MISSING
from fluxa_django.runtime import codec, tiers
from tests.cache_helpers import (
    AssertQueries,
    RedisServer,
    build_engine,
    bus_of,
    local_row,
    new_category,
    products,
    redis_value,
    tiers_of,
    users,
    wait_until,
)
from tests.generated import (
    CategoryEntityProvider,
    ProductEntity,
    ProductEntityProvider,
    UserEntity,
    UserEntityProvider,
)

P = ProductEntityProvider
U = UserEntityProvider
CACHE_LOGGER = "fluxa_django.cache"


@pytest.fixture
def private_engine(fluxa_ctx: Context, redis_server: RedisServer) -> Iterator[Engine]:
    """An engine on the test database (emptied by fluxa_ctx) and the private Redis server."""
    # The "Redis down" warning is rate-limited per process and pool code; earlier tests
    # may have used the 10 s window of pool "default".
    tiers._warned.clear()
    engine = build_engine(fluxa_ctx.engine.mysql().database, redis_server.address, 0)
    try:
        assert bus_of(engine).ensure_started(wait=5.0), "the invalidation listener did not start"
        yield engine
    finally:
        engine.close()


def fresh(engine: Engine) -> Context:
    return engine.new_context()


class Warm:
    """Rows created through the private engine and read into every tier."""

    def __init__(self, engine: Engine) -> None:
        ctx = engine.new_context()
        self.products: list[ProductEntity] = products(ctx, 3)
        self.users: list[UserEntity] = users(ctx, 2)
        self.product_ids = [p.id for p in self.products]
        self.user_ids = [u.id for u in self.users]
        P.get_by_ids(fresh(engine), self.product_ids)
        U.get_by_ids(fresh(engine), self.user_ids)
        assert P.get_by_unique_index_name(fresh(engine), self.products[0].name) is not None
        assert all(local_row(engine, P, i) is not MISSING for i in self.product_ids)
        assert all(redis_value(engine, U, i) is not None for i in self.user_ids)


def down_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == CACHE_LOGGER
        and r.levelno == logging.WARNING
        and "unreachable" in r.getMessage()
    ]


def test_reads_fall_back_to_mysql_with_a_warning(
    private_engine: Engine,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    fluxa_assert_queries: AssertQueries,
) -> None:
    caplog.set_level(logging.WARNING, logger=CACHE_LOGGER)
    engine = private_engine
    warm = Warm(engine)
    redis_server.kill()
    # Changed behind the cache's back: answers must come from MySQL, not the cached rows.
    mysql = engine.mysql()
    mysql.exec("UPDATE `UserEntity` SET `age` = 77")
    mysql.exec("UPDATE `ProductEntity` SET `description` = 'from mysql'")

    with fluxa_assert_queries(mysql=1):
        user = U.must_get_by_id(fresh(engine), warm.user_ids[0])
    assert user.age == 77 and user.name == warm.users[0].name
    warnings = down_warnings(caplog)
    assert warnings, "a Redis failure on the read path must be logged"
    assert "'default'" in warnings[0] and "MySQL" in warnings[0]

    found_users = U.get_by_ids(fresh(engine), [*warm.user_ids, 9_999_999])
    assert [u.id for u in found_users] == warm.user_ids
    assert all(u.age == 77 for u in found_users)
    assert U.get_by_id(fresh(engine), 9_999_998) is None

    wait_until(lambda: not bus_of(engine).healthy, timeout=5.0)
    found = P.get_by_ids(fresh(engine), warm.product_ids)
    assert [p.description for p in found] == ["from mysql"] * 3
    assert P.must_get_by_id(fresh(engine), warm.product_ids[1]).description == "from mysql"
    searched = P.search_many(fresh(engine), Query().sort_by_asc(P.fields.id))
    assert [p.id for p in searched] == warm.product_ids
    assert all(p.description == "from mysql" for p in searched)
    by_name = P.get_by_unique_index_name(fresh(engine), warm.products[0].name)
    assert by_name is not None and by_name.id == warm.product_ids[0]
    assert by_name.description == "from mysql"
    one = P.search_one(fresh(engine), Query().filter(P.fields.name.eq(warm.products[2].name)))
    assert one is not None and one.id == warm.product_ids[2]
    assert P.get_by_unique_index_name(fresh(engine), "no such name") is None
    # Nothing was put into the local tier meanwhile.
    assert all(local_row(engine, P, i) is MISSING for i in warm.product_ids)


def test_local_tier_stops_serving_once_the_listener_notices(
    private_engine: Engine,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    fluxa_assert_queries: AssertQueries,
) -> None:
    caplog.set_level(logging.WARNING, logger=CACHE_LOGGER)
    engine = private_engine
    warm = Warm(engine)
    bus = bus_of(engine)
    assert bus.healthy
    redis_server.kill()
    noticed = wait_until(lambda: not bus.healthy, timeout=5.0)
    print(f"\nlistener noticed the dead Redis after {noticed * 1000:.1f} ms")
    assert all(local_row(engine, P, i) is MISSING for i in warm.product_ids), "cleared"
    assert any("invalidation" in r.getMessage() for r in caplog.records if r.name == CACHE_LOGGER)
    engine.mysql().exec("UPDATE `ProductEntity` SET `description` = 'changed'")
    for _ in range(2):
        with fluxa_assert_queries(mysql=1):
            product = P.must_get_by_id(fresh(engine), warm.product_ids[0])
        assert product.description == "changed"
    assert local_row(engine, P, warm.product_ids[0]) is MISSING


def test_flush_is_refused_before_any_sql_and_entities_stay_dirty(
    private_engine: Engine,
    redis_server: RedisServer,
    fluxa_assert_queries: AssertQueries,
) -> None:
    engine = private_engine
    warm = Warm(engine)
    redis_server.kill()
    ctx = fresh(engine)
    product = P.must_get_by_id(ctx, warm.product_ids[0])
    user = U.must_get_by_id(ctx, warm.user_ids[0])
    product.name = "Never written"
    user.age = 99
    doomed = P.must_get_by_id(ctx, warm.product_ids[1])
    doomed.delete()
    category = CategoryEntityProvider.must_get_by_id(ctx, warm.products[0].category_id or 0)
    added = P.new_with_id(ctx, 5_000_000)
    added.name = "Never inserted"
    added.category = category
    before = {
        table: engine.mysql().query(f"SELECT * FROM `{table}` ORDER BY `id`")
        for table in ("ProductEntity", "UserEntity")
    }
    with fluxa_assert_queries(mysql=0), pytest.raises(PoolError) as raised:
        ctx.flush()
    assert raised.value.pool == "default"
    assert "'default'" in str(raised.value) and "nothing was written" in str(raised.value)
    after = {
        table: engine.mysql().query(f"SELECT * FROM `{table}` ORDER BY `id`")
        for table in ("ProductEntity", "UserEntity")
    }
    assert after == before
    assert product.is_dirty and user.is_dirty and doomed.is_dirty and added.is_new
    assert product.name == "Never written" and user.age == 99
    # Entities without cache tiers need no Redis to be written.
    plain = fresh(engine)
    new_category(plain, "Written without Redis")
    plain.flush()
    assert engine.mysql().query_row(
        "SELECT COUNT(*) FROM `CategoryEntity` WHERE `name` = ?", "Written without Redis"
    ) == (1,)


def test_after_redis_restarts_flush_works_and_reads_fill_again(
    private_engine: Engine,
    redis_server: RedisServer,
    fluxa_assert_queries: AssertQueries,
) -> None:
    engine = private_engine
    warm = Warm(engine)
    redis_server.kill()
    ctx = fresh(engine)
    product = P.must_get_by_id(ctx, warm.product_ids[0])
    user = U.must_get_by_id(ctx, warm.user_ids[0])
    product.name = "Written after restart"
    user.age = 42
    with pytest.raises(PoolError):
        ctx.flush()
    redis_server.start()  # same port, empty
    ctx.flush()
    assert not product.is_dirty and not user.is_dirty
    row = engine.mysql().query_row("SELECT `name` FROM `ProductEntity` WHERE `id` = ?", product.id)
    assert row == ("Written after restart",)
    with fluxa_assert_queries(mysql=1, redis=3):
        assert U.must_get_by_id(fresh(engine), user.id).age == 42
    raw = redis_value(engine, U, user.id)
    assert raw is not None and codec.decode_row(U.cache_stamp, raw) is not None
    with fluxa_assert_queries(mysql=0, redis=1):
        assert U.must_get_by_id(fresh(engine), user.id).age == 42
    # The listener resubscribes; then the local tier serves again.
    wait_until(lambda: bus_of(engine).healthy, timeout=5.0)
    assert P.must_get_by_id(fresh(engine), product.id).name == "Written after restart"
    with fluxa_assert_queries(mysql=0, redis=0):
        assert P.must_get_by_id(fresh(engine), product.id).name == "Written after restart"
    found = P.get_by_unique_index_name(fresh(engine), "Written after restart")
    assert found is not None and found.id == product.id
    key = tiers_of(engine, P).unique_key("Name", codec.unique_token(("Written after restart",)))
    assert redis_server.client().get(key) == str(product.id).encode()


def test_new_needs_no_redis(private_engine: Engine, redis_server: RedisServer) -> None:
    ctx = fresh(private_engine)
    first = U.new(ctx)
    redis_server.kill()
    # Ids come from MySQL (runtime/ids.py): a type with no block reserved yet works too.
    assert U.new(ctx).id == first.id + 1
    category = CategoryEntityProvider.new(fresh(private_engine))
    assert category.id >= 1
