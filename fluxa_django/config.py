"""Pool options, the ``Config`` dataclasses (the seed's Config struct) and parsers.

Passwords live only in fields declared ``repr=False``; every message built here
describes a pool by its password-free ``safe`` form.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fluxa_django.errors import ConfigError

DEFAULT_POOL_CODE = "default"


# -- MySQL ---------------------------------------------------------------------


@dataclass(frozen=True)
class MySQLURI:
    """A parsed MySQL DSN. ``str()``/``repr()`` never show the password."""

    host: str
    port: int
    database: str
    user: str = "root"
    password: str = field(default="", repr=False)
    unix_socket: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    @property
    def safe(self) -> str:
        where = f"unix({self.unix_socket})" if self.unix_socket else f"{self.host}:{self.port}"
        return f"{self.user}@{where}/{self.database}"

    def __str__(self) -> str:
        return self.safe

    def connect_kwargs(self, with_database: bool = True) -> dict[str, Any]:
        """Keyword arguments for ``MySQLdb.connect`` (credentials included; never log them)."""
        kwargs: dict[str, Any] = {"user": self.user, "passwd": self.password, "connect_timeout": 5}
        if with_database:
            kwargs["db"] = self.database
        if self.unix_socket:
            kwargs["unix_socket"] = self.unix_socket
        else:
            kwargs.update(host=self.host, port=self.port)
        return kwargs


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError("mysql uri has an invalid port")
    return int(text)


def parse_mysql_uri(uri: str) -> MySQLURI:
    """Parse the Go DSN form ``user:pass@tcp(host:port)/db`` or ``mysql://user:pass@host:port/db``."""
    if not isinstance(uri, str) or not uri:
        raise ConfigError("mysql uri must be a non-empty string")
    socket: str | None = None
    scheme = uri.partition("://")[0].lower() if "://" in uri else ""
    if scheme and scheme not in ("mysql", "mariadb"):
        raise ConfigError(
            f"mysql uri: {scheme}:// is not supported: fluxa_django works with MySQL/MariaDB "
            "only (mysql://user:pass@host:port/db or user:pass@tcp(host:port)/db)"
        )
    if scheme == "mariadb":
        uri = "mysql" + uri[len("mariadb") :]
    if uri.startswith("mysql://"):
        parts = urllib.parse.urlsplit(uri)
        database = parts.path.lstrip("/")
        try:
            port = parts.port or 3306
        except ValueError:
            raise ConfigError("mysql uri has an invalid port") from None
        host = parts.hostname or "127.0.0.1"
        user = urllib.parse.unquote(parts.username or "root")
        password = urllib.parse.unquote(parts.password or "")
        params = tuple(urllib.parse.parse_qsl(parts.query))
    else:
        # Go driver form: [user[:password]@][net[(addr)]]/dbname[?params]. The last '/'
        # ends the address part; the last '@' before it ends the credentials.
        prefix, slash, rest = uri.rpartition("/")
        if not slash:
            raise ConfigError("mysql uri is not a DSN of the form user:pass@tcp(host:port)/db")
        database, _, query = rest.partition("?")
        params = tuple(urllib.parse.parse_qsl(query))
        creds, at, address = prefix.rpartition("@")
        user, _, password = creds.partition(":") if at else ("root", "", "")
        user = user or "root"
        host, port = "127.0.0.1", 3306
        if address:
            net, paren, addr = address.partition("(")
            if not paren or not addr.endswith(")") or net not in ("tcp", "unix"):
                raise ConfigError("mysql uri address must be tcp(host:port) or unix(/path)")
            addr = addr[:-1]
            if net == "unix":
                socket, host = addr, "localhost"
            elif ":" in addr:
                host_part, _, port_text = addr.rpartition(":")
                host, port = host_part or "127.0.0.1", _port(port_text)
            elif addr:
                host = addr
    if not database:
        raise ConfigError(f"mysql uri {user}@{host}:{port} names no database (…/dbname)")
    return MySQLURI(host, port, database, user, password, socket, params)


@dataclass(frozen=True)
class MySQLOptions:
    """Options of a MySQL pool (seed ``MySQLOptions``); 0 means "derive from the server"."""

    conn_max_lifetime: int = 0  # seconds
    max_open_connections: int = 0
    max_idle_connections: int = 0
    default_encoding: str = "utf8mb4"
    default_collate: str = "unicode_520_ci"
    ignored_tables: tuple[str, ...] = ()
    # Bounds of every call, in whole seconds (mysqlclient's connect/read/write timeouts).
    connect_timeout: int = 2
    read_timeout: int = 30
    write_timeout: int = 30

    @property
    def collation(self) -> str:
        return f"{self.default_encoding}_{self.default_collate}"


# -- Redis ---------------------------------------------------------------------


@dataclass(frozen=True)
class RedisOptions:
    """Options of a Redis pool; sentinel mode when ``sentinels`` is non-empty."""

    user: str = ""
    password: str = field(default="", repr=False)
    master: str = ""
    sentinels: tuple[str, ...] = ()
    sentinel_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # Bounds of every call, in seconds: a hung server costs a read at most
    # connect_timeout + read_timeout before it falls back to MySQL.
    connect_timeout: float = 1.0
    read_timeout: float = 1.0


def parse_redis_address(address: str) -> tuple[str, int | None]:
    """``host:port`` -> (host, port); a path ending in ``.sock`` -> (path, None)."""
    if address.endswith(".sock"):
        return address, None
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"redis address {address!r} must be host:port or /path/to.sock")
    try:
        return host, int(port)
    except ValueError:
        raise ConfigError(f"redis address {address!r} has an invalid port") from None


# -- ClickHouse, Kafka, async flush --------------------------------------------


@dataclass(frozen=True)
class ClickhouseOptions:
    """Options of a ClickHouse pool. Bounds, in seconds: ``connect_timeout`` (TCP connect
    and handshake of a server; the URI's ``?connect_timeout=`` wins) and ``read_timeout``
    (one reply of a server; on chDB the wait for the pool's connection and the query's
    ``max_execution_time``)."""

    max_open_connections: int = 100
    max_idle_connections: int = 0
    conn_max_lifetime: int = 300
    connect_timeout: float = 2.0
    read_timeout: float = 30.0


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaPoolOptions:
    """Options of a Kafka pool (seed ``KafkaPoolOptions``).

    ``tls`` turns on TLS (``security.protocol`` ``SSL``, or ``SASL_SSL`` with a SASL
    mechanism; ``tls_ca_file`` is a PEM bundle of the CAs to trust, the system's by
    default). ``ignored_topics``/``ignored_consumer_groups`` are names or ``fnmatch``
    patterns ``fluxa_migrate`` never deletes. Bounds, in seconds: ``connect_timeout``
    (TCP, TLS and SASL set-up of a broker connection, and a metadata request),
    ``request_timeout`` (one broker request), ``delivery_timeout`` (a produced record
    is acknowledged or failed within it).
    """

    client_id: str = ""
    required_acks: int = -1
    producer_linger_ms: int = 0
    max_buffered_records: int = 0
    sasl_mechanism: str = ""  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    sasl_user: str = ""
    sasl_password: str = field(default="", repr=False)
    ignored_topics: tuple[str, ...] = ()
    ignored_consumer_groups: tuple[str, ...] = ()
    tls: bool = False
    tls_ca_file: str = ""
    connect_timeout: float = 2.0
    request_timeout: float = 10.0
    delivery_timeout: float = 10.0


# The async flush's topics and consumer group (defined by ``register_async_flush``).
ASYNC_SQL_TOPIC = "_fluxa_async_sql"
ASYNC_SQL_FAILED_TOPIC = "_fluxa_async_sql_failed"
ASYNC_SQL_GROUP = "_fluxa_async_sql"


@dataclass(frozen=True)
class AsyncFlushOptions:
    """Options of the async flush topics ``_fluxa_async_sql`` and ``_fluxa_async_sql_failed``
    (both get ``topic_partitions`` partitions; ``replication_factor`` -1 is the broker's
    default)."""

    topic_partitions: int = 1
    replication_factor: int = -1
    # The consumer group of ``fluxa_consume_async``. Applications sharing a broker (and so
    # the topic) give each its own group: records of another application are skipped.
    consumer_group: str = ASYNC_SQL_GROUP


DECIMAL_HANDLING_MODES = ("precise", "string", "double")


@dataclass(frozen=True)
class DebeziumOptions:
    """Options of the Debezium connectors on one Kafka Connect (``register_debezium_connect_url``).

    ``hostname``/``port``/``user``/``password`` replace the MySQL pool's own (Connect
    usually reaches the database by another address than the application). ``extra``
    adds connector config keys or replaces the generated ones. ``connector_class``
    replaces the class chosen from the server's version. ``schemas`` turns on
    ``schemas.enable`` of the value converter. ``conflict_timeout``: how long (seconds) a
    request answered 409 (a rebalance in progress) is retried.
    """

    hostname: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    decimal_handling_mode: str = "precise"
    schemas: bool = False
    connector_class: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)
    request_timeout: float = 10.0
    conflict_timeout: float = 60.0


class KafkaConsumerGroup:
    """Builder of a consumer group definition: ``KafkaConsumerGroup(name, pool).topics(...)``."""

    def __init__(self, name: str, pool: str = DEFAULT_POOL_CODE) -> None:
        self.name = name
        self.pool = pool
        self.topic_names: tuple[str, ...] = ()
        self.session_timeout_ms = 0
        self.rebalance_timeout_ms = 0
        self.fetch_max_bytes = 0
        self.auto_commit_interval_ms = 0

    def topics(self, *names: str) -> KafkaConsumerGroup:
        self.topic_names = (*self.topic_names, *names)
        return self

    def session_timeout(self, ms: int) -> KafkaConsumerGroup:
        self.session_timeout_ms = ms
        return self

    def rebalance_timeout(self, ms: int) -> KafkaConsumerGroup:
        self.rebalance_timeout_ms = ms
        return self

    def fetch_max(self, nbytes: int) -> KafkaConsumerGroup:
        self.fetch_max_bytes = nbytes
        return self

    def auto_commit_interval(self, ms: int) -> KafkaConsumerGroup:
        self.auto_commit_interval_ms = ms
        return self

    def __repr__(self) -> str:
        return f"KafkaConsumerGroup({self.name!r}, {self.pool!r}, topics={list(self.topic_names)})"


class KafkaTopic:
    """Builder of a desired topic: ``KafkaTopic(name, pool).partitions(6).retention_ms(...)``."""

    def __init__(self, name: str, pool: str = DEFAULT_POOL_CODE) -> None:
        self.name = name
        self.pool = pool
        self.partition_count = 1
        self.replication = 1
        self.configs: dict[str, str] = {}

    def partitions(self, n: int) -> KafkaTopic:
        self.partition_count = n
        return self

    def replication_factor(self, n: int) -> KafkaTopic:
        self.replication = n
        return self

    def config(self, key: str, value: str | int) -> KafkaTopic:
        self.configs[key] = str(value)
        return self

    def retention_ms(self, ms: int) -> KafkaTopic:
        return self.config("retention.ms", ms)

    def retention_bytes(self, n: int) -> KafkaTopic:
        return self.config("retention.bytes", n)

    def max_message_bytes(self, n: int) -> KafkaTopic:
        return self.config("max.message.bytes", n)

    def cleanup_policy(self, policy: str) -> KafkaTopic:
        return self.config("cleanup.policy", policy)

    def min_insync_replicas(self, n: int) -> KafkaTopic:
        return self.config("min.insync.replicas", n)

    def compression_type(self, kind: str) -> KafkaTopic:
        return self.config("compression.type", kind)

    def __repr__(self) -> str:
        return f"KafkaTopic({self.name!r}, {self.pool!r}, partitions={self.partition_count})"


# -- Config (the seed's Config struct, snake_case) ------------------------------


@dataclass
class ConfigMysql:
    code: str
    uri: str = field(repr=False)
    conn_max_lifetime: int = 0
    max_open_connections: int = 0
    max_idle_connections: int = 0
    default_encoding: str = ""
    default_collate: str = ""
    ignored_tables: list[str] = field(default_factory=list)
    connect_timeout: int = 2
    read_timeout: int = 30
    write_timeout: int = 30


@dataclass
class ConfigRedis:
    code: str
    uri: str
    database: int = 0
    user: str = ""
    password: str = field(default="", repr=False)
    connect_timeout: float = 1.0
    read_timeout: float = 1.0


@dataclass
class ConfigRedisSentinel:
    code: str
    master_name: str
    database: int = 0
    sentinels: list[str] = field(default_factory=list)
    user: str = ""
    password: str = field(default="", repr=False)
    connect_timeout: float = 1.0
    read_timeout: float = 1.0


@dataclass
class ConfigLocalCache:
    code: str
    limit: int = 0


@dataclass
class ConfigClickhouse:
    code: str
    uri: str = field(repr=False)
    conn_max_lifetime: int = 0
    max_open_connections: int = 0
    max_idle_connections: int = 0


@dataclass
class ConfigKafkaConsumerGroup:
    name: str
    topics: list[str] = field(default_factory=list)
    session_timeout_ms: int = 0
    rebalance_timeout_ms: int = 0
    fetch_max_bytes: int = 0
    auto_commit_interval_ms: int = 0


@dataclass
class ConfigKafkaTopic:
    name: str
    partitions: int = 1
    replication_factor: int = 1
    configs: dict[str, str] = field(default_factory=dict)


@dataclass
class ConfigKafka:
    code: str
    brokers: list[str]
    client_id: str = ""
    required_acks: int = -1
    producer_linger_ms: int = 0
    max_buffered_records: int = 0
    sasl_mechanism: str = ""
    sasl_user: str = ""
    sasl_password: str = field(default="", repr=False)
    consumer_groups: list[ConfigKafkaConsumerGroup] = field(default_factory=list)
    ignored_topics: list[str] = field(default_factory=list)
    ignored_consumer_groups: list[str] = field(default_factory=list)
    topics: list[ConfigKafkaTopic] = field(default_factory=list)
    tls: bool = False
    tls_ca_file: str = ""
    connect_timeout: float = 2.0
    request_timeout: float = 10.0
    delivery_timeout: float = 10.0


@dataclass
class ConfigAsyncFlush:
    kafka_pool: str
    topic_partitions: int = 1
    replication_factor: int = -1
    consumer_group: str = ASYNC_SQL_GROUP


@dataclass
class Config:
    """Every pool of an application, one list per kind (the seed's Config struct)."""

    mysql_pools: list[ConfigMysql] = field(default_factory=list)
    redis_pools: list[ConfigRedis] = field(default_factory=list)
    redis_sentinel_pools: list[ConfigRedisSentinel] = field(default_factory=list)
    local_cache_pools: list[ConfigLocalCache] = field(default_factory=list)
    clickhouse_pools: list[ConfigClickhouse] = field(default_factory=list)
    kafka_pools: list[ConfigKafka] = field(default_factory=list)
    async_flush: ConfigAsyncFlush | None = None


# -- YAML-shaped dict -> Config -------------------------------------------------


def snake(key: str) -> str:
    """``maxOpenConnections`` -> ``max_open_connections`` (snake_case keys pass through)."""
    out = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()
    return {"client_i_d": "client_id", "client_id": "client_id"}.get(out, out)


class _Reader:
    """Typed access to one mapping of the YAML config, with errors naming the pool and key."""

    def __init__(self, pool: str, section: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"pool {pool!r}: {section} must be a mapping")
        self.pool, self.section = pool, section
        self.data = {snake(str(k)): v for k, v in data.items()}

    def _bad(self, key: str, want: str) -> ConfigError:
        return ConfigError(f"pool {self.pool!r}: {self.section}.{key} must be {want}")

    def check_keys(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise ConfigError(f"pool {self.pool!r}: unknown key {self.section}.{unknown[0]}")

    def text(self, key: str, default: str = "", *, required: bool = False) -> str:
        value = self.data.get(key, None)
        if value is None:
            if required:
                raise ConfigError(f"pool {self.pool!r}: {self.section}.{key} is required")
            return default
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def integer(self, key: str, default: int = 0) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
            raise self._bad(key, "an integer")
        return value

    def texts(self, key: str) -> list[str]:
        value = self.data.get(key, [])
        if (
            isinstance(value, str)
            or not isinstance(value, list | tuple)
            or not all(isinstance(v, str) for v in value)
        ):
            raise self._bad(key, "a list of strings")
        return list(value)


_MYSQL_KEYS = {
    "uri",
    "database",
    "conn_max_lifetime",
    "max_open_connections",
    "max_idle_connections",
    "default_encoding",
    "default_collate",
    "ignored_tables",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
}
_POOL_KINDS = {"mysql", "redis", "sentinel", "local_cache", "clickhouse", "kafka"}


def parse_redis_uri(pool: str, value: str) -> ConfigRedis:
    """``host:port:db?user=&password=`` (or ``/path.sock:db``) -> ``ConfigRedis``."""
    if not isinstance(value, str):
        raise ConfigError(f"pool {pool!r}: redis must be a string host:port:db")
    main, _, query = value.partition("?")
    creds = dict(urllib.parse.parse_qsl(query))
    address, sep, db = main.rpartition(":")
    shown = main.rpartition("@")[2]  # never echo credentials
    if not sep or not db.isdigit() or not address or "@" in main:
        raise ConfigError(f"pool {pool!r}: redis must be host:port:db, got {shown!r}")
    if ":" not in address and not address.endswith(".sock"):
        raise ConfigError(f"pool {pool!r}: redis must be host:port:db, got {shown!r}")
    unknown = sorted(set(creds) - {"user", "password", "connect_timeout", "read_timeout"})
    if unknown:
        raise ConfigError(f"pool {pool!r}: unknown redis parameter {unknown[0]!r}")
    return ConfigRedis(
        pool,
        address,
        int(db),
        creds.get("user", ""),
        creds.get("password", ""),
        connect_timeout=_seconds(pool, "connect_timeout", creds.get("connect_timeout", "1")),
        read_timeout=_seconds(pool, "read_timeout", creds.get("read_timeout", "1")),
    )


def _seconds(pool: str, name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise ConfigError(f"pool {pool!r}: redis {name} must be a number of seconds in (0, 3600]")
    return value


def config_from_yaml(data: Mapping[str, Any]) -> tuple[Config, dict[str, str]]:
    """Parse the seed's YAML shape (already loaded into a dict).

    Returns the Config plus, per pool, the Django database alias named by
    ``mysql: {database: alias}`` (resolved by the Django glue, not here).
    """
    if not isinstance(data, Mapping):
        raise ConfigError("the pool configuration must be a mapping of pool code -> pool")
    config = Config()
    aliases: dict[str, str] = {}
    for pool, spec in data.items():
        if not isinstance(pool, str) or not pool:
            raise ConfigError(f"pool code {pool!r} must be a non-empty string")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"pool {pool!r} must be a mapping")
        unknown = sorted(set(spec) - _POOL_KINDS)
        if unknown:
            raise ConfigError(f"pool {pool!r}: unknown pool kind {unknown[0]!r}")
        if "mysql" in spec:
            r = _Reader(pool, "mysql", spec["mysql"])
            r.check_keys(_MYSQL_KEYS)
            if "database" in r.data:
                aliases[pool] = r.text("database", required=True)
            uri = r.text("uri", required=pool not in aliases)
            config.mysql_pools.append(
                ConfigMysql(
                    pool,
                    uri,
                    conn_max_lifetime=r.integer("conn_max_lifetime"),
                    max_open_connections=r.integer("max_open_connections"),
                    max_idle_connections=r.integer("max_idle_connections"),
                    default_encoding=r.text("default_encoding"),
                    default_collate=r.text("default_collate"),
                    ignored_tables=r.texts("ignored_tables"),
                    connect_timeout=r.integer("connect_timeout") or 2,
                    read_timeout=r.integer("read_timeout") or 30,
                    write_timeout=r.integer("write_timeout") or 30,
                )
            )
        if "redis" in spec:
            config.redis_pools.append(parse_redis_uri(pool, spec["redis"]))
        if "sentinel" in spec:
            config.redis_sentinel_pools.append(_parse_sentinel(pool, spec["sentinel"]))
        if "local_cache" in spec:
            limit = spec["local_cache"]
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ConfigError(f"pool {pool!r}: local_cache must be a non-negative integer")
            config.local_cache_pools.append(ConfigLocalCache(pool, limit))
        if "clickhouse" in spec:
            r = _Reader(pool, "clickhouse", spec["clickhouse"])
            r.check_keys(
                {"uri", "conn_max_lifetime", "max_open_connections", "max_idle_connections"}
            )
            config.clickhouse_pools.append(
                ConfigClickhouse(
                    pool,
                    r.text("uri", required=True),
                    conn_max_lifetime=r.integer("conn_max_lifetime"),
                    max_open_connections=r.integer("max_open_connections"),
                    max_idle_connections=r.integer("max_idle_connections"),
                )
            )
        if "kafka" in spec:
            config.kafka_pools.append(_parse_kafka(pool, spec["kafka"]))
    return config, aliases


def _parse_sentinel(pool: str, value: Any) -> ConfigRedisSentinel:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ConfigError(
            f"pool {pool!r}: sentinel must be a mapping {{'master[:db]': [addresses]}}"
        )
    ((key, addresses),) = value.items()
    main, _, query = str(key).partition("?")
    creds = dict(urllib.parse.parse_qsl(query))
    master, _, db = main.partition(":")
    if not master or (db and not db.isdigit()):
        raise ConfigError(f"pool {pool!r}: sentinel key must be master[:db], got {main!r}")
    if isinstance(addresses, str) or not isinstance(addresses, list | tuple) or not addresses:
        raise ConfigError(f"pool {pool!r}: sentinel needs a list of sentinel addresses")
    return ConfigRedisSentinel(
        pool,
        master,
        int(db or 0),
        [str(a) for a in addresses],
        creds.get("user", ""),
        creds.get("password", ""),
        connect_timeout=_seconds(pool, "connect_timeout", creds.get("connect_timeout", "1")),
        read_timeout=_seconds(pool, "read_timeout", creds.get("read_timeout", "1")),
    )


def _parse_kafka(pool: str, value: Any) -> ConfigKafka:
    r = _Reader(pool, "kafka", value)
    r.check_keys(
        {
            "brokers",
            "client_id",
            "required_acks",
            "producer_linger_ms",
            "max_buffered_records",
            "sasl_mechanism",
            "sasl_user",
            "sasl_password",
            "consumer_groups",
            "ignored_topics",
            "ignored_consumer_groups",
            "topics",
            "tls",
            "tls_ca_file",
            "connect_timeout",
            "request_timeout",
            "delivery_timeout",
        }
    )
    brokers = r.texts("brokers")
    if not brokers:
        raise ConfigError(f"pool {pool!r}: kafka.brokers must list at least one broker")
    groups = []
    for i, item in enumerate(r.data.get("consumer_groups", []) or []):
        g = _Reader(pool, f"kafka.consumer_groups[{i}]", item)
        groups.append(
            ConfigKafkaConsumerGroup(
                g.text("name", required=True),
                g.texts("topics"),
                g.integer("session_timeout_ms"),
                g.integer("rebalance_timeout_ms"),
                g.integer("fetch_max_bytes"),
                g.integer("auto_commit_interval_ms"),
            )
        )
    topics = []
    for i, item in enumerate(r.data.get("topics", []) or []):
        t = _Reader(pool, f"kafka.topics[{i}]", item)
        configs = t.data.get("configs", {}) or {}
        if not isinstance(configs, Mapping):
            raise ConfigError(f"pool {pool!r}: kafka.topics[{i}].configs must be a mapping")
        topics.append(
            ConfigKafkaTopic(
                t.text("name", required=True),
                t.integer("partitions", 1),
                t.integer("replication_factor", 1),
                {str(k): str(v) for k, v in configs.items()},
            )
        )
    return ConfigKafka(
        pool,
        brokers,
        client_id=r.text("client_id"),
        required_acks=r.integer("required_acks", -1),
        producer_linger_ms=r.integer("producer_linger_ms"),
        max_buffered_records=r.integer("max_buffered_records"),
        sasl_mechanism=r.text("sasl_mechanism"),
        sasl_user=r.text("sasl_user"),
        sasl_password=r.text("sasl_password"),
        consumer_groups=groups,
        ignored_topics=r.texts("ignored_topics"),
        ignored_consumer_groups=r.texts("ignored_consumer_groups"),
        topics=topics,
        tls=_flag(pool, "kafka.tls", r.data.get("tls", False)),
        tls_ca_file=r.text("tls_ca_file"),
        connect_timeout=_kafka_seconds(pool, "connect_timeout", r.data.get("connect_timeout", 2.0)),
        request_timeout=_kafka_seconds(
            pool, "request_timeout", r.data.get("request_timeout", 10.0)
        ),
        delivery_timeout=_kafka_seconds(
            pool, "delivery_timeout", r.data.get("delivery_timeout", 10.0)
        ),
    )


def _flag(pool: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"pool {pool!r}: {key} must be true or false")
    return value


def _kafka_seconds(pool: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise ConfigError(f"pool {pool!r}: kafka.{name} must be a number of seconds in (0, 3600]")
    return float(value)
