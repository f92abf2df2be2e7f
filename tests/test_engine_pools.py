"""Engine pool accessors and the raw pools: MySQL, Redis, local cache."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import MySQLdb
import pytest

from fluxa_django import MySQLOptions, Registry
from fluxa_django.backends.mysql import MySQLPool
from fluxa_django.backends.redis import RedisPool
from fluxa_django.engine import Engine
from fluxa_django.errors import ConfigError, FluxaError, IntegrityError, OperationalError
from tests.services import MYSQL_HOST, MYSQL_PORT, REDIS_ADDRESS, mysql_uri


def root_connection(database: str) -> Any:
    return MySQLdb.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user="root", passwd="", db=database, autocommit=True
    )


def count_from_other_connection(database: str, table: str) -> int:
    conn = root_connection(database)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT COUNT(*) FROM `{table}`")
        return int(cur.fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def mysql_engine(mysql_db: str) -> Iterator[Engine]:
    registry = Registry()
    registry.register_mysql(mysql_uri(mysql_db), options=MySQLOptions(max_open_connections=4))
    engine = registry.validate()
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def pool(mysql_engine: Engine) -> MySQLPool:
    pool = mysql_engine.mysql()
    pool.exec(
        "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL) "
        "ENGINE=InnoDB"
    )
    return pool


@pytest.fixture
def redis_pool() -> Iterator[RedisPool]:
    registry = Registry()
    registry.register_redis(REDIS_ADDRESS, 0)
    engine = registry.validate()
    try:
        yield engine.redis()
    finally:
        engine.close()


# -- MySQL: transactions -----------------------------------------------------------------------


def test_begin_commits_when_the_block_ends(pool: MySQLPool, mysql_db: str) -> None:
    with pool.begin() as tx:
        tx.exec("INSERT INTO items (name) VALUES (?)", "a")
        tx.exec("INSERT INTO items (name) VALUES (?)", "b")
        assert tx.query("SELECT name FROM items ORDER BY id") == [("a",), ("b",)]
        # not visible to anybody else until the commit
        assert count_from_other_connection(mysql_db, "items") == 0
    assert count_from_other_connection(mysql_db, "items") == 2
    assert pool.query("SELECT name FROM items ORDER BY id") == [("a",), ("b",)]


def insert_then_fail(pool: MySQLPool) -> None:
    with pool.begin() as tx:
        tx.exec("INSERT INTO items (name) VALUES (?)", "lost")
        raise RuntimeError("boom")


def test_begin_rolls_back_on_exception(pool: MySQLPool, mysql_db: str) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        insert_then_fail(pool)
    assert pool.query("SELECT * FROM items") == []
    assert count_from_other_connection(mysql_db, "items") == 0
    # the connection went back to autocommit: a plain exec is visible at once
    pool.exec("INSERT INTO items (name) VALUES (?)", "kept")
    assert count_from_other_connection(mysql_db, "items") == 1


def test_explicit_rollback_and_commit(pool: MySQLPool, mysql_db: str) -> None:
    with pool.begin() as tx:
        tx.exec("INSERT INTO items (name) VALUES (?)", "undone")
        tx.rollback()
    assert count_from_other_connection(mysql_db, "items") == 0
    with pool.begin() as tx:
        tx.exec("INSERT INTO items (name) VALUES (?)", "done")
        tx.commit()
        assert count_from_other_connection(mysql_db, "items") == 1
    assert pool.query("SELECT name FROM items") == [("done",)]


# -- MySQL: exec / query ---------------------------------------------------------------------------


def test_exec_returns_last_insert_id_and_rows_affected(pool: MySQLPool) -> None:
    first = pool.exec("INSERT INTO items (name) VALUES (?)", "a")
    assert (first.last_insert_id, first.rows_affected) == (1, 1)
    many = pool.exec("INSERT INTO items (name) VALUES (?), (?), (?)", "b", "c", "d")
    assert many.rows_affected == 3
    assert many.last_insert_id == 2  # MySQL reports the first id of a multi-row insert
    update = pool.exec("UPDATE items SET name = ? WHERE id IN ?", "x", [1, 2, 3])
    assert update.rows_affected == 3
    unchanged = pool.exec("UPDATE items SET name = ? WHERE id = ?", "x", 1)
    assert unchanged.rows_affected == 0
    deleted = pool.exec("DELETE FROM items WHERE id > ?", 2)
    assert (deleted.rows_affected, deleted.last_insert_id) == (2, 0)


def test_query_and_query_row(pool: MySQLPool) -> None:
    pool.exec("INSERT INTO items (name) VALUES (?), (?), (?)", "c", "a", "b")
    assert pool.query("SELECT id, name FROM items ORDER BY name") == [(2, "a"), (3, "b"), (1, "c")]
    assert pool.query("SELECT id FROM items WHERE name = ?", "zzz") == []
    assert pool.query_row("SELECT name FROM items WHERE id = ?", 3) == ("b",)
    assert pool.query_row("SELECT name FROM items ORDER BY name DESC") == ("c",)
    assert pool.query_row("SELECT name FROM items WHERE id = ?", 99) is None


def test_sql_errors_surface_as_our_errors_naming_the_pool(pool: MySQLPool) -> None:
    with pytest.raises(OperationalError, match="no_such_table") as failed:
        pool.query("SELECT * FROM no_such_table")
    assert isinstance(failed.value.__cause__, MySQLdb.ProgrammingError)
    assert failed.value.pool == pool.code
    assert failed.value.code == 1146
    assert f"mysql pool {pool.code!r}" in str(failed.value)
    with pytest.raises(IntegrityError) as duplicate:
        pool.exec("INSERT INTO items (id, name) VALUES (?, ?), (?, ?)", 1, "a", 1, "b")
    assert isinstance(duplicate.value.__cause__, MySQLdb.IntegrityError)
    assert duplicate.value.code == 1062
    assert isinstance(duplicate.value, FluxaError)
    with pytest.raises(IntegrityError), pool.begin() as tx:
        tx.exec("INSERT INTO items (id, name) VALUES (?, ?)", 7, "x")
        tx.exec("INSERT INTO items (id, name) VALUES (?, ?)", 7, "y")
    assert pool.query("SELECT id FROM items WHERE id = 7") == [], "rolled back"


# -- MySQL: connection reuse and recovery --------------------------------------------------------


def connection_id(pool: MySQLPool) -> int:
    row = pool.query_row("SELECT CONNECTION_ID()")
    assert row is not None
    return int(row[0])


def test_sequential_calls_reuse_one_connection(pool: MySQLPool) -> None:
    first = connection_id(pool)
    assert connection_id(pool) == first
    pool.exec("INSERT INTO items (name) VALUES (?)", "a")
    with pool.begin() as tx:
        tx.exec("INSERT INTO items (name) VALUES (?)", "b")
    assert connection_id(pool) == first


def test_failed_statements_do_not_leak_connections(pool: MySQLPool) -> None:
    first = connection_id(pool)
    for _ in range(pool.limits.max_open + 2):
        with pytest.raises(OperationalError):
            pool.query("SELECT * FROM missing_table")
        with pytest.raises(ValueError, match="placeholder"):
            pool.query("SELECT ?")
    assert connection_id(pool) == first


def test_killed_connection_does_not_break_the_pool(pool: MySQLPool, mysql_db: str) -> None:
    victim = connection_id(pool)
    killer = root_connection(mysql_db)
    try:
        killer.cursor().execute(f"KILL {victim}")
    finally:
        killer.close()
    # at most one call may fail with the dead connection; the next one must work
    with contextlib.suppress(OperationalError):
        pool.query_row("SELECT 1")
    assert pool.query_row("SELECT 1") == (1,)
    assert connection_id(pool) != victim
    pool.exec("INSERT INTO items (name) VALUES (?)", "after-kill")
    assert pool.query("SELECT name FROM items") == [("after-kill",)]


# -- Redis -------------------------------------------------------------------------------------------


def test_incr_with_expire(redis_pool: RedisPool) -> None:
    key = f"fluxa:test:rate:{uuid.uuid4().hex}"
    try:
        assert redis_pool.incr_with_expire(key, 10) == 1
        ttl = redis_pool.client.ttl(key)
        assert 0 < ttl <= 10
        # later calls count on but keep the expiry set by the first one
        assert redis_pool.incr_with_expire(key, 1000) == 2
        assert redis_pool.incr_with_expire(key, 1000) == 3
        assert 0 < redis_pool.client.ttl(key) <= 10
        assert int(redis_pool.client.get(key) or 0) == 3
    finally:
        redis_pool.client.delete(key)


def test_locker_obtain_release(redis_pool: RedisPool) -> None:
    locker = redis_pool.get_locker()
    key = f"fluxa-test-{uuid.uuid4().hex}"
    lock = locker.obtain(key, ttl=5)
    assert lock is not None
    try:
        assert locker.obtain(key, ttl=5, wait_timeout=0) is None
        assert locker.obtain(key, ttl=5, wait_timeout=0.3) is None
    finally:
        lock.release()
    again = locker.obtain(key, ttl=5, wait_timeout=0)
    assert again is not None
    again.release()


def test_lock_expires_after_ttl(redis_pool: RedisPool) -> None:
    locker = redis_pool.get_locker()
    key = f"fluxa-test-{uuid.uuid4().hex}"
    first = locker.obtain(key, ttl=0.3)
    assert first is not None
    second = locker.obtain(key, ttl=5, wait_timeout=2)
    assert second is not None
    second.release()


def test_locks_are_independent_per_key(redis_pool: RedisPool) -> None:
    locker = redis_pool.get_locker()
    a = locker.obtain(f"fluxa-test-{uuid.uuid4().hex}", ttl=5)
    b = locker.obtain(f"fluxa-test-{uuid.uuid4().hex}", ttl=5)
    assert a is not None
    assert b is not None
    a.release()
    b.release()


# -- local cache ---------------------------------------------------------------------------------------


@pytest.fixture
def local_engine() -> Iterator[Engine]:
    registry = Registry()
    registry.register_local_cache("default", 0)
    registry.register_local_cache("lru", 2)
    engine = registry.validate()
    try:
        yield engine
    finally:
        engine.close()


def test_local_cache_get_set_remove_clear(local_engine: Engine) -> None:
    cache = local_engine.local_cache()
    assert cache.get("missing") is None
    assert cache.get("missing", "dflt") == "dflt"
    cache.set("a", 1)
    cache.set(("tuple", 2), {"x": 1})
    cache.set("none", None)
    assert cache.get("a") == 1
    assert cache.get(("tuple", 2)) == {"x": 1}
    assert cache.get("none", "dflt") is None
    assert cache.usage() == 3
    cache.set("a", 2)
    assert cache.get("a") == 2
    assert cache.usage() == 3
    cache.remove("a", "not-there")
    assert cache.get("a") is None
    assert cache.usage() == 2
    cache.clear()
    assert cache.usage() == 0
    assert cache.get(("tuple", 2)) is None


def test_unbounded_local_cache_keeps_everything(local_engine: Engine) -> None:
    cache = local_engine.local_cache("default")
    for i in range(5000):
        cache.set(i, i)
    assert cache.usage() == 5000
    assert cache.get(0) == 0


def test_local_cache_lru_eviction(local_engine: Engine) -> None:
    cache = local_engine.local_cache("lru")
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.set("c", 3)
    assert cache.usage() == 2
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    cache.set("d", 4)
    assert cache.get("a") is None
    assert (cache.get("c"), cache.get("d")) == (3, 4)


def test_local_cache_pools_are_separate(local_engine: Engine) -> None:
    local_engine.local_cache("default").set("k", "default")
    local_engine.local_cache("lru").set("k", "lru")
    assert local_engine.local_cache("default").get("k") == "default"
    assert local_engine.local_cache("lru").get("k") == "lru"


# -- unknown pool codes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accessor", "kind"),
    [
        (lambda e, c: e.mysql(c), "mysql"),
        (lambda e, c: e.redis(c), "redis"),
        (lambda e, c: e.local_cache(c), "local cache"),
        (lambda e, c: e.clickhouse(c), "clickhouse"),
        (lambda e, c: e.kafka(c), "kafka"),
    ],
    ids=["mysql", "redis", "local_cache", "clickhouse", "kafka"],
)
def test_unknown_pool_code(
    local_engine: Engine, accessor: Callable[[Engine, str], object], kind: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{kind} pool 'nope' is not registered"):
        accessor(local_engine, "nope")


@pytest.mark.parametrize(
    ("accessor", "kind"),
    [
        (lambda e: e.mysql(), "mysql"),
        (lambda e: e.redis(), "redis"),
        (lambda e: e.clickhouse(), "clickhouse"),
        (lambda e: e.kafka(), "kafka"),
    ],
    ids=["mysql", "redis", "clickhouse", "kafka"],
)
def test_default_pool_missing(
    local_engine: Engine, accessor: Callable[[Engine], object], kind: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{kind} pool 'default' is not registered"):
        accessor(local_engine)
