"""Two applications sharing one Redis database never read each other's rows
(SPEC §5): keys and channels are namespaced by the identity of the MySQL data,
the database, the table and ``app_name``. The second MySQL server is a real
MariaDB started by the test on another loopback port, with the same database name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from fluxa_django import Engine, Registry
from fluxa_django.migrate import apply_alters, plan_mysql
from fluxa_django.runtime import namespace
from fluxa_django.runtime.state import state_of
from tests import entities
from tests.cache_helpers import RedisServer, tiers_of
from tests.generated import UserEntityProvider
from tests.reliability.mariadb import MariaDBServer
from tests.services import MYSQL_HOST, MYSQL_PORT

U = UserEntityProvider


def _engine(uri: str, redis_address: str, app_name: str | None = None) -> Engine:
    registry = Registry()
    registry.register_mysql(uri)
    registry.register_redis(redis_address, 0)
    registry.register_local_cache("default", 100)
    registry.register_entity(entities.UserEntity)
    if app_name is not None:
        registry.set_option("app_name", app_name)
    engine = registry.validate()
    apply_alters(engine, plan_mysql(engine).alters)
    return engine


@pytest.fixture
def database(second_mariadb: MariaDBServer) -> Iterator[str]:
    """One database name, created on both servers."""
    import MySQLdb

    name = f"fluxa_ns_{uuid.uuid4().hex[:8]}"
    main = MySQLdb.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", passwd="")
    try:
        for run in (main.cursor().execute, second_mariadb.execute):
            run(f"CREATE DATABASE `{name}`")
        yield name
    finally:
        main.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        main.close()
        second_mariadb.execute(f"DROP DATABASE IF EXISTS `{name}`")


def _user(engine: Engine, name: str) -> None:
    ctx = engine.new_context()
    user = U.new_with_id(ctx, 1)
    user.name = name
    user.email = f"{name.lower()}@example.com"
    ctx.flush()


def test_same_database_name_on_two_servers_never_shares_rows(
    second_mariadb: MariaDBServer, redis_server: RedisServer, database: str
) -> None:
    here = _engine(f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{database}", redis_server.address)
    there = _engine(second_mariadb.uri(database), redis_server.address)
    try:
        _user(here, "Alice")
        _user(there, "Bob")
        assert U.must_get_by_id(here.new_context(), 1).name == "Alice"  # cached in Redis now
        assert U.must_get_by_id(there.new_context(), 1).name == "Bob"
        assert U.must_get_by_id(here.new_context(), 1).name == "Alice"
        assert U.get_by_unique_index_email(there.new_context(), "alice@example.com") is None
        assert tiers_of(here, U).prefix != tiers_of(there, U).prefix
    finally:
        here.close()
        there.close()


def test_the_namespace_follows_the_data_not_the_connection(
    redis_server: RedisServer, database: str
) -> None:
    """Two engines (processes) on one database agree on it; app_name separates apps."""
    uri = f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{database}"
    first = _engine(uri, redis_server.address, "shop")
    second = _engine(uri, redis_server.address, "shop")
    other_app = _engine(uri, redis_server.address, "billing")
    try:
        prefixes = [tiers_of(e, U).prefix for e in (first, second, other_app)]
        assert prefixes[0] == prefixes[1] != prefixes[2]
        names = [state_of(e).bus("default").channel for e in (first, second, other_app)]
        assert names[0] == names[1] != names[2]
    finally:
        for engine in (first, second, other_app):
            engine.close()


def test_keys_of_one_table_share_a_cluster_hash_slot(
    redis_server: RedisServer, database: str
) -> None:
    engine = _engine(f"mysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{database}", redis_server.address)
    try:
        tiers = tiers_of(engine, U)
        tags = {namespace.hash_tag(tiers.key(i)) for i in (1, 2, 10**12)}
        tags.add(namespace.hash_tag(tiers.unique_key("Email", "0" * 32)))
        assert len(tags) == 1 and "" not in tags
    finally:
        engine.close()
