"""Nothing waits forever on a hung server (SPEC §3, bounded waits): the servers here
are stopped with SIGSTOP (alive, sockets open, nothing answers), the worst case
for a client. With the default pool options a read falls back to MySQL within
about one Redis read timeout (1 s) and later reads do not wait again; a flush is
refused within the same bound and writes nothing; a hung MySQL fails a call
within its read timeout. The bounds asserted are generous multiples of the
configured timeouts (the machine is shared): what is tested is that the wait is
bounded by the options, not how fast the machine is.
"""

from __future__ import annotations

import time

import pytest

from fluxa_django import (
    Context,
    MySQLOptions,
    OperationalError,
    PoolError,
    Registry,
)
from fluxa_django.migrate import apply_alters, plan_mysql
from tests import entities
from tests.cache_helpers import RedisServer, build_engine, users
from tests.generated import CategoryEntityProvider, UserEntityProvider
from tests.reliability.mariadb import MariaDBServer
from tests.reliability.summary import LINES
from tests.services import mysql_uri

U = UserEntityProvider


def timed(call: object) -> float:
    started = time.monotonic()
    call()  # type: ignore[operator]
    return time.monotonic() - started


def test_a_hung_redis_costs_a_read_one_timeout_and_refuses_a_flush(
    fluxa_ctx: Context, redis_server: RedisServer
) -> None:
    engine = build_engine(fluxa_ctx.engine.mysql().database, redis_server.address, 0)
    try:
        made = users(engine.new_context(), 6)
        ids = [u.id for u in made]
        U.get_by_ids(engine.new_context(), ids)  # cached in Redis
        redis_server.stop()

        def first_read() -> None:
            assert U.must_get_by_id(engine.new_context(), ids[0]).name == made[0].name

        first = timed(first_read)
        assert first < 3.0, f"a read waited {first:.2f} s for a hung Redis (timeout 1 s)"

        def more_reads() -> None:
            for id_, user in zip(ids[1:], made[1:], strict=True):
                assert U.must_get_by_id(engine.new_context(), id_).name == user.name

        more = timed(more_reads)
        assert more < 3.0, f"5 more reads took {more:.2f} s: each waited for Redis again"

        ctx = engine.new_context()
        user = U.must_get_by_id(ctx, ids[0])
        user.age = 77

        def refused_flush() -> None:
            with pytest.raises(PoolError, match="flush refused"):
                ctx.flush()

        refused = timed(refused_flush)
        assert refused < 3.0, f"a flush waited {refused:.2f} s before it was refused"
        assert user.is_dirty
        row = engine.mysql().query_row("SELECT `age` FROM `UserEntity` WHERE `id` = ?", ids[0])
        assert row == (30,), "nothing was written"
        LINES.append(
            f"hung redis (SIGSTOP, 1 s timeouts): first read {first * 1000:.0f} ms, "
            f"5 more reads {more * 1000:.0f} ms, flush refused after {refused * 1000:.0f} ms"
        )
        redis_server.resume()
        ctx.flush()  # the server answers again: the same change is written
        assert not user.is_dirty
    finally:
        engine.close()


def test_redis_timeouts_are_pool_options(redis_server: RedisServer) -> None:
    registry = Registry()
    registry.init_by_yaml(
        {
            "default": {
                "mysql": {"uri": mysql_uri("information_schema")},
                "redis": f"{redis_server.address}:0?connect_timeout=0.3&read_timeout=0.2",
            }
        }
    )
    engine = registry.validate()
    try:
        pool = engine.redis()
        assert pool.options.read_timeout == 0.2 and pool.options.connect_timeout == 0.3
        redis_server.stop()
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            pool.client.get("x")
        waited = time.monotonic() - started
        assert "Timeout" in type(raised.value).__name__
        assert waited < 1.5, f"GET waited {waited:.2f} s with a 0.2 s read timeout"
    finally:
        engine.close()


def test_a_hung_mysql_fails_a_call_within_its_read_timeout(
    second_mariadb: MariaDBServer,
) -> None:
    second_mariadb.execute("CREATE DATABASE IF NOT EXISTS bounded_waits")
    registry = Registry()
    options = MySQLOptions(connect_timeout=1, read_timeout=1, write_timeout=1)
    registry.register_mysql(second_mariadb.uri("bounded_waits"), options=options)
    registry.register_entity(entities.CategoryEntity)
    engine = registry.validate()
    try:
        apply_alters(engine, plan_mysql(engine).alters)
        ctx = engine.new_context()
        category = CategoryEntityProvider.new(ctx)
        category.name = "c"
        ctx.flush()
        second_mariadb.stop()
        started = time.monotonic()
        with pytest.raises((OperationalError, PoolError)):
            CategoryEntityProvider.get_by_id(engine.new_context(), category.id)
        waited = time.monotonic() - started
        LINES.append(f"hung mysql (SIGSTOP, 1 s timeouts): a read failed after {waited:.2f} s")
        # The read times out (1 s); a read is retried once on a fresh connection, whose
        # handshake then times out (connect timeout 1 s): about 2 s in all.
        assert waited < 6.0, f"a read waited {waited:.2f} s for a hung MySQL (timeouts 1 s)"
    finally:
        second_mariadb.resume()
        engine.close()
