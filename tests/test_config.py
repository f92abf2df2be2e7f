"""URI parsing and the seed's YAML configuration format (no services needed)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fluxa_django.config import (
    Config,
    ConfigClickhouse,
    ConfigKafka,
    ConfigKafkaConsumerGroup,
    ConfigKafkaTopic,
    ConfigLocalCache,
    ConfigMysql,
    ConfigRedis,
    ConfigRedisSentinel,
    KafkaPoolOptions,
    RedisOptions,
    config_from_yaml,
    parse_mysql_uri,
)
from fluxa_django.errors import ConfigError

SECRET = "s3cr3t-PW"

# The "YAML Format" example of seeds/02-registry.txt, verbatim.
SEED_YAML = """
default:
  mysql:
    uri: root:root@tcp(localhost:3306)/app
  redis: localhost:6379:0
  local_cache: 100000
logs:
  mysql:
    uri: root:root@tcp(localhost:3306)/logs
    maxOpenConnections: 50
sessions:
  redis: localhost:6379:1?user=myuser&password=secret
cluster:
  sentinel:
    mymaster:0:
      - :26379
      - 192.168.1.2:26379
      - 192.168.1.3:26379
analytics:
  clickhouse:
    uri: clickhouse://localhost:9000/default
events:
  kafka:
    brokers:
      - localhost:9092
    ignoredTopics:
      - legacy-topic
    topics:
      - name: orders
        partitions: 6
        replicationFactor: 3
        configs:
          retention.ms: "86400000"
"""


def seed_yaml() -> dict[str, Any]:
    data = yaml.safe_load(SEED_YAML)
    assert isinstance(data, dict)
    return data


# -- parse_mysql_uri -------------------------------------------------------------


def test_go_dsn_with_password() -> None:
    uri = parse_mysql_uri("app_user:pa55word@tcp(db.example.com:3307)/shop")
    assert (uri.user, uri.password) == ("app_user", "pa55word")
    assert (uri.host, uri.port, uri.database) == ("db.example.com", 3307, "shop")
    assert uri.unix_socket is None
    assert uri.params == ()


def test_go_dsn_without_password_and_default_port() -> None:
    uri = parse_mysql_uri("root@tcp(10.0.0.5)/app")
    assert (uri.user, uri.password) == ("root", "")
    assert (uri.host, uri.port, uri.database) == ("10.0.0.5", 3306, "app")


def test_go_dsn_empty_password() -> None:
    uri = parse_mysql_uri("root:@tcp(127.0.0.1:3306)/app")
    assert (uri.user, uri.password, uri.database) == ("root", "", "app")


def test_go_dsn_password_with_at_and_colon() -> None:
    uri = parse_mysql_uri("bob:p@ss:w@rd@tcp(127.0.0.1:3306)/app")
    assert uri.user == "bob"
    assert uri.password == "p@ss:w@rd"
    assert (uri.host, uri.port, uri.database) == ("127.0.0.1", 3306, "app")


def test_go_dsn_params() -> None:
    uri = parse_mysql_uri("root:pw@tcp(h:3306)/app?charset=utf8mb4&parseTime=true")
    assert uri.database == "app"
    assert uri.password == "pw"
    assert dict(uri.params) == {"charset": "utf8mb4", "parseTime": "true"}


def test_go_dsn_param_value_with_at_does_not_leak_into_password() -> None:
    # The Go driver splits user:pass@ at the last '@' *before* the last '/'.
    uri = parse_mysql_uri("root:pw@tcp(h:3306)/app?comment=ops@example.com")
    assert uri.password == "pw"
    assert (uri.host, uri.database) == ("h", "app")
    assert dict(uri.params) == {"comment": "ops@example.com"}


def test_go_dsn_unix_socket() -> None:
    uri = parse_mysql_uri("root:pw@unix(/var/run/mysqld/mysqld.sock)/app")
    assert uri.unix_socket == "/var/run/mysqld/mysqld.sock"
    assert (uri.user, uri.password, uri.database) == ("root", "pw", "app")
    assert "unix(/var/run/mysqld/mysqld.sock)" in uri.safe


def test_url_form_with_percent_encoded_password() -> None:
    uri = parse_mysql_uri("mysql://bob:p%40ss%3Aw%2Frd@db.local:3310/shop?ssl=0")
    assert (uri.user, uri.password) == ("bob", "p@ss:w/rd")
    assert (uri.host, uri.port, uri.database) == ("db.local", 3310, "shop")
    assert dict(uri.params) == {"ssl": "0"}


def test_url_form_defaults() -> None:
    uri = parse_mysql_uri("mysql://db.local/shop")
    assert (uri.user, uri.password, uri.host, uri.port) == ("root", "", "db.local", 3306)


@pytest.mark.parametrize(
    "uri",
    [
        f"root:{SECRET}@tcp(127.0.0.1:3306)/",
        f"root:{SECRET}@tcp(127.0.0.1:3306)",
        f"mysql://root:{SECRET}@127.0.0.1:3306",
        f"mysql://root:{SECRET}@127.0.0.1:3306/",
    ],
)
def test_missing_database_is_an_error(uri: str) -> None:
    with pytest.raises(ConfigError, match=r"database|DSN") as info:
        parse_mysql_uri(uri)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


@pytest.mark.parametrize(
    "uri",
    [
        f"root:{SECRET}@tcp(127.0.0.1:abc)/app",
        f"mysql://root:{SECRET}@127.0.0.1:abc/app",
        f"mysql://root:{SECRET}@127.0.0.1:70000/app",
        f"root:{SECRET}@tcp(127.0.0.1:70000)/app",
    ],
)
def test_bad_port_is_an_error(uri: str) -> None:
    with pytest.raises(ConfigError, match="port") as info:
        parse_mysql_uri(uri)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("uri", ["", "just-a-hostname"])
def test_malformed_mysql_uri(uri: str) -> None:
    with pytest.raises(ConfigError, match="mysql uri"):
        parse_mysql_uri(uri)


def test_parsed_uri_never_shows_password() -> None:
    uri = parse_mysql_uri(f"root:{SECRET}@tcp(127.0.0.1:3306)/app")
    assert uri.password == SECRET
    assert SECRET not in repr(uri)
    assert SECRET not in str(uri)
    assert str(uri) == "root@127.0.0.1:3306/app"


def test_options_reprs_hide_passwords() -> None:
    assert SECRET not in repr(RedisOptions(user="u", password=SECRET))
    assert SECRET not in repr(KafkaPoolOptions(sasl_user="u", sasl_password=SECRET))


# -- config_from_yaml: the seed example --------------------------------------------


def test_seed_yaml_example() -> None:
    config, aliases = config_from_yaml(seed_yaml())
    assert aliases == {}
    assert config == Config(
        mysql_pools=[
            ConfigMysql("default", "root:root@tcp(localhost:3306)/app"),
            ConfigMysql("logs", "root:root@tcp(localhost:3306)/logs", max_open_connections=50),
        ],
        redis_pools=[
            ConfigRedis("default", "localhost:6379", 0),
            ConfigRedis("sessions", "localhost:6379", 1, user="myuser", password="secret"),
        ],
        redis_sentinel_pools=[
            ConfigRedisSentinel(
                "cluster",
                "mymaster",
                0,
                [":26379", "192.168.1.2:26379", "192.168.1.3:26379"],
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
        async_flush=None,
    )


def test_camel_case_and_snake_case_keys_are_equivalent() -> None:
    camel = {
        "db": {
            "mysql": {
                "uri": "root:pw@tcp(h:3306)/app",
                "maxOpenConnections": 40,
                "maxIdleConnections": 7,
                "connMaxLifetime": 120,
                "defaultEncoding": "utf8",
                "defaultCollate": "general_ci",
                "ignoredTables": ["legacy", "tmp"],
            },
            "clickhouse": {
                "uri": "clickhouse://h:9000/x",
                "maxOpenConnections": 3,
                "maxIdleConnections": 2,
                "connMaxLifetime": 60,
            },
            "kafka": {
                "brokers": ["k1:9092", "k2:9092"],
                "clientID": "svc",
                "requiredAcks": 1,
                "producerLingerMs": 5,
                "maxBufferedRecords": 1000,
                "saslMechanism": "PLAIN",
                "saslUser": "kuser",
                "saslPassword": "kpw",
                "ignoredConsumerGroups": ["old-group"],
                "consumerGroups": [
                    {
                        "name": "g1",
                        "topics": ["orders", "users"],
                        "sessionTimeoutMs": 10,
                        "rebalanceTimeoutMs": 20,
                        "fetchMaxBytes": 30,
                        "autoCommitIntervalMs": 40,
                    }
                ],
            },
        }
    }
    snake = {
        "db": {
            "mysql": {
                "uri": "root:pw@tcp(h:3306)/app",
                "max_open_connections": 40,
                "max_idle_connections": 7,
                "conn_max_lifetime": 120,
                "default_encoding": "utf8",
                "default_collate": "general_ci",
                "ignored_tables": ["legacy", "tmp"],
            },
            "clickhouse": {
                "uri": "clickhouse://h:9000/x",
                "max_open_connections": 3,
                "max_idle_connections": 2,
                "conn_max_lifetime": 60,
            },
            "kafka": {
                "brokers": ["k1:9092", "k2:9092"],
                "client_id": "svc",
                "required_acks": 1,
                "producer_linger_ms": 5,
                "max_buffered_records": 1000,
                "sasl_mechanism": "PLAIN",
                "sasl_user": "kuser",
                "sasl_password": "kpw",
                "ignored_consumer_groups": ["old-group"],
                "consumer_groups": [
                    {
                        "name": "g1",
                        "topics": ["orders", "users"],
                        "session_timeout_ms": 10,
                        "rebalance_timeout_ms": 20,
                        "fetch_max_bytes": 30,
                        "auto_commit_interval_ms": 40,
                    }
                ],
            },
        }
    }
    from_camel, _ = config_from_yaml(camel)
    from_snake, _ = config_from_yaml(snake)
    assert from_camel == from_snake
    assert from_snake.mysql_pools == [
        ConfigMysql(
            "db",
            "root:pw@tcp(h:3306)/app",
            conn_max_lifetime=120,
            max_open_connections=40,
            max_idle_connections=7,
            default_encoding="utf8",
            default_collate="general_ci",
            ignored_tables=["legacy", "tmp"],
        )
    ]
    assert from_snake.clickhouse_pools == [
        ConfigClickhouse("db", "clickhouse://h:9000/x", 60, 3, 2),
    ]
    assert from_snake.kafka_pools == [
        ConfigKafka(
            "db",
            ["k1:9092", "k2:9092"],
            client_id="svc",
            required_acks=1,
            producer_linger_ms=5,
            max_buffered_records=1000,
            sasl_mechanism="PLAIN",
            sasl_user="kuser",
            sasl_password="kpw",
            consumer_groups=[ConfigKafkaConsumerGroup("g1", ["orders", "users"], 10, 20, 30, 40)],
            ignored_consumer_groups=["old-group"],
        )
    ]


def test_redis_unix_socket_and_sentinel_credentials() -> None:
    config, _ = config_from_yaml(
        {
            "sock": {"redis": "/run/redis/redis.sock:3"},
            "ha": {"sentinel": {"primary:4?user=su&password=sp": ["10.0.0.1:26379"]}},
        }
    )
    assert config.redis_pools == [ConfigRedis("sock", "/run/redis/redis.sock", 3)]
    assert config.redis_sentinel_pools == [
        ConfigRedisSentinel("ha", "primary", 4, ["10.0.0.1:26379"], "su", "sp")
    ]


def test_sentinel_without_db_defaults_to_zero() -> None:
    config, _ = config_from_yaml({"ha": {"sentinel": {"primary": ["10.0.0.1:26379"]}}})
    assert config.redis_sentinel_pools == [
        ConfigRedisSentinel("ha", "primary", 0, ["10.0.0.1:26379"])
    ]


def test_database_alias_is_returned_not_resolved() -> None:
    config, aliases = config_from_yaml({"default": {"mysql": {"database": "replica"}}})
    assert aliases == {"default": "replica"}
    assert [p.code for p in config.mysql_pools] == ["default"]


def test_config_reprs_hide_passwords() -> None:
    config, _ = config_from_yaml(
        {
            "default": {
                "mysql": {"uri": f"root:{SECRET}@tcp(h:3306)/app"},
                "redis": f"h:6379:0?user=u&password={SECRET}",
            },
            "ha": {"sentinel": {f"m:1?user=u&password={SECRET}": ["h:26379"]}},
            "ch": {"clickhouse": {"uri": f"clickhouse://u:{SECRET}@h:9000/db"}},
            "ev": {"kafka": {"brokers": ["h:9092"], "saslUser": "u", "saslPassword": SECRET}},
        }
    )
    assert config.redis_pools[0].password == SECRET
    assert config.redis_sentinel_pools[0].password == SECRET
    assert config.kafka_pools[0].sasl_password == SECRET
    assert SECRET not in repr(config)
    assert SECRET not in str(config)


# -- config_from_yaml: errors ---------------------------------------------------------


def test_unknown_pool_kind() -> None:
    with pytest.raises(ConfigError, match=r"pool 'main'.*unknown pool kind 'postgres'"):
        config_from_yaml({"main": {"postgres": {"uri": "x"}}})


def test_unknown_mysql_key() -> None:
    with pytest.raises(ConfigError, match=r"pool 'main'.*unknown key mysql\.max_conns"):
        config_from_yaml({"main": {"mysql": {"uri": "root@tcp(h)/db", "maxConns": 5}}})


def test_mysql_without_uri() -> None:
    with pytest.raises(ConfigError, match=r"pool 'main'.*mysql\.uri is required"):
        config_from_yaml({"main": {"mysql": {"maxOpenConnections": 5}}})


def test_wrong_integer_type() -> None:
    with pytest.raises(ConfigError, match=r"pool 'main'.*max_open_connections must be an integer"):
        config_from_yaml(
            {"main": {"mysql": {"uri": "root@tcp(h)/db", "maxOpenConnections": "abc"}}}
        )


def test_wrong_list_type() -> None:
    with pytest.raises(ConfigError, match=r"pool 'main'.*ignored_tables must be a list of strings"):
        config_from_yaml({"main": {"mysql": {"uri": "root@tcp(h)/db", "ignoredTables": "t"}}})


@pytest.mark.parametrize("limit", [-1, "x", "100", 1.5, True, None])
def test_bad_local_cache_limit(limit: object) -> None:
    with pytest.raises(ConfigError, match=r"pool 'lc'.*local_cache must be a non-negative integer"):
        config_from_yaml({"lc": {"local_cache": limit}})


@pytest.mark.parametrize(
    "value",
    ["localhost", "localhost:6379", "localhost:6379:x", "localhost:6379:-1", 6379],
)
def test_malformed_redis_string(value: object) -> None:
    with pytest.raises(ConfigError, match=r"pool 'cache': redis must be"):
        config_from_yaml({"cache": {"redis": value}})


def test_malformed_redis_string_does_not_leak_password() -> None:
    # A redis:// URL is not the seed's format; the error must still not echo the password.
    with pytest.raises(ConfigError, match=r"pool 'cache'") as info:
        config_from_yaml({"cache": {"redis": f"redis://user:{SECRET}@h:6379/0"}})
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        ["h:26379"],
        {"m:x": ["h:26379"]},
        {"m": []},
        {"m": "h:26379"},
        {"m": ["a:1"], "n": ["b:2"]},
    ],
)
def test_malformed_sentinel(value: object) -> None:
    with pytest.raises(ConfigError, match=r"pool 'ha': sentinel"):
        config_from_yaml({"ha": {"sentinel": value}})


@pytest.mark.parametrize("kafka", [{}, {"brokers": []}, {"brokers": "h:9092"}])
def test_kafka_without_brokers(kafka: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"pool 'events'.*kafka\.brokers"):
        config_from_yaml({"events": {"kafka": kafka}})


def test_kafka_unknown_key() -> None:
    with pytest.raises(ConfigError, match=r"pool 'events'.*unknown key kafka\.partitions"):
        config_from_yaml({"events": {"kafka": {"brokers": ["h:9092"], "partitions": 3}}})


def test_kafka_topic_without_name() -> None:
    with pytest.raises(ConfigError, match=r"pool 'events'.*kafka\.topics\[0\]\.name is required"):
        config_from_yaml(
            {"events": {"kafka": {"brokers": ["h:9092"], "topics": [{"partitions": 1}]}}}
        )


@pytest.mark.parametrize("spec", ["mysql", 5, ["mysql"], None])
def test_non_mapping_pool(spec: object) -> None:
    with pytest.raises(ConfigError, match=r"pool 'main' must be a mapping"):
        config_from_yaml({"main": spec})


def test_non_mapping_mysql_section() -> None:
    with pytest.raises(ConfigError, match=r"pool 'main': mysql must be a mapping"):
        config_from_yaml({"main": {"mysql": "root@tcp(h)/db"}})


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        config_from_yaml(["default"])  # type: ignore[arg-type]
