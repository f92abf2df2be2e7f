"""``Registry``: registration, bulk configuration, options and definition checks (no I/O)."""

from __future__ import annotations

import re
from typing import Any

import pytest

import fluxa_django
from fluxa_django import (
    DEFAULT_POOL_CODE,
    AsyncFlushOptions,
    ClickhouseOptions,
    Config,
    ConfigAsyncFlush,
    ConfigClickhouse,
    ConfigKafka,
    ConfigKafkaConsumerGroup,
    ConfigKafkaTopic,
    ConfigLocalCache,
    ConfigMysql,
    ConfigRedis,
    ConfigRedisSentinel,
    Entity,
    KafkaConsumerGroup,
    KafkaPoolOptions,
    KafkaTopic,
    MySQLOptions,
    RedisOptions,
    Registry,
    uint64,
)
from fluxa_django.conf import entity_classes
from fluxa_django.errors import ConfigError, DefinitionErrors
from tests.entities import (
    BookEntity,
    CategoryEntity,
    DeletableUserEntity,
    EveryTypeEntity,
    ProductEntity,
    UserEntity,
)
from tests.test_config import seed_yaml

SECRET = "s3cr3t-PW"


# -- register_* ------------------------------------------------------------------------


def test_default_pool_code() -> None:
    assert DEFAULT_POOL_CODE == "default"
    registry = Registry()
    registry.register_mysql("root@tcp(h:3306)/app")
    registry.register_redis("h:6379")
    registry.register_local_cache()
    registry.register_clickhouse("clickhouse://h:9000/default")
    registry.register_kafka(["h:9092"])
    for pools in (
        registry.mysql_pools,
        registry.redis_pools,
        registry.local_cache_pools,
        registry.clickhouse_pools,
        registry.kafka_pools,
    ):
        assert list(pools) == ["default"]


def test_register_mysql() -> None:
    registry = Registry()
    options = MySQLOptions(
        conn_max_lifetime=60,
        max_open_connections=20,
        max_idle_connections=5,
        default_encoding="utf8mb4",
        default_collate="general_ci",
        ignored_tables=("legacy",),
    )
    registry.register_mysql("app:pw@tcp(db.local:3307)/shop", "shop", options)
    pool = registry.mysql_pools["shop"]
    assert pool.code == "shop"
    assert (pool.uri.user, pool.uri.password) == ("app", "pw")
    assert (pool.uri.host, pool.uri.port, pool.uri.database) == ("db.local", 3307, "shop")
    assert pool.options == options
    assert pool.options.collation == "utf8mb4_general_ci"


def test_register_mysql_fills_empty_encoding_and_collation() -> None:
    registry = Registry()
    registry.register_mysql(
        "mysql://root@h/app", "logs", MySQLOptions(default_encoding="", default_collate="")
    )
    options = registry.mysql_pools["logs"].options
    assert (options.default_encoding, options.default_collate) == ("utf8mb4", "unicode_520_ci")
    assert registry.pool_catalog().table_options("logs").collation == "utf8mb4_unicode_520_ci"


def test_register_redis_direct_and_sentinel() -> None:
    registry = Registry()
    registry.register_redis("cache.local:6379", 3, "sessions", RedisOptions(user="u", password="p"))
    registry.register_redis(
        "",
        2,
        "cluster",
        RedisOptions(master="mymaster", sentinels=(":26379", "192.168.1.2:26379")),
    )
    sessions = registry.redis_pools["sessions"]
    assert (sessions.address, sessions.db) == ("cache.local:6379", 3)
    assert (sessions.options.user, sessions.options.password) == ("u", "p")
    cluster = registry.redis_pools["cluster"]
    assert (cluster.address, cluster.db) == ("", 2)
    assert cluster.options.master == "mymaster"
    assert cluster.options.sentinels == (":26379", "192.168.1.2:26379")


def test_register_local_cache() -> None:
    registry = Registry()
    registry.register_local_cache("default", 100000)
    registry.register_local_cache("static_data", 0)
    assert registry.local_cache_pools == {"default": 100000, "static_data": 0}


def test_register_clickhouse() -> None:
    registry = Registry()
    registry.register_clickhouse("clickhouse://localhost:9000/default", "analytics")
    registry.register_clickhouse(
        "clickhouse://localhost:9000/logs", "ch_logs", ClickhouseOptions(max_open_connections=20)
    )
    assert registry.clickhouse_pools["analytics"].uri == "clickhouse://localhost:9000/default"
    assert registry.clickhouse_pools["analytics"].options == ClickhouseOptions()
    assert registry.clickhouse_pools["ch_logs"].options.max_open_connections == 20


def test_register_kafka() -> None:
    registry = Registry()
    registry.register_kafka(["k1:9092", "k2:9092"], "events", KafkaPoolOptions(client_id="svc"))
    pool = registry.kafka_pools["events"]
    assert pool.brokers == ("k1:9092", "k2:9092")
    assert pool.options.client_id == "svc"


def test_register_kafka_consumer_group() -> None:
    registry = Registry()
    group = (
        KafkaConsumerGroup("my-group", "events")
        .topics("orders")
        .topics("users", "payments")
        .session_timeout(10_000)
        .rebalance_timeout(20_000)
        .fetch_max(1 << 20)
        .auto_commit_interval(500)
    )
    registry.register_kafka_consumer_group(group)
    stored = registry.kafka_consumer_groups["my-group"]
    assert stored.pool == "events"
    assert stored.topic_names == ("orders", "users", "payments")
    assert stored.session_timeout_ms == 10_000
    assert stored.rebalance_timeout_ms == 20_000
    assert stored.fetch_max_bytes == 1 << 20
    assert stored.auto_commit_interval_ms == 500
    assert KafkaConsumerGroup("g").pool == DEFAULT_POOL_CODE


def test_register_kafka_topic() -> None:
    registry = Registry()
    registry.register_kafka_topic(
        KafkaTopic("orders", "events")
        .partitions(6)
        .replication_factor(3)
        .retention_ms(86400000)
        .cleanup_policy("delete")
        .config("segment.ms", 3600000)
    )
    registry.register_kafka_topic(KafkaTopic("orders", "other"))
    topic = registry.kafka_topics[("events", "orders")]
    assert (topic.name, topic.pool) == ("orders", "events")
    assert topic.partition_count == 6
    assert topic.replication == 3
    assert topic.configs == {
        "retention.ms": "86400000",
        "cleanup.policy": "delete",
        "segment.ms": "3600000",
    }
    defaults = registry.kafka_topics[("other", "orders")]
    assert (defaults.partition_count, defaults.replication, defaults.configs) == (1, 1, {})


def test_register_debezium_connect_url() -> None:
    registry = Registry()
    registry.register_debezium_connect_url("http://localhost:8083", "events")
    assert registry.debezium_connect_urls == {"events": "http://localhost:8083"}
    with pytest.raises(ConfigError, match=r"kafka pool 'events'.*http"):
        registry.register_debezium_connect_url("localhost:8083", "events")


def test_register_async_flush() -> None:
    registry = Registry()
    registry.register_async_flush("events", AsyncFlushOptions(topic_partitions=6))
    assert registry.async_flush == ("events", AsyncFlushOptions(topic_partitions=6))
    registry.register_async_flush("events")
    assert registry.async_flush == ("events", AsyncFlushOptions(topic_partitions=1))


def test_register_entity_keeps_order_and_ignores_duplicates() -> None:
    registry = Registry()
    registry.register_entity(CategoryEntity, ProductEntity)
    registry.register_entity(CategoryEntity, EveryTypeEntity)
    assert registry.entities == [CategoryEntity, ProductEntity, EveryTypeEntity]


class NotAnEntity:
    id: uint64


@pytest.mark.parametrize("bad", [NotAnEntity, Entity, "CategoryEntity", 5])
def test_register_entity_rejects_non_entities(bad: Any) -> None:
    registry = Registry()
    with pytest.raises(ConfigError, match="not an Entity subclass"):
        registry.register_entity(bad)
    assert registry.entities == []


def test_a_definition_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError, match=r"CategoryEntityProvider\.new\(ctx\)"):
        CategoryEntity()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "postgres://u:p@h/db",
            "postgres:// is not supported: fluxa_django works with MySQL/MariaDB",
        ),
        ("sqlite:///x.db", "sqlite:// is not supported"),
    ],
)
def test_other_databases_are_named_as_unsupported(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        Registry().register_mysql(uri)
    assert "u:p@" not in str(raised.value), "the credentials are not echoed"


def test_a_mariadb_uri_is_a_mysql_uri() -> None:
    registry = Registry()
    registry.register_mysql("mariadb://u:p@h:3307/db")
    uri = registry.mysql_pools["default"].uri
    assert (uri.host, uri.port, uri.database) == ("h", 3307, "db")


# -- bad inputs name the pool --------------------------------------------------------------


@pytest.mark.parametrize(
    "register",
    [
        lambda r: r.register_mysql("root@tcp(h)/db", ""),
        lambda r: r.register_redis("h:6379", 0, ""),
        lambda r: r.register_local_cache("", 10),
        lambda r: r.register_clickhouse("clickhouse://h:9000/db", ""),
        lambda r: r.register_kafka(["h:9092"], ""),
    ],
    ids=["mysql", "redis", "local_cache", "clickhouse", "kafka"],
)
def test_empty_pool_code(register: Any) -> None:
    with pytest.raises(ConfigError, match=r"pool code '' must be a non-empty string"):
        register(Registry())


@pytest.mark.parametrize("db", [16, -1, True, "1"])
def test_bad_redis_db(db: Any) -> None:
    with pytest.raises(ConfigError, match=r"redis pool 'sessions': database must be 0\.\.15"):
        Registry().register_redis("h:6379", db, "sessions")


@pytest.mark.parametrize("address", ["localhost", "h:port", ""])
def test_bad_redis_address(address: str) -> None:
    with pytest.raises(ConfigError, match=r"redis pool 'cache'"):
        Registry().register_redis(address, 0, "cache")


@pytest.mark.parametrize("limit", [-1, True, 1.5])
def test_bad_local_cache_limit(limit: Any) -> None:
    with pytest.raises(ConfigError, match=r"local cache pool 'lc': limit must be a non-negative"):
        Registry().register_local_cache("lc", limit)


@pytest.mark.parametrize("uri", ["http://h:9000/db", "h:9000", "mysql://h/db"])
def test_non_clickhouse_uri(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"clickhouse pool 'analytics': uri must start with"):
        Registry().register_clickhouse(uri, "analytics")


def test_clickhouse_uri_with_bad_port_is_rejected_at_registration() -> None:
    registry = Registry()
    with pytest.raises(ConfigError, match=r"clickhouse pool 'analytics'") as info:
        registry.register_clickhouse(f"clickhouse://u:{SECRET}@h:port/db", "analytics")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("brokers", [[], "h:9092", [""], [None]])
def test_bad_kafka_brokers(brokers: Any) -> None:
    with pytest.raises(ConfigError, match=r"kafka pool 'events': brokers must be a non-empty list"):
        Registry().register_kafka(brokers, "events")


@pytest.mark.parametrize(
    "uri",
    [
        f"root:{SECRET}@tcp(h:3306)/",
        f"root:{SECRET}@tcp(h:xyz)/db",
        f"mysql://root:{SECRET}@h:3306",
        "not a dsn",
    ],
)
def test_bad_mysql_uri_names_pool_without_password(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"mysql pool 'logs'") as info:
        Registry().register_mysql(uri, "logs")
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_reprs_hide_credentials() -> None:
    registry = Registry()
    registry.register_mysql(f"root:{SECRET}@tcp(h:3306)/app")
    registry.register_mysql(f"mysql://root:{SECRET}@h:3306/logs", "logs")
    registry.register_redis("h:6379", 0, "default", RedisOptions(user="u", password=SECRET))
    registry.register_redis(
        "", 0, "cluster", RedisOptions(master="m", sentinels=("h:26379",), password=SECRET)
    )
    registry.register_clickhouse(f"clickhouse://u:{SECRET}@h:9000/db", "analytics")
    registry.register_kafka(
        ["h:9092"], "events", KafkaPoolOptions(sasl_user="u", sasl_password=SECRET)
    )
    texts = [repr(registry), str(registry)]
    for pools in (
        registry.mysql_pools,
        registry.redis_pools,
        registry.clickhouse_pools,
        registry.kafka_pools,
    ):
        texts.extend(repr(p) for p in pools.values())
        texts.append(repr(pools))
    for text in texts:
        assert SECRET not in text
    assert registry.mysql_pools["logs"].uri.password == SECRET


# -- init_by_config / init_by_yaml --------------------------------------------------------


def seed_config() -> Config:
    """The "Configuration via Config Struct" example of seeds/02-registry.txt."""
    return Config(
        mysql_pools=[
            ConfigMysql("default", "root:root@tcp(localhost:3306)/app"),
            ConfigMysql("logs", "root:root@tcp(localhost:3306)/logs", max_open_connections=50),
        ],
        redis_pools=[
            ConfigRedis("default", "localhost:6379", 0),
            ConfigRedis("sessions", "localhost:6379", 1),
        ],
        redis_sentinel_pools=[
            ConfigRedisSentinel("cluster", "mymaster", 0, [":26379", "192.168.1.2:26379"])
        ],
        local_cache_pools=[ConfigLocalCache("default", 100000)],
        clickhouse_pools=[ConfigClickhouse("analytics", "clickhouse://localhost:9000/default")],
        kafka_pools=[
            ConfigKafka(
                "events",
                ["localhost:9092"],
                topics=[ConfigKafkaTopic("orders", partitions=6, replication_factor=3)],
            )
        ],
        async_flush=ConfigAsyncFlush("events", 6),
    )


def test_init_by_config_seed_example() -> None:
    registry = Registry()
    registry.init_by_config(seed_config())

    assert sorted(registry.mysql_pools) == ["default", "logs"]
    app = registry.mysql_pools["default"]
    assert (app.uri.user, app.uri.password, app.uri.database) == ("root", "root", "app")
    assert (app.uri.host, app.uri.port) == ("localhost", 3306)
    assert app.options.max_open_connections == 0
    assert registry.mysql_pools["logs"].uri.database == "logs"
    assert registry.mysql_pools["logs"].options.max_open_connections == 50

    assert sorted(registry.redis_pools) == ["cluster", "default", "sessions"]
    assert (registry.redis_pools["default"].address, registry.redis_pools["default"].db) == (
        "localhost:6379",
        0,
    )
    assert registry.redis_pools["sessions"].db == 1
    cluster = registry.redis_pools["cluster"]
    assert cluster.options.master == "mymaster"
    assert cluster.options.sentinels == (":26379", "192.168.1.2:26379")
    assert cluster.db == 0

    assert registry.local_cache_pools == {"default": 100000}
    assert registry.clickhouse_pools["analytics"].uri == "clickhouse://localhost:9000/default"

    assert registry.kafka_pools["events"].brokers == ("localhost:9092",)
    topic = registry.kafka_topics[("events", "orders")]
    assert (topic.partition_count, topic.replication) == (6, 3)
    assert registry.async_flush == ("events", AsyncFlushOptions(topic_partitions=6))
    assert registry.check() == []


def test_init_by_config_kafka_consumer_groups_and_options() -> None:
    registry = Registry()
    registry.init_by_config(
        Config(
            kafka_pools=[
                ConfigKafka(
                    "events",
                    ["k:9092"],
                    client_id="svc",
                    required_acks=1,
                    producer_linger_ms=5,
                    max_buffered_records=100,
                    sasl_mechanism="PLAIN",
                    sasl_user="u",
                    sasl_password="p",
                    consumer_groups=[ConfigKafkaConsumerGroup("g", ["orders"], 1, 2, 3, 4)],
                    ignored_topics=["legacy"],
                    ignored_consumer_groups=["old"],
                    topics=[ConfigKafkaTopic("orders", 2, 1, {"retention.ms": "1000"})],
                )
            ]
        )
    )
    assert registry.kafka_pools["events"].options == KafkaPoolOptions(
        client_id="svc",
        required_acks=1,
        producer_linger_ms=5,
        max_buffered_records=100,
        sasl_mechanism="PLAIN",
        sasl_user="u",
        sasl_password="p",
        ignored_topics=("legacy",),
        ignored_consumer_groups=("old",),
    )
    group = registry.kafka_consumer_groups["g"]
    assert group.pool == "events"
    assert group.topic_names == ("orders",)
    assert (
        group.session_timeout_ms,
        group.rebalance_timeout_ms,
        group.fetch_max_bytes,
        group.auto_commit_interval_ms,
    ) == (1, 2, 3, 4)
    assert registry.kafka_topics[("events", "orders")].configs == {"retention.ms": "1000"}


def test_init_by_config_bad_pool_names_the_pool() -> None:
    registry = Registry()
    with pytest.raises(ConfigError, match=r"redis pool 'sessions'"):
        registry.init_by_config(Config(redis_pools=[ConfigRedis("sessions", "h:6379", 99)]))


def snapshot(registry: Registry) -> dict[str, Any]:
    return {
        "mysql": dict(registry.mysql_pools),
        "redis": dict(registry.redis_pools),
        "local": dict(registry.local_cache_pools),
        "clickhouse": dict(registry.clickhouse_pools),
        "kafka": dict(registry.kafka_pools),
        "groups": {k: vars(v) for k, v in registry.kafka_consumer_groups.items()},
        "topics": {k: vars(v) for k, v in registry.kafka_topics.items()},
        "debezium": dict(registry.debezium_connect_urls),
        "async_flush": registry.async_flush,
        "options": dict(registry.options),
    }


def test_init_by_yaml_equals_init_by_config() -> None:
    from_yaml = Registry()
    from_yaml.init_by_yaml(seed_yaml())
    equivalent = Config(
        mysql_pools=[
            ConfigMysql("default", "root:root@tcp(localhost:3306)/app"),
            ConfigMysql("logs", "root:root@tcp(localhost:3306)/logs", max_open_connections=50),
        ],
        redis_pools=[
            ConfigRedis("default", "localhost:6379", 0),
            ConfigRedis("sessions", "localhost:6379", 1, "myuser", "secret"),
        ],
        redis_sentinel_pools=[
            ConfigRedisSentinel(
                "cluster", "mymaster", 0, [":26379", "192.168.1.2:26379", "192.168.1.3:26379"]
            )
        ],
        local_cache_pools=[ConfigLocalCache("default", 100000)],
        clickhouse_pools=[ConfigClickhouse("analytics", "clickhouse://localhost:9000/default")],
        kafka_pools=[
            ConfigKafka(
                "events",
                ["localhost:9092"],
                ignored_topics=["legacy-topic"],
                topics=[ConfigKafkaTopic("orders", 6, 3, {"retention.ms": "86400000"})],
            )
        ],
    )
    from_config = Registry()
    from_config.init_by_config(equivalent)
    assert snapshot(from_yaml) == snapshot(from_config)
    # and the comparison is not vacuous
    assert from_yaml.redis_pools["sessions"].options.password == "secret"
    assert from_yaml.kafka_pools["events"].options.ignored_topics == ("legacy-topic",)
    assert from_yaml.kafka_topics[("events", "orders")].configs == {"retention.ms": "86400000"}


def test_init_by_yaml_rejects_django_database_alias() -> None:
    registry = Registry()
    with pytest.raises(ConfigError, match=r"pool 'main'.*mysql\.database"):
        registry.init_by_yaml({"main": {"mysql": {"database": "default"}}})
    assert registry.mysql_pools == {}


def test_init_by_yaml_propagates_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"pool 'x'.*unknown pool kind 'postgres'"):
        Registry().init_by_yaml({"x": {"postgres": {}}})


# -- options -------------------------------------------------------------------------------


def test_options_carry_over_to_engine() -> None:
    registry = Registry()
    registry.set_option("app_name", "my-service")
    registry.set_option("limits", {"rps": 10})
    assert registry.option("app_name") == "my-service"
    assert registry.option("missing") is None
    assert registry.option("missing", 7) == 7
    engine = registry.validate()  # no pools: no network I/O
    try:
        assert engine.option("app_name") == "my-service"
        assert engine.option("limits") == {"rps": 10}
        assert engine.option("missing") is None
        assert engine.option("missing", "x") == "x"
        registry.set_option("app_name", "changed")
        registry.set_option("late", 1)
        assert engine.option("app_name") == "my-service"
        assert engine.option("late") is None
    finally:
        engine.close()


# -- check() --------------------------------------------------------------------------------


def entities_registry(*, with_redis: bool) -> Registry:
    registry = Registry()
    registry.register_mysql("root@tcp(127.0.0.1:3306)/app")
    registry.register_local_cache("default", 1000)
    if with_redis:
        registry.register_redis("127.0.0.1:6380", 0)
        registry.register_redis("127.0.0.1:6380", 0, "search")
    registry.register_entity(*entity_classes(["tests.entities"]))
    return registry


def test_check_test_entities_is_clean() -> None:
    registry = entities_registry(with_redis=True)
    assert set(registry.entities) == {
        CategoryEntity,
        ProductEntity,
        EveryTypeEntity,
        UserEntity,
        DeletableUserEntity,
        BookEntity,
    }
    assert registry.check() == []


def test_check_reports_missing_redis_pool() -> None:
    errors = entities_registry(with_redis=False).check()
    assert {e.code for e in errors} == {"E027"}
    assert {e.entity for e in errors} == {
        "ProductEntity",
        "EveryTypeEntity",
        "UserEntity",
        "BookEntity",
    }
    assert all("redis pool 'default'" in str(e) or "redis pool 'search'" in str(e) for e in errors)
    assert any("redis pool 'search'" in str(e) and e.entity == "BookEntity" for e in errors)


@pytest.mark.parametrize(
    ("register", "what"),
    [
        (lambda r: r.register_async_flush("nokafka"), "async flush"),
        (
            lambda r: r.register_kafka_consumer_group(KafkaConsumerGroup("g1", "nokafka")),
            "consumer group 'g1'",
        ),
        (lambda r: r.register_kafka_topic(KafkaTopic("orders", "nokafka")), "topic 'orders'"),
        (
            lambda r: r.register_debezium_connect_url("http://localhost:8083", "nokafka"),
            "debezium",
        ),
    ],
    ids=["async_flush", "consumer_group", "topic", "debezium"],
)
def test_check_unregistered_kafka_pool(register: Any, what: str) -> None:
    registry = Registry()
    registry.register_kafka(["127.0.0.1:9092"], "events")
    register(registry)
    errors = registry.check()
    assert len(errors) == 1
    assert errors[0].code == "E027"
    assert what in str(errors[0])
    assert "kafka pool 'nokafka'" in str(errors[0])
    # validate() refuses the same registry before connecting to anything
    with pytest.raises(DefinitionErrors, match=r"kafka pool 'nokafka'") as info:
        registry.validate()
    assert [e.code for e in info.value.errors] == ["E027"]


def test_check_registered_kafka_pool_is_clean() -> None:
    registry = Registry()
    registry.register_kafka(["127.0.0.1:9092"], "events")
    registry.register_async_flush("events")
    registry.register_kafka_consumer_group(KafkaConsumerGroup("g", "events").topics("orders"))
    registry.register_kafka_topic(KafkaTopic("orders", "events"))
    registry.register_debezium_connect_url("http://localhost:8083", "events")
    assert registry.check() == []


def test_check_lists_every_kafka_link_error() -> None:
    registry = Registry()
    registry.register_async_flush("a")
    registry.register_kafka_topic(KafkaTopic("t", "b"))
    messages = sorted(str(e) for e in registry.check())
    assert len(messages) == 2
    assert "async flush" in messages[0]
    assert "kafka pool 'a'" in messages[0]
    assert "topic 't'" in messages[1]
    assert "kafka pool 'b'" in messages[1]


# -- public surface ---------------------------------------------------------------------------

SPEC_NAMES = [
    "Registry",
    "Entity",
    "Reference",
    "References",
    "field",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "MySQLOptions",
    "RedisOptions",
    "KafkaPoolOptions",
    "KafkaConsumerGroup",
    "KafkaTopic",
    "AsyncFlushOptions",
    "ClickhouseOptions",
    "Config",
    "DEFAULT_POOL_CODE",
    "get_engine",
    "EntityNotFound",
]


def test_public_surface_exports_spec_names() -> None:
    exported = sorted(fluxa_django.__all__)
    missing = [name for name in SPEC_NAMES if name not in exported]
    assert missing == []
    assert len(exported) == len(set(exported))


class _LocalOnly(fluxa_django.Entity):
    id: fluxa_django.uint32
    name: str

    class Meta:
        local_cache = True


class _CachedIndexOnly(fluxa_django.Entity):
    id: fluxa_django.uint32
    name: str

    class Meta:
        unique_indexes = {"Name": ["name"]}
        cached_unique_indexes = {"Name": ["name"]}


@pytest.mark.parametrize(
    ("entity", "option"),
    [(_LocalOnly, "local_cache"), (_CachedIndexOnly, "cached_unique_indexes")],
)
def test_cache_tiers_without_a_redis_pool_are_definition_errors(
    entity: type[fluxa_django.Entity], option: str
) -> None:
    registry = Registry()
    registry.register_mysql("root:@tcp(127.0.0.1:3306)/db")
    registry.register_local_cache("default", 100)
    registry.register_entity(entity)
    with pytest.raises(DefinitionErrors) as caught:
        registry.build_schemas()
    error = caught.value.errors[0]
    assert (error.code, error.entity) == ("E031", entity.__name__)
    assert option in str(error) and "Redis pool" in str(error)
    registry.register_redis("127.0.0.1:6380", 0)
    assert registry.build_schemas()  # with a default Redis pool the definition is fine
