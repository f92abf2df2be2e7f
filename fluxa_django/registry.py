"""``Registry``: collects pools, entities and options, then ``validate()`` -> ``Engine``.

``check()`` runs every definition rule without network I/O (system checks and
code generation use it); ``validate()`` also connects to every pool.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from fluxa_django.config import (
    ASYNC_SQL_FAILED_TOPIC,
    ASYNC_SQL_TOPIC,
    DECIMAL_HANDLING_MODES,
    DEFAULT_POOL_CODE,
    SASL_MECHANISMS,
    AsyncFlushOptions,
    ClickhouseOptions,
    Config,
    DebeziumOptions,
    KafkaConsumerGroup,
    KafkaPoolOptions,
    KafkaTopic,
    MySQLOptions,
    MySQLURI,
    RedisOptions,
    config_from_yaml,
    parse_mysql_uri,
    parse_redis_address,
)
from fluxa_django.errors import ConfigError, DefinitionError, DefinitionErrors, PoolError
from fluxa_django.schema import Entity, EntitySchema, PoolCatalog, SchemaBuilder, TableOptions

if TYPE_CHECKING:
    from fluxa_django.engine import Engine
    from fluxa_django.migrate.clickhouse import ClickhouseTable

log = logging.getLogger("fluxa_django")


@dataclass(frozen=True)
class MySQLPoolConfig:
    code: str
    uri: MySQLURI
    options: MySQLOptions
    django_alias: str | None = None  # set when the pool is a Django DATABASES alias


@dataclass(frozen=True)
class RedisPoolConfig:
    code: str
    address: str
    db: int
    options: RedisOptions


@dataclass(frozen=True)
class ClickhousePoolConfig:
    code: str
    uri: str
    options: ClickhouseOptions

    def __repr__(self) -> str:
        from fluxa_django.backends.clickhouse import safe_clickhouse_uri

        return f"ClickhousePoolConfig(code={self.code!r}, uri={safe_clickhouse_uri(self.uri)!r})"


@dataclass(frozen=True)
class KafkaPoolConfig:
    code: str
    brokers: tuple[str, ...]
    options: KafkaPoolOptions


class Registry:
    """Pools, entities and options of one application, before validation."""

    def __init__(self) -> None:
        self.mysql_pools: dict[str, MySQLPoolConfig] = {}
        self.redis_pools: dict[str, RedisPoolConfig] = {}
        self.local_cache_pools: dict[str, int] = {}
        self.clickhouse_pools: dict[str, ClickhousePoolConfig] = {}
        self.kafka_pools: dict[str, KafkaPoolConfig] = {}
        self.kafka_consumer_groups: dict[str, KafkaConsumerGroup] = {}
        self.kafka_topics: dict[tuple[str, str], KafkaTopic] = {}
        self.clickhouse_tables: dict[tuple[str, str], ClickhouseTable] = {}
        self.debezium_connect_urls: dict[str, str] = {}
        self.debezium_options: dict[str, DebeziumOptions] = {}
        self.async_flush: tuple[str, AsyncFlushOptions] | None = None
        self.entities: list[type[Entity]] = []
        self.options: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (
            f"<Registry mysql={sorted(self.mysql_pools)} redis={sorted(self.redis_pools)} "
            f"entities={[e.__name__ for e in self.entities]}>"
        )

    # -- pools ----------------------------------------------------------------

    def register_mysql(
        self, uri: str, code: str = DEFAULT_POOL_CODE, options: MySQLOptions | None = None
    ) -> None:
        _check_code(code)
        opts = options or MySQLOptions()
        opts = replace(
            opts,
            default_encoding=opts.default_encoding or "utf8mb4",
            default_collate=opts.default_collate or "unicode_520_ci",
        )
        _check_timeouts(
            f"mysql pool {code!r}",
            opts,
            ("connect_timeout", "read_timeout", "write_timeout"),
            int,
            86400,
        )
        try:
            parsed = parse_mysql_uri(uri)
        except ConfigError as exc:
            raise ConfigError(f"mysql pool {code!r}: {exc}") from None
        self.mysql_pools[code] = MySQLPoolConfig(code, parsed, opts)

    def register_redis(
        self,
        address: str,
        db: int = 0,
        code: str = DEFAULT_POOL_CODE,
        options: RedisOptions | None = None,
    ) -> None:
        _check_code(code)
        opts = options or RedisOptions()
        if not opts.sentinels:
            try:
                parse_redis_address(address)
            except ConfigError as exc:
                raise ConfigError(f"redis pool {code!r}: {exc}") from None
        if isinstance(db, bool) or not isinstance(db, int) or not 0 <= db <= 15:
            raise ConfigError(f"redis pool {code!r}: database must be 0..15, got {db!r}")
        _check_timeouts(
            f"redis pool {code!r}", opts, ("connect_timeout", "read_timeout"), float, 3600
        )
        self.redis_pools[code] = RedisPoolConfig(code, address, db, opts)

    def register_local_cache(self, code: str = DEFAULT_POOL_CODE, limit: int = 0) -> None:
        _check_code(code)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ConfigError(f"local cache pool {code!r}: limit must be a non-negative integer")
        self.local_cache_pools[code] = limit

    def register_clickhouse(
        self, uri: str, code: str = DEFAULT_POOL_CODE, options: ClickhouseOptions | None = None
    ) -> None:
        _check_code(code)
        from fluxa_django.backends.clickhouse import safe_clickhouse_uri

        if not isinstance(uri, str):
            raise ConfigError(f"clickhouse pool {code!r}: uri must be a string")
        try:
            safe_clickhouse_uri(uri)
        except (ConfigError, ValueError) as exc:
            reason = exc if isinstance(exc, ConfigError) else "uri has an invalid port"
            raise ConfigError(f"clickhouse pool {code!r}: {reason}") from None
        if uri.startswith("chdb://"):
            from fluxa_django.backends.clickhouse import chdb_path

            path = chdb_path(uri)
            for other in self.clickhouse_pools.values():
                other_chdb = other.code != code and other.uri.startswith("chdb://")
                if other_chdb and chdb_path(other.uri) != path:
                    raise ConfigError(
                        f"clickhouse pool {code!r}: chDB allows one data path per process, "
                        f"and pool {other.code!r} already uses {chdb_path(other.uri)!r}"
                    )
        self.clickhouse_pools[code] = ClickhousePoolConfig(
            code, uri, options or ClickhouseOptions()
        )

    def register_clickhouse_table(self, table: ClickhouseTable) -> None:
        """A ``ClickhouseTable`` that ``fluxa_migrate`` creates and alters on its pool."""
        table.check()
        key = (table.pool, table.name)
        if key in self.clickhouse_tables:
            raise ConfigError(
                f"clickhouse table {table.name!r} on pool {table.pool!r} registered twice"
            )
        self.clickhouse_tables[key] = table

    def register_kafka(
        self,
        brokers: list[str],
        code: str = DEFAULT_POOL_CODE,
        options: KafkaPoolOptions | None = None,
    ) -> None:
        _check_code(code)
        if (
            isinstance(brokers, str)
            or not brokers
            or not all(isinstance(b, str) and b for b in brokers)
        ):
            raise ConfigError(f"kafka pool {code!r}: brokers must be a non-empty list of host:port")
        self.kafka_pools[code] = KafkaPoolConfig(
            code, tuple(brokers), _kafka_options(code, options or KafkaPoolOptions())
        )

    def register_kafka_consumer_group(self, group: KafkaConsumerGroup) -> None:
        if not isinstance(group.name, str) or not group.name:
            raise ConfigError(
                f"kafka consumer group {group.name!r}: name must be a non-empty string"
            )
        self.kafka_consumer_groups[group.name] = group

    def register_kafka_topic(self, topic: KafkaTopic) -> None:
        _check_topic(topic.name, topic.partition_count, topic.replication)
        self.kafka_topics[(topic.pool, topic.name)] = topic

    def kafka_topic_definitions(self) -> dict[tuple[str, str], KafkaTopic]:
        """Every topic ``fluxa_migrate`` manages, by (pool, name): the registered ones and
        the async flush's ``_fluxa_async_sql`` and ``_fluxa_async_sql_failed``."""
        topics = dict(self.kafka_topics)
        if self.async_flush is not None:
            pool, options = self.async_flush
            for name in (ASYNC_SQL_TOPIC, ASYNC_SQL_FAILED_TOPIC):
                topics.setdefault(
                    (pool, name),
                    KafkaTopic(name, pool)
                    .partitions(options.topic_partitions)
                    .replication_factor(options.replication_factor),
                )
        return topics

    def kafka_group_definitions(self) -> dict[str, KafkaConsumerGroup]:
        """Every consumer group, by name: the registered ones and the async flush's
        ``_fluxa_async_sql`` (reading ``_fluxa_async_sql``)."""
        groups = dict(self.kafka_consumer_groups)
        if self.async_flush is not None and self.async_flush[1].consumer_group not in groups:
            name = self.async_flush[1].consumer_group
            groups[name] = KafkaConsumerGroup(name, self.async_flush[0]).topics(ASYNC_SQL_TOPIC)
        return groups

    def register_debezium_connect_url(
        self,
        url: str,
        kafka_pool: str = DEFAULT_POOL_CODE,
        options: DebeziumOptions | None = None,
    ) -> None:
        """The Kafka Connect REST URL where ``fluxa_migrate`` manages the Debezium
        connectors of the entities with ``Meta.debezium`` on ``kafka_pool``."""
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"debezium connect url for kafka pool {kafka_pool!r} must be http(s)://"
            )
        opts = options or DebeziumOptions()
        if opts.decimal_handling_mode not in DECIMAL_HANDLING_MODES:
            raise ConfigError(
                f"debezium options for kafka pool {kafka_pool!r}: decimal_handling_mode must "
                f"be one of {', '.join(DECIMAL_HANDLING_MODES)}"
            )
        self.debezium_connect_urls[kafka_pool] = url
        self.debezium_options[kafka_pool] = opts

    def register_async_flush(
        self, kafka_pool: str, options: AsyncFlushOptions | None = None
    ) -> None:
        opts = options or AsyncFlushOptions()
        _check_topic(ASYNC_SQL_TOPIC, opts.topic_partitions, opts.replication_factor)
        self.async_flush = (kafka_pool, opts)

    def register_entity(self, *classes: type[Entity]) -> None:
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, Entity)) or cls is Entity:
                raise ConfigError(f"{cls!r} is not an Entity subclass")
            if cls not in self.entities:
                self.entities.append(cls)

    # -- bulk configuration -----------------------------------------------------

    def init_by_config(self, config: Config) -> None:
        """Register every pool of a ``Config`` (the seed's Config struct)."""
        for m in config.mysql_pools:
            self.register_mysql(
                m.uri,
                m.code,
                MySQLOptions(
                    conn_max_lifetime=m.conn_max_lifetime,
                    max_open_connections=m.max_open_connections,
                    max_idle_connections=m.max_idle_connections,
                    default_encoding=m.default_encoding,
                    default_collate=m.default_collate,
                    ignored_tables=tuple(m.ignored_tables),
                    connect_timeout=m.connect_timeout,
                    read_timeout=m.read_timeout,
                    write_timeout=m.write_timeout,
                ),
            )
        for r in config.redis_pools:
            self.register_redis(
                r.uri,
                r.database,
                r.code,
                RedisOptions(
                    user=r.user,
                    password=r.password,
                    connect_timeout=r.connect_timeout,
                    read_timeout=r.read_timeout,
                ),
            )
        for s in config.redis_sentinel_pools:
            self.register_redis(
                "",
                s.database,
                s.code,
                RedisOptions(
                    user=s.user,
                    password=s.password,
                    master=s.master_name,
                    sentinels=tuple(s.sentinels),
                    connect_timeout=s.connect_timeout,
                    read_timeout=s.read_timeout,
                ),
            )
        for lc in config.local_cache_pools:
            self.register_local_cache(lc.code, lc.limit)
        for c in config.clickhouse_pools:
            self.register_clickhouse(
                c.uri,
                c.code,
                ClickhouseOptions(
                    max_open_connections=c.max_open_connections or 100,
                    max_idle_connections=c.max_idle_connections,
                    conn_max_lifetime=c.conn_max_lifetime or 300,
                ),
            )
        for k in config.kafka_pools:
            self.register_kafka(
                k.brokers,
                k.code,
                KafkaPoolOptions(
                    client_id=k.client_id,
                    required_acks=k.required_acks,
                    producer_linger_ms=k.producer_linger_ms,
                    max_buffered_records=k.max_buffered_records,
                    sasl_mechanism=k.sasl_mechanism,
                    sasl_user=k.sasl_user,
                    sasl_password=k.sasl_password,
                    ignored_topics=tuple(k.ignored_topics),
                    ignored_consumer_groups=tuple(k.ignored_consumer_groups),
                    tls=k.tls,
                    tls_ca_file=k.tls_ca_file,
                    connect_timeout=k.connect_timeout,
                    request_timeout=k.request_timeout,
                    delivery_timeout=k.delivery_timeout,
                ),
            )
            for g in k.consumer_groups:
                group = KafkaConsumerGroup(g.name, k.code).topics(*g.topics)
                group.session_timeout_ms = g.session_timeout_ms
                group.rebalance_timeout_ms = g.rebalance_timeout_ms
                group.fetch_max_bytes = g.fetch_max_bytes
                group.auto_commit_interval_ms = g.auto_commit_interval_ms
                self.register_kafka_consumer_group(group)
            for t in k.topics:
                topic = (
                    KafkaTopic(t.name, k.code)
                    .partitions(t.partitions)
                    .replication_factor(t.replication_factor)
                )
                for key, value in t.configs.items():
                    topic.config(key, value)
                self.register_kafka_topic(topic)
        if config.async_flush is not None:
            self.register_async_flush(
                config.async_flush.kafka_pool,
                AsyncFlushOptions(
                    topic_partitions=config.async_flush.topic_partitions,
                    replication_factor=config.async_flush.replication_factor,
                    consumer_group=config.async_flush.consumer_group,
                ),
            )

    def init_by_yaml(self, data: Mapping[str, Any]) -> None:
        """Register the pools of the seed's YAML format (a dict already loaded)."""
        config, aliases = config_from_yaml(data)
        if aliases:
            pool = sorted(aliases)[0]
            raise ConfigError(
                f"pool {pool!r}: mysql.database names a Django database alias; "
                "only the FLUXA setting resolves aliases, use mysql.uri here"
            )
        self.init_by_config(config)

    def set_option(self, key: str, value: Any) -> None:
        self.options[key] = value

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    # -- validation ---------------------------------------------------------------

    def pool_catalog(self) -> PoolCatalog:
        return PoolCatalog(
            mysql={
                code: TableOptions(p.options.default_encoding, p.options.collation)
                for code, p in self.mysql_pools.items()
            },
            redis=frozenset(self.redis_pools),
            local_cache=frozenset(self.local_cache_pools),
            kafka=frozenset(self.kafka_pools),
            redis_db={code: r.db for code, r in self.redis_pools.items()},
        )

    def check(self) -> list[DefinitionError]:
        """Every definition problem, without connecting to anything."""
        builder = SchemaBuilder(self.entities, self.pool_catalog())
        schemas = builder.build()
        errors = list(builder.errors)
        errors.extend(self._check_pool_links())
        errors.extend(self._check_cache_links(schemas))
        return errors

    def _check_pool_links(self) -> list[DefinitionError]:
        errors: list[DefinitionError] = []

        def missing(what: str, code: str) -> None:
            errors.append(
                DefinitionError(
                    f"{what} names kafka pool {code!r}, which is not registered", code="E027"
                )
            )

        if self.async_flush is not None and self.async_flush[0] not in self.kafka_pools:
            missing("async flush", self.async_flush[0])
        for group in self.kafka_consumer_groups.values():
            if group.pool not in self.kafka_pools:
                missing(f"consumer group {group.name!r}", group.pool)
        for pool, name in self.kafka_topics:
            if pool not in self.kafka_pools:
                missing(f"topic {name!r}", pool)
        for pool, name in self.clickhouse_tables:
            if pool not in self.clickhouse_pools:
                errors.append(
                    DefinitionError(
                        f"clickhouse table {name!r} names clickhouse pool {pool!r}, which is "
                        "not registered",
                        code="E027",
                    )
                )
        for pool in self.debezium_connect_urls:
            if pool not in self.kafka_pools:
                missing("debezium connect url", pool)
        return errors

    def _check_cache_links(self, schemas: Mapping[Any, EntitySchema]) -> list[DefinitionError]:
        """A local tier or cached unique index needs a Redis pool (invalidation, index keys)."""
        errors: list[DefinitionError] = []
        for schema in schemas.values():
            cached_unique = any(index.cached for index in schema.indexes)
            needs_default = schema.redis_cache is None and (schema.local_cache or cached_unique)
            if needs_default and DEFAULT_POOL_CODE not in self.redis_pools:
                what = "local_cache" if schema.local_cache else "cached_unique_indexes"
                errors.append(
                    DefinitionError(
                        f"entity {schema.name}: {what} needs a Redis pool (its redis_cache "
                        f"pool or {DEFAULT_POOL_CODE!r}) for cross-process invalidation "
                        "and index keys, and none is registered",
                        code="E031",
                        entity=schema.name,
                    )
                )
        return errors

    def build_schemas(self) -> dict[type[Entity], EntitySchema]:
        builder = SchemaBuilder(self.entities, self.pool_catalog())
        schemas = builder.build()
        errors = builder.errors + self._check_pool_links() + self._check_cache_links(schemas)
        if errors:
            raise DefinitionErrors(errors)
        return schemas

    def validate(self, allow_unavailable: bool | Iterable[str] = ()) -> Engine:
        """Check every definition, connect to every pool and return the ``Engine``.

        A pool that cannot be reached raises ``PoolError`` naming it, unless its code
        is in ``allow_unavailable`` (``True``: any pool): then the engine is built
        anyway, the failure is logged once as a warning naming the pool, it is listed
        in ``engine.unavailable``, and each use of the pool tries its server again
        (raising ``PoolError`` naming it while the server stays away). The Django
        glue builds its engine with ``allow_unavailable=True``.
        """
        from fluxa_django.backends.clickhouse import open_clickhouse_pool
        from fluxa_django.backends.kafka import KafkaPool
        from fluxa_django.backends.localcache import LocalCache
        from fluxa_django.backends.mysql import MySQLPool
        from fluxa_django.backends.redis import RedisPool
        from fluxa_django.engine import Engine

        schemas = self.build_schemas()
        optional = allow_unavailable
        unavailable: dict[str, str] = {}

        def connect(kind: str, pool: Any) -> None:
            try:
                pool.connect()
            except PoolError as exc:
                if optional is not True and pool.code not in set(optional or ()):
                    raise
                unavailable[f"{kind}:{pool.code}"] = str(exc)
                log.warning(
                    "fluxa: %s pool %r is unavailable at start (%s); the engine starts "
                    "without it, and each use tries it again",
                    kind,
                    pool.code,
                    exc,
                )

        opened: list[Any] = []
        try:
            mysql = {}
            for code, m in self.mysql_pools.items():
                pool = MySQLPool(code, m.uri, m.options, m.django_alias)
                opened.append(pool)
                connect("mysql", pool)
                mysql[code] = pool
            redis = {}
            for code, r in self.redis_pools.items():
                rpool = RedisPool(
                    code,
                    r.address,
                    r.db,
                    r.options,
                    app_name=str(self.options.get("app_name") or ""),
                )
                opened.append(rpool)
                connect("redis", rpool)
                redis[code] = rpool
            for schema in schemas.values():
                if f"redis:{schema.redis_search}" in unavailable:
                    continue  # checked when the pool is back (search commands fail clearly)
                if schema.redis_search and not redis[schema.redis_search].features.has_search:
                    raise PoolError(
                        f"redis pool {schema.redis_search!r} has no search module, "
                        f"which entity {schema.name} needs for its searchable fields",
                        pool=schema.redis_search,
                    )
            clickhouse = {}
            for code, c in self.clickhouse_pools.items():
                cpool = open_clickhouse_pool(code, c.uri, c.options)
                opened.append(cpool)
                connect("clickhouse", cpool)
                clickhouse[code] = cpool
            kafka = {}
            groups = self.kafka_group_definitions()
            for code, k in self.kafka_pools.items():
                mine = {name: g for name, g in groups.items() if g.pool == code}
                kpool = KafkaPool(code, list(k.brokers), k.options, mine)
                opened.append(kpool)
                connect("kafka", kpool)
                kafka[code] = kpool
        except BaseException:
            for pool in opened:
                with contextlib.suppress(Exception):
                    pool.close()
            raise
        local = {code: LocalCache(code, limit) for code, limit in self.local_cache_pools.items()}
        log.info(
            "fluxa engine ready: %d entities, mysql=%s redis=%s",
            len(schemas),
            sorted(mysql),
            sorted(redis),
        )
        engine = Engine(self, schemas, mysql, redis, local, clickhouse, kafka, unavailable)
        if self.options.get("metrics"):
            from fluxa_django import metrics

            metrics.enable(engine)
        return engine


def _check_timeouts(
    pool: str, options: Any, names: tuple[str, ...], kind: type, limit: int
) -> None:
    """Each option is a number of seconds in (0, limit]; ``kind`` int: whole seconds only."""
    accepted = (int,) if kind is int else (int, float)
    for name in names:
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, accepted) or not 0 < value <= limit:
            whole = "whole " if kind is int else ""
            raise ConfigError(f"{pool}: {name} must be {whole}seconds in (0, {limit}]")


_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _check_topic(name: str, partitions: int, replication: int) -> None:
    if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise ConfigError(
            f"kafka topic {name!r}: a name is 1-249 characters of letters, digits, '.', '_' and '-'"
        )
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ConfigError(f"kafka topic {name!r}: partitions must be an integer >= 1")
    if (
        isinstance(replication, bool)
        or not isinstance(replication, int)
        or not (replication >= 1 or replication == -1)
    ):
        raise ConfigError(
            f"kafka topic {name!r}: replication factor must be >= 1, or -1 (the broker's default)"
        )


def _kafka_options(code: str, options: KafkaPoolOptions) -> KafkaPoolOptions:
    """Checked options, the SASL mechanism in upper case."""
    where = f"kafka pool {code!r}"
    mechanism = options.sasl_mechanism.upper() if isinstance(options.sasl_mechanism, str) else ""
    if options.sasl_mechanism and mechanism not in SASL_MECHANISMS:
        raise ConfigError(
            f"{where}: sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)}, "
            f"got {options.sasl_mechanism!r}"
        )
    if mechanism and not options.sasl_user:
        raise ConfigError(f"{where}: sasl_mechanism {mechanism} needs sasl_user and sasl_password")
    if options.required_acks not in (-1, 0, 1):
        raise ConfigError(f"{where}: required_acks must be -1 (all in-sync replicas), 0 or 1")
    for name in ("producer_linger_ms", "max_buffered_records"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: {name} must be an integer >= 0")
    _check_timeouts(
        where, options, ("connect_timeout", "request_timeout", "delivery_timeout"), float, 3600
    )
    if not isinstance(options.tls, bool):
        raise ConfigError(f"{where}: tls must be True or False")
    if options.tls_ca_file and not options.tls:
        raise ConfigError(f"{where}: tls_ca_file needs tls=True")
    return replace(options, sasl_mechanism=mechanism)


def _check_code(code: str) -> None:
    if not isinstance(code, str) or not code:
        raise ConfigError(f"pool code {code!r} must be a non-empty string")
