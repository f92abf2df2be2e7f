"""The pytest plugin (auto-registered): fixtures for projects that use fluxa_django.

- ``fluxa_engine``: the engine from ``settings.FLUXA``, with every MySQL pool on
  a test database (a Django alias uses pytest-django's test database; a pool
  given by URI uses ``test_<name>``, created here) and the schema applied.
- ``fluxa_ctx``: a fresh Context per test; entity tables emptied and the Redis
  databases of the pools flushed before the test. Point the test settings'
  Redis pools at databases reserved for tests.
- ``fluxa_assert_queries``: ``with fluxa_assert_queries(mysql=1, redis=0): ...``
  fails when the block makes a different number of round trips.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from fluxa_django.engine import Engine
from fluxa_django.migrate.search import apply_search, plan_search
from fluxa_django.runtime.context import Context
from fluxa_django.runtime.ids import CREATE_LEDGER, LEDGER
from fluxa_django.runtime.namespace import IDENTITY_ROW, database_identity, key_prefix
from fluxa_django.runtime.observe import OBSERVERS
from fluxa_django.runtime.search_index import for_schema
from fluxa_django.runtime.state import state_of
from fluxa_django.schema.model import EntitySchema


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests using fluxa fixtures get ``django_db(transaction=True)``.

    pytest-django creates test databases only for marked tests, and flushes
    must really commit (their cache side effects wait for the commit).
    """
    if not _uses_django_database():
        return
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"fluxa_ctx", "fluxa_engine"} and item.get_closest_marker("django_db") is None:
            item.add_marker(pytest.mark.django_db(transaction=True))


def _uses_django_database() -> bool:
    """True when a FLUXA MySQL pool is a Django DATABASES alias (``{"database": ...}``)."""
    try:
        from django.conf import settings

        pools: dict[str, Any] = dict(getattr(settings, "FLUXA", {}).get("POOLS", {}))
    except Exception:
        return False
    return any(
        isinstance(p, dict) and isinstance(p.get("mysql"), dict) and "database" in p["mysql"]
        for p in pools.values()
    )


def _test_registry() -> Any:
    from fluxa_django.conf import registry_from_settings
    from fluxa_django.config import MySQLURI

    registry = registry_from_settings()
    for code, pool in list(registry.mysql_pools.items()):
        if pool.django_alias is None and not pool.uri.database.startswith("test_"):
            uri: MySQLURI = replace(pool.uri, database=f"test_{pool.uri.database}")
            registry.mysql_pools[code] = replace(pool, uri=uri)
    return registry


def _database(uri: Any, statement: str) -> None:
    import MySQLdb

    conn = MySQLdb.connect(**uri.connect_kwargs(with_database=False))
    try:
        conn.cursor().execute(statement.format(name=uri.database))
    finally:
        conn.close()


@pytest.fixture(scope="session")
def fluxa_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The engine on test databases, schema applied (built once per session)."""
    from fluxa_django import conf
    from fluxa_django.migrate import apply_alters, plan_mysql

    registry = _test_registry()
    if any(p.django_alias for p in registry.mysql_pools.values()):
        request.getfixturevalue("django_db_setup")
        blocker = request.getfixturevalue("django_db_blocker")
        unblock: contextlib.AbstractContextManager[Any] = blocker.unblock()
    else:
        unblock = contextlib.nullcontext()
    with unblock:
        registry = _test_registry()  # aliases now name pytest-django's test databases
        for pool in registry.mysql_pools.values():
            if pool.django_alias is None:
                _database(pool.uri, "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        engine = registry.validate()
        apply_alters(engine, plan_mysql(engine).alters)
        apply_search(engine, plan_search(engine))
    conf._engine = engine  # get_engine() and the middleware use the test engine
    yield engine
    conf._engine = None
    for schema in engine.schemas.values():
        if schema.redis_search is not None:  # the test database goes: so do its indexes
            with contextlib.suppress(Exception):
                for_schema(engine, schema).drop()
    engine.close()
    for pool in registry.mysql_pools.values():
        if pool.django_alias is None:
            _database(pool.uri, "DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def fluxa_ctx(fluxa_engine: Engine, request: pytest.FixtureRequest) -> Context:
    """A fresh Context; entity tables are empty, Redis databases flushed, local caches cleared."""
    if any(p.django_alias for p in fluxa_engine.mysql_pools.values()):
        request.getfixturevalue("transactional_db")
    for schema in fluxa_engine.schemas.values():
        fluxa_engine.mysql(schema.mysql_pool).exec(f"DELETE FROM `{schema.table}`")
    for code in {schema.mysql_pool for schema in fluxa_engine.schemas.values()}:
        # id counters start again, as on a fresh database (ids.py)
        fluxa_engine.mysql(code).exec(CREATE_LEDGER)
        fluxa_engine.mysql(code).exec(
            f"DELETE FROM `{LEDGER}` WHERE `table_name` <> ?", IDENTITY_ROW
        )
    state_of(fluxa_engine).forget_ids()
    search_pools: set[str] = {
        s.redis_search for s in fluxa_engine.schemas.values() if s.redis_search
    }
    for pool in fluxa_engine.redis_pools.values():
        if pool.code not in search_pools:
            clear_redis_db(pool.client)
    for schema in fluxa_engine.schemas.values():
        # database 0 of a search pool is shared (RediSearch indexes only database 0, and
        # FLUSHDB would drop the indexes): delete this application's keys there instead
        if schema.redis_search is not None:
            for_schema(fluxa_engine, schema).clear()
        for code in {schema.redis_cache or "", schema.redis_search or ""} & search_pools:
            delete_matching(
                fluxa_engine.redis(code).client, cache_key_pattern(fluxa_engine, schema)
            )
    for cache in fluxa_engine.local_cache_pools.values():
        cache.clear()
    return fluxa_engine.new_context()


def cache_key_pattern(engine: Engine, schema: EntitySchema) -> str:
    """The SCAN pattern of one entity's cache keys on ``engine`` (its namespace)."""
    mysql = engine.mysql(schema.mysql_pool)
    prefix = key_prefix(
        database_identity(mysql), mysql.database, schema.table, str(engine.option("app_name") or "")
    )
    return "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"


def clear_redis_db(client: Any) -> None:
    """Delete every key of the client's database, like ``FLUSHDB`` but key by key:
    on a server with RediSearch, ``FLUSHDB`` of *any* database drops *every* search
    index of the server (other applications' too)."""
    delete_matching(client, "*")


def delete_matching(client: Any, pattern: str) -> None:
    """Unlink every key matching ``pattern`` (SCAN: never blocks the server)."""
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, match=pattern, count=1000)
        if keys:
            client.unlink(*keys)
        if not cursor:
            break


class QueryCounter:
    """Counts round trips per source while active."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {"mysql": 0, "redis": 0}
        self.operations: list[tuple[str, str]] = []

    def __call__(self, source: str, operation: str) -> None:
        self.counts[source] = self.counts.get(source, 0) + 1
        self.operations.append((source, operation))


@pytest.fixture
def fluxa_assert_queries() -> Callable[..., contextlib.AbstractContextManager[QueryCounter]]:
    """``with fluxa_assert_queries(mysql=N, redis=M):`` pins the round trips of a block."""

    @contextlib.contextmanager
    def assert_queries(
        mysql: int | None = None, redis: int | None = None
    ) -> Iterator[QueryCounter]:
        counter = QueryCounter()
        OBSERVERS.append(counter)
        try:
            yield counter
        finally:
            OBSERVERS.remove(counter)
        expected = {"mysql": mysql, "redis": redis}
        for source, count in expected.items():
            if count is not None and counter.counts[source] != count:
                ops = [op for src, op in counter.operations if src == source]
                pytest.fail(
                    f"expected {count} {source} round trip(s), got {counter.counts[source]}: {ops}"
                )

    return assert_queries
