"""``Engine``: the validated, immutable runtime entry point built by ``Registry.validate()``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fluxa_django.errors import ConfigError

if TYPE_CHECKING:
    from fluxa_django.backends.clickhouse import ClickhousePool
    from fluxa_django.backends.kafka import KafkaPool
    from fluxa_django.backends.localcache import LocalCache
    from fluxa_django.backends.mysql import MySQLPool
    from fluxa_django.backends.redis import RedisPool
    from fluxa_django.registry import Registry
    from fluxa_django.runtime.context import Context
    from fluxa_django.schema import Entity, EntitySchema


class Engine:
    """Connected pools plus the resolved entity schemas. Create one per process.

    Immutable after ``validate()``: the runtime keeps what it builds per engine
    (cache tiers, id allocators, invalidation listeners) in its own state
    (``fluxa_django.runtime.state``).
    """

    def __init__(
        self,
        registry: Registry,
        schemas: Mapping[type[Entity], EntitySchema],
        mysql: Mapping[str, MySQLPool],
        redis: Mapping[str, RedisPool],
        local: Mapping[str, LocalCache],
        clickhouse: Mapping[str, ClickhousePool],
        kafka: Mapping[str, KafkaPool],
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.schemas: Mapping[type[Entity], EntitySchema] = MappingProxyType(dict(schemas))
        self._by_name = {s.name: s for s in schemas.values()}
        self._mysql = MappingProxyType(dict(mysql))
        self._redis = MappingProxyType(dict(redis))
        self._local = MappingProxyType(dict(local))
        self._clickhouse = MappingProxyType(dict(clickhouse))
        self._kafka = MappingProxyType(dict(kafka))
        self._options = MappingProxyType(copy.copy(registry.options))
        # "<kind>:<code>" -> why, for the pools that could not be reached at start
        # (Registry.validate(allow_unavailable=...)); each use tries them again.
        self.unavailable: Mapping[str, str] = MappingProxyType(dict(unavailable or {}))

    def __repr__(self) -> str:
        pools = f"mysql={sorted(self._mysql)} redis={sorted(self._redis)}"
        if self._local:
            pools += f" local_cache={sorted(self._local)}"
        if self._clickhouse:
            pools += f" clickhouse={sorted(self._clickhouse)}"
        if self._kafka:
            pools += f" kafka={sorted(self._kafka)}"
        return f"<Engine entities={sorted(self._by_name)} {pools}>"

    def probe(self) -> dict[str, str]:
        """Ask every pool's server now; ``{"<kind>:<code>": why}`` for those that fail.

        One round trip per pool (``SELECT 1``, ``PING``, a Kafka metadata request
        with a 2 s timeout). ``manage.py check --deploy`` reports what it returns.
        """
        failed: dict[str, str] = {}
        checks: list[tuple[str, str, Any]] = [
            *(("mysql", c, lambda p=p: p.query("SELECT 1")) for c, p in self._mysql.items()),
            *(("redis", c, lambda p=p: p.client.ping()) for c, p in self._redis.items()),
            *(
                ("clickhouse", c, lambda p=p: p.query("SELECT 1"))
                for c, p in self._clickhouse.items()
            ),
            *(
                ("kafka", c, lambda p=p: p.admin().list_topics(timeout=2))
                for c, p in self._kafka.items()
            ),
        ]
        for kind, code, call in checks:
            try:
                call()
            except Exception as exc:  # whatever the driver raises: reported, not raised
                failed[f"{kind}:{code}"] = f"{type(exc).__name__}: {exc}"
        return failed

    def new_context(self) -> Context:
        """A fresh unit of work (context cache, tracked entities, loggers)."""
        from fluxa_django.runtime.context import Context

        return Context(self)

    def option(self, key: str, default: Any = None) -> Any:
        return self._options.get(key, default)

    def registered(self, name: str) -> EntitySchema | None:
        """The schema of the entity called ``name``, or ``None`` when it is not registered."""
        return self._by_name.get(name)

    def schema(self, entity: type[Entity] | str) -> EntitySchema:
        found = self._by_name.get(entity) if isinstance(entity, str) else self.schemas.get(entity)
        if found is None:
            name = entity if isinstance(entity, str) else entity.__name__
            raise ConfigError(f"entity {name} is not registered")
        return found

    @staticmethod
    def _pool(kind: str, pools: Mapping[str, Any], code: str) -> Any:
        try:
            return pools[code]
        except KeyError:
            raise ConfigError(f"{kind} pool {code!r} is not registered") from None

    def mysql(self, code: str = "default") -> MySQLPool:
        pool: MySQLPool = self._pool("mysql", self._mysql, code)
        return pool

    def redis(self, code: str = "default") -> RedisPool:
        pool: RedisPool = self._pool("redis", self._redis, code)
        return pool

    def local_cache(self, code: str = "default") -> LocalCache:
        pool: LocalCache = self._pool("local cache", self._local, code)
        return pool

    def clickhouse(self, code: str = "default") -> ClickhousePool:
        pool: ClickhousePool = self._pool("clickhouse", self._clickhouse, code)
        return pool

    def kafka(self, code: str = "default") -> KafkaPool:
        pool: KafkaPool = self._pool("kafka", self._kafka, code)
        return pool

    @property
    def mysql_pools(self) -> Mapping[str, MySQLPool]:
        return self._mysql

    @property
    def local_cache_pools(self) -> Mapping[str, LocalCache]:
        return self._local

    @property
    def redis_pools(self) -> Mapping[str, RedisPool]:
        return self._redis

    def close(self) -> None:
        """Close every pool (tests and management commands call this), after the
        runtime stopped what it runs for this engine (invalidation listeners)."""
        from fluxa_django.runtime.state import release

        release(self)
        for pools in (self._mysql, self._redis, self._clickhouse, self._kafka):
            for pool in pools.values():
                pool.close()
