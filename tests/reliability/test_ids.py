"""Ids stay unique whatever Redis does (SPEC §5): they come from a counter committed
in the entity's MySQL database (``_fluxa_ids``), never from Redis alone.

Each engine here stands for a process of its own (its own pools and id blocks).
Redis is a real server that the test kills and restarts empty, or restores from
an older snapshot; MySQL is a second MariaDB server that the test stops and kills.
"""

from __future__ import annotations

import pytest

from fluxa_django import Context, Engine, PoolError, Registry
from fluxa_django.migrate import apply_alters, plan_mysql
from fluxa_django.runtime.ids import LEDGER
from tests import entities
from tests.cache_helpers import RedisServer, build_engine
from tests.generated import UserEntityProvider
from tests.reliability.mariadb import MariaDBServer

U = UserEntityProvider


def new_users(ctx: Context, count: int, tag: str) -> list[int]:
    ids = []
    for i in range(count):
        user = U.new(ctx)
        user.name = f"{tag}{i}"
        user.email = f"{tag}{i}@example.com"
        ids.append(user.id)
    return ids


def test_ids_stay_unique_when_redis_restarts_empty(
    fluxa_ctx: Context, redis_server: RedisServer
) -> None:
    database = fluxa_ctx.engine.mysql().database
    a = build_engine(database, redis_server.address, 0)
    b: Engine | None = None
    try:
        ctx_a = a.new_context()
        held = new_users(ctx_a, 1, "a")  # process A holds a block, nothing flushed
        redis_server.kill()
        redis_server.start()  # empty: no persistence
        b = build_engine(database, redis_server.address, 0)
        ctx_b = b.new_context()
        taken_by_b = new_users(ctx_b, 50, "b")
        ctx_b.flush()
        held += new_users(ctx_a, 250, "c")  # past A's first block
        ctx_a.flush()  # no duplicate key: A never reuses what B took
        assert not set(held) & set(taken_by_b)
        rows = fluxa_ctx.engine.mysql().query(
            "SELECT COUNT(*), COUNT(DISTINCT `id`) FROM UserEntity"
        )
        assert rows == [(301, 301)]
    finally:
        a.close()
        if b is not None:
            b.close()


def test_ids_skip_rows_inserted_with_explicit_ids(fluxa_ctx: Context) -> None:
    mysql = fluxa_ctx.engine.mysql()
    first = U.new(fluxa_ctx).id
    mysql.exec("INSERT INTO UserEntity (id, name, email) VALUES (?, 'x', 'x@e')", first + 5000)
    ids = new_users(fluxa_ctx, 400, "n")  # runs past the first block
    fluxa_ctx.clear_flush()
    in_first_block = [i for i in ids if i < first + 100]
    assert all(i > first + 5000 for i in ids if i not in in_first_block)


def test_new_with_mysql_down_raises_pool_error_naming_the_pool(
    second_mariadb: MariaDBServer, redis_server: RedisServer
) -> None:
    second_mariadb.execute("CREATE DATABASE IF NOT EXISTS ids_down")
    registry = Registry()
    registry.register_mysql(second_mariadb.uri("ids_down"))
    registry.register_redis(redis_server.address, 0)
    registry.register_entity(entities.UserEntity)
    engine = registry.validate()
    try:
        apply_alters(engine, plan_mysql(engine).alters)
        second_mariadb.kill()
        with pytest.raises(PoolError) as raised:
            U.new(engine.new_context())
        assert raised.value.pool == "default" and "cannot connect" in str(raised.value)
        second_mariadb.start()
        ctx = engine.new_context()
        assert U.new(ctx).id == 1, "new() works again once the server is back"
        counters = engine.mysql().query(
            f"SELECT `table_name`, `next_id` FROM `{LEDGER}` WHERE `table_name` = 'UserEntity'"
        )
        assert counters == [("UserEntity", 101)]
    finally:
        engine.close()
