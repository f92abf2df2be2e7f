"""``Registry.validate()`` against the real services: connections, limits and errors."""

from __future__ import annotations

import logging
import urllib.parse
import uuid
from collections.abc import Iterator

import MySQLdb
import pytest
from confluent_kafka.cimpl import NewTopic

from fluxa_django import (
    ClickhouseOptions,
    Entity,
    KafkaPoolOptions,
    MySQLOptions,
    RedisOptions,
    Registry,
    field,
    uint64,
)
from fluxa_django.conf import entity_classes
from fluxa_django.engine import Engine
from fluxa_django.errors import DefinitionErrors, FluxaError, PoolError
from tests.entities import (
    BookEntity,
    CategoryEntity,
    DeletableUserEntity,
    EveryTypeEntity,
    ProductEntity,
    UserEntity,
)
from tests.services import (
    CLICKHOUSE_URI,
    KAFKA_BROKER,
    MYSQL_HOST,
    MYSQL_PORT,
    PLAIN_REDIS_ADDRESS,
    REDIS_ADDRESS,
    mysql_uri,
)

SECRET = "s3cr3t-PW"
CLOSED = "127.0.0.1:1"  # nothing listens on port 1


class SearchOnlyEntity(Entity):
    id: uint64
    title: str = field(searchable=True)

    class Meta:
        redis_search = "search"


class IdNotFirstEntity(Entity):
    name: str
    id: uint64


class UnsupportedTypeEntity(Entity):
    id: uint64
    value: complex


@pytest.fixture
def capture_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_secret(exc: BaseException, *objects: object) -> None:
    texts = [str(exc), repr(exc), *(repr(o) for o in objects), *(str(o) for o in objects)]
    for text in texts:
        assert SECRET not in text


def validate_error(registry: Registry) -> PoolError:
    with pytest.raises(PoolError) as info:
        registry.validate()
    return info.value


# -- a fully working engine -----------------------------------------------------------------


@pytest.fixture
def full_engine(mysql_db: str) -> Iterator[Engine]:
    registry = Registry()
    registry.register_mysql(mysql_uri(mysql_db))
    registry.register_redis(REDIS_ADDRESS, 0)
    registry.register_redis(REDIS_ADDRESS, 0, "search")  # BookEntity, EveryTypeEntity
    registry.register_local_cache("default", 100)
    registry.register_clickhouse(CLICKHOUSE_URI, "analytics")
    registry.register_kafka([KAFKA_BROKER], "events")
    registry.register_entity(*entity_classes(["tests.entities"]))
    registry.set_option("app_name", "validate-test")
    engine = registry.validate()
    try:
        yield engine
    finally:
        engine.close()


def test_validate_returns_a_working_engine(full_engine: Engine, mysql_db: str) -> None:
    assert set(full_engine.schemas) == {
        CategoryEntity,
        ProductEntity,
        EveryTypeEntity,
        UserEntity,
        DeletableUserEntity,
        BookEntity,
    }
    assert full_engine.schema("ProductEntity").table == "ProductEntity"
    assert full_engine.option("app_name") == "validate-test"

    mysql = full_engine.mysql()
    assert mysql.query_row("SELECT 1") == (1,)
    assert mysql.query_row("SELECT DATABASE()") == (mysql_db,)

    redis = full_engine.redis()
    assert redis.client.ping() is True
    assert redis.features.has_search
    assert redis.features.version >= (7, 0)

    cache = full_engine.local_cache()
    cache.set("k", "v")
    assert cache.get("k") == "v"

    assert full_engine.clickhouse("analytics").query_row("SELECT 1") == (1,)


def test_kafka_pool_produces(full_engine: Engine) -> None:
    kafka = full_engine.kafka("events")
    admin = kafka.admin()
    topic = f"fluxa-test-{uuid.uuid4().hex[:12]}"
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(10)
    try:
        assert topic in admin.list_topics(timeout=5).topics
        kafka.produce_sync(topic, b"hello", key=b"k")
    finally:
        for future in admin.delete_topics([topic]).values():
            future.result(10)


@pytest.fixture
def mysql_user_with_password(mysql_db: str) -> Iterator[tuple[str, str]]:
    """A MySQL user whose password contains '@' and ':' (dropped afterwards)."""
    user = f"fluxa_u_{uuid.uuid4().hex[:8]}"
    password = f"{SECRET}@x:y"
    root = MySQLdb.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", passwd="")
    try:
        cur = root.cursor()
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        cur.execute(f"GRANT ALL ON `{mysql_db}`.* TO %s@'%%'", (user,))
        yield user, password
    finally:
        root.cursor().execute("DROP USER IF EXISTS %s@'%%'", (user,))
        root.close()


def test_password_reaches_server_but_no_repr_or_log(
    mysql_db: str,
    mysql_user_with_password: tuple[str, str],
    capture_logs: pytest.LogCaptureFixture,
) -> None:
    user, password = mysql_user_with_password
    registry = Registry()
    registry.register_mysql(f"{user}:{password}@tcp({MYSQL_HOST}:{MYSQL_PORT})/{mysql_db}")
    registry.register_mysql(
        f"mysql://{user}:{urllib.parse.quote(password, safe='')}@{MYSQL_HOST}:{MYSQL_PORT}/{mysql_db}",
        "url_form",
    )
    engine = registry.validate()
    try:
        for code in ("default", "url_form"):
            row = engine.mysql(code).query_row("SELECT CURRENT_USER()")
            assert row is not None
            assert str(row[0]).startswith(f"{user}@")
        texts = [
            repr(engine),
            repr(registry),
            repr(engine.mysql()),
            repr(engine.mysql("url_form")),
            repr(registry.mysql_pools),
            str(engine.mysql().uri),
            capture_logs.text,
        ]
        assert "fluxa engine ready" in capture_logs.text
        for text in texts:
            assert SECRET not in text
    finally:
        engine.close()


# -- MySQL limits come from the server ------------------------------------------------------


def server_variable(engine: Engine, name: str) -> int:
    row = engine.mysql().query_row("SHOW VARIABLES LIKE ?", name)
    assert row is not None
    return int(row[1])


def validated(mysql_db: str, options: MySQLOptions) -> Engine:
    registry = Registry()
    registry.register_mysql(mysql_uri(mysql_db), options=options)
    return registry.validate()


def test_limits_are_capped_by_the_server(mysql_db: str) -> None:
    engine = validated(
        mysql_db,
        MySQLOptions(
            max_open_connections=100_000,
            max_idle_connections=1_000_000,
            conn_max_lifetime=10**9,
        ),
    )
    try:
        max_connections = server_variable(engine, "max_connections")
        wait_timeout = server_variable(engine, "wait_timeout")
        limits = engine.mysql().limits
        assert limits.max_open == max_connections
        assert limits.max_idle == max_connections
        assert limits.max_lifetime == wait_timeout
    finally:
        engine.close()


def test_limits_default_when_options_are_zero(mysql_db: str) -> None:
    engine = validated(mysql_db, MySQLOptions())
    try:
        max_connections = server_variable(engine, "max_connections")
        wait_timeout = server_variable(engine, "wait_timeout")
        limits = engine.mysql().limits
        assert limits.max_open == min(100, max_connections)
        assert limits.max_idle == limits.max_open
        assert limits.max_lifetime == min(300, wait_timeout)
    finally:
        engine.close()


def test_small_limits_are_kept(mysql_db: str) -> None:
    engine = validated(
        mysql_db,
        MySQLOptions(max_open_connections=5, max_idle_connections=2, conn_max_lifetime=60),
    )
    try:
        limits = engine.mysql().limits
        assert (limits.max_open, limits.max_idle, limits.max_lifetime) == (5, 2, 60)
    finally:
        engine.close()


def test_idle_limit_never_exceeds_open_limit(mysql_db: str) -> None:
    engine = validated(mysql_db, MySQLOptions(max_open_connections=3, max_idle_connections=50))
    try:
        assert engine.mysql().limits.max_idle == 3
    finally:
        engine.close()


# -- every failure names its pool, never a credential --------------------------------------------


def test_mysql_unreachable(capture_logs: pytest.LogCaptureFixture) -> None:
    registry = Registry()
    registry.register_mysql(f"root:{SECRET}@tcp({CLOSED})/app", "main")
    exc = validate_error(registry)
    assert exc.pool == "main"
    assert "mysql pool 'main'" in str(exc)
    assert_no_secret(exc, registry, registry.mysql_pools["main"])
    assert SECRET not in capture_logs.text


def test_mysql_unknown_database() -> None:
    registry = Registry()
    registry.register_mysql(mysql_uri(f"fluxa_missing_{uuid.uuid4().hex[:8]}"), "main")
    exc = validate_error(registry)
    assert exc.pool == "main"
    assert "mysql pool 'main'" in str(exc)
    assert "Unknown database" in str(exc)


def test_mysql_access_denied(capture_logs: pytest.LogCaptureFixture) -> None:
    registry = Registry()
    registry.register_mysql(f"nouser_x:{SECRET}@tcp({MYSQL_HOST}:{MYSQL_PORT})/mysql", "main")
    exc = validate_error(registry)
    assert exc.pool == "main"
    assert "mysql pool 'main'" in str(exc)
    assert "Access denied" in str(exc)
    assert_no_secret(exc, registry)
    assert SECRET not in capture_logs.text


def test_mysql_url_form_error_hides_percent_encoded_password() -> None:
    registry = Registry()
    registry.register_mysql("mysql://nouser_x:s3cr3t%2DPW@127.0.0.1:1/app", "main")
    exc = validate_error(registry)
    assert exc.pool == "main"
    assert_no_secret(exc, registry)
    assert "s3cr3t%2DPW" not in str(exc)


def test_redis_unreachable(capture_logs: pytest.LogCaptureFixture) -> None:
    registry = Registry()
    registry.register_redis(CLOSED, 0, "cache", RedisOptions(user="u", password=SECRET))
    exc = validate_error(registry)
    assert exc.pool == "cache"
    assert "redis pool 'cache'" in str(exc)
    assert_no_secret(exc, registry, registry.redis_pools["cache"])
    assert SECRET not in capture_logs.text


def test_redis_without_search_module(mysql_db: str) -> None:
    registry = Registry()
    registry.register_mysql(mysql_uri(mysql_db))
    registry.register_redis(PLAIN_REDIS_ADDRESS, 0, "search")
    registry.register_entity(SearchOnlyEntity)
    exc = validate_error(registry)
    assert exc.pool == "search"
    assert "redis pool 'search'" in str(exc)
    assert "SearchOnlyEntity" in str(exc)
    assert "search module" in str(exc)


def test_redis_with_search_module_accepts_searchable_entity(mysql_db: str) -> None:
    registry = Registry()
    registry.register_mysql(mysql_uri(mysql_db))
    registry.register_redis(REDIS_ADDRESS, 0, "search")
    registry.register_entity(SearchOnlyEntity)
    engine = registry.validate()
    try:
        assert engine.schema(SearchOnlyEntity).redis_search == "search"
        assert engine.redis("search").features.has_search
    finally:
        engine.close()


def test_plain_redis_is_fine_without_searchable_entities() -> None:
    registry = Registry()
    registry.register_redis(PLAIN_REDIS_ADDRESS, 0)
    engine = registry.validate()
    try:
        assert not engine.redis().features.has_search
        assert engine.redis().client.ping() is True
    finally:
        engine.close()


def test_clickhouse_unreachable(capture_logs: pytest.LogCaptureFixture) -> None:
    registry = Registry()
    registry.register_clickhouse(
        f"clickhouse://default:{SECRET}@{CLOSED}/default",
        "analytics",
        ClickhouseOptions(max_open_connections=2),
    )
    exc = validate_error(registry)
    assert exc.pool == "analytics"
    assert "clickhouse pool 'analytics'" in str(exc)
    assert_no_secret(exc, registry, registry.clickhouse_pools["analytics"])
    assert SECRET not in capture_logs.text


def test_kafka_unreachable(capture_logs: pytest.LogCaptureFixture) -> None:
    registry = Registry()
    registry.register_kafka(
        [CLOSED],
        "events",
        KafkaPoolOptions(sasl_mechanism="PLAIN", sasl_user="u", sasl_password=SECRET),
    )
    exc = validate_error(registry)
    assert exc.pool == "events"
    assert "kafka pool 'events'" in str(exc)
    assert_no_secret(exc, registry, registry.kafka_pools["events"])
    assert SECRET not in capture_logs.text


def test_first_failing_pool_is_named_when_others_work(mysql_db: str) -> None:
    registry = Registry()
    registry.register_mysql(mysql_uri(mysql_db))
    registry.register_redis(REDIS_ADDRESS, 0)
    registry.register_clickhouse(CLICKHOUSE_URI, "analytics")
    registry.register_clickhouse(f"clickhouse://{CLOSED}/default", "broken")
    exc = validate_error(registry)
    assert exc.pool == "broken"
    assert "clickhouse pool 'broken'" in str(exc)


# -- definition errors ---------------------------------------------------------------------------


def test_definition_errors_list_every_problem(mysql_db: str) -> None:
    registry = Registry()
    registry.register_mysql(mysql_uri(mysql_db))
    registry.register_entity(IdNotFirstEntity, UnsupportedTypeEntity, CategoryEntity)
    with pytest.raises(DefinitionErrors) as info:
        registry.validate()
    errors = info.value.errors
    assert {e.entity for e in errors} == {"IdNotFirstEntity", "UnsupportedTypeEntity"}
    by_entity = {e.entity: e for e in errors}
    assert by_entity["IdNotFirstEntity"].code == "E011"
    assert by_entity["UnsupportedTypeEntity"].code == "E010"
    assert by_entity["UnsupportedTypeEntity"].field == "value"
    assert "and 1 more" in str(info.value)
    assert isinstance(info.value, FluxaError)
