"""Pooled MySQL connections that died while idle (the server restarted, or killed
them) cost no failed call: a read runs once more on a fresh connection, a flush
begins on a fresh one. A write that may have reached the server is never retried."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from fluxa_django import Engine, OperationalError, Registry
from fluxa_django.migrate import apply_alters, plan_mysql
from tests import entities
from tests.generated import CategoryEntityProvider
from tests.reliability.mariadb import MariaDBServer

C = CategoryEntityProvider


@pytest.fixture
def engine(second_mariadb: MariaDBServer) -> Iterator[Engine]:
    second_mariadb.execute("DROP DATABASE IF EXISTS dead_conns")
    second_mariadb.execute("CREATE DATABASE dead_conns")
    registry = Registry()
    registry.register_mysql(second_mariadb.uri("dead_conns"))
    registry.register_entity(entities.CategoryEntity)
    engine = registry.validate()
    apply_alters(engine, plan_mysql(engine).alters)
    try:
        yield engine
    finally:
        engine.close()


def idle_connections(engine: Engine, count: int) -> list[int]:
    """Make the pool hold ``count`` idle connections; their server thread ids."""
    pool = engine.mysql()
    with contextlib.ExitStack() as stack:
        raws = [stack.enter_context(pool.connection()) for _ in range(count)]
        return [int(raw.thread_id()) for raw in raws]


def seed(engine: Engine, count: int) -> list[int]:
    ctx = engine.new_context()
    ids = []
    for i in range(count):
        category = C.new(ctx)
        category.name = f"c{i}"
        ids.append(category.id)
    ctx.flush()
    return ids


def test_reads_and_flushes_survive_a_server_restart(
    engine: Engine, second_mariadb: MariaDBServer
) -> None:
    ids = seed(engine, 6)
    idle_connections(engine, 4)
    second_mariadb.kill()
    second_mariadb.start()
    failures = 0
    for id_ in ids:  # every call: none may fail on a dead pooled connection
        ctx = engine.new_context()
        try:
            assert C.must_get_by_id(ctx, id_).id == id_
        except OperationalError:
            failures += 1
    assert failures == 0
    idle_connections(engine, 4)
    second_mariadb.kill()
    second_mariadb.start()
    ctx = engine.new_context()
    category = C.must_get_by_id(ctx, ids[0])  # a fresh connection again
    idle_connections(engine, 4)
    second_mariadb.kill()
    second_mariadb.start()
    category.name = "renamed after restart"
    ctx.flush()  # BEGIN on a dead connection is retried: nothing was sent
    assert engine.mysql().query("SELECT name FROM CategoryEntity WHERE id = ?", ids[0]) == [
        ("renamed after restart",)
    ]


def test_connections_the_server_killed_while_idle_are_replaced(
    engine: Engine, second_mariadb: MariaDBServer
) -> None:
    ids = seed(engine, 3)
    threads = idle_connections(engine, 3)
    for thread in threads:
        second_mariadb.execute(f"KILL {thread}")
    ctx = engine.new_context()
    assert [c.id for c in C.get_by_ids(ctx, ids)] == ids
    for thread in idle_connections(engine, 3):
        second_mariadb.execute(f"KILL {thread}")
    assert engine.mysql().query_row("SELECT COUNT(*) FROM CategoryEntity") == (3,)


def test_a_write_whose_connection_dies_is_not_retried(
    engine: Engine, second_mariadb: MariaDBServer
) -> None:
    (id_,) = seed(engine, 1)
    ctx = engine.new_context()
    category = C.must_get_by_id(ctx, id_)
    category.name = "lost"
    pool = engine.mysql()
    with pool.begin() as tx:  # the connection a transaction will get: killed inside it
        thread = int(tx.raw.thread_id())
        tx.exec("SELECT 1")
    with pytest.raises(OperationalError):
        with pool.begin() as tx:
            assert int(tx.raw.thread_id()) == thread
            second_mariadb.execute(f"KILL {thread}")
            tx.exec("UPDATE CategoryEntity SET name = 'x' WHERE id = ?", id_)
    assert pool.query("SELECT name FROM CategoryEntity WHERE id = ?", id_) == [("c0",)]
    ctx.flush()  # the entity is still dirty and a later flush works
    assert pool.query("SELECT name FROM CategoryEntity WHERE id = ?", id_) == [("lost",)]
