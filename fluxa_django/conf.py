"""The ``FLUXA`` Django setting -> ``Registry``, and the process-wide ``Engine``.

Building the registry does no network I/O (system checks rely on that);
``get_engine()`` validates it once per process, lazily and thread-safely.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fluxa_django.config import config_from_yaml
from fluxa_django.engine import Engine
from fluxa_django.errors import ConfigError
from fluxa_django.registry import Registry
from fluxa_django.schema import Entity

if TYPE_CHECKING:
    from fluxa_django.migrate.clickhouse import ClickhouseTable

SETTING_KEYS = frozenset(
    {"POOLS", "ENTITIES", "GENERATED_PACKAGE", "ASYNC_FLUSH", "OPTIONS", "CLICKHOUSE_TABLES"}
)

_engine: Engine | None = None
_engine_lock = threading.Lock()


def fluxa_settings() -> Mapping[str, Any]:
    from django.conf import settings

    value = getattr(settings, "FLUXA", None)
    if value is None:
        raise ConfigError("settings.FLUXA is missing: add a FLUXA dict with at least POOLS")
    if not isinstance(value, Mapping):
        raise ConfigError("settings.FLUXA must be a dict")
    unknown = sorted(set(value) - SETTING_KEYS)
    if unknown:
        raise ConfigError(f"settings.FLUXA has an unknown key {unknown[0]!r}")
    return value


def generated_package_dir(dotted: str) -> Path:
    """The folder of ``GENERATED_PACKAGE`` (inside its parent package; may not exist yet)."""
    parent, _, leaf = dotted.rpartition(".")
    if not parent:
        return Path.cwd() / leaf
    spec = importlib.util.find_spec(parent)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"GENERATED_PACKAGE {dotted!r}: parent package {parent!r} cannot be found"
        )
    return Path(next(iter(spec.submodule_search_locations))) / leaf


def entity_classes(modules: Any) -> list[type[Entity]]:
    """Every ``Entity`` subclass defined in the named modules, in definition order."""
    if isinstance(modules, str) or not isinstance(modules, list | tuple):
        raise ConfigError("settings.FLUXA['ENTITIES'] must be a list of module paths")
    found: list[type[Entity]] = []
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Entity)
                and value is not Entity
                and value.__module__ == module.__name__
                and value not in found
            ):
                found.append(value)
    return found


def clickhouse_tables(modules: Any) -> list[ClickhouseTable]:
    """Every ``ClickhouseTable`` bound to a top-level name of the named modules."""
    from fluxa_django.migrate.clickhouse import ClickhouseTable

    if isinstance(modules, str) or not isinstance(modules, list | tuple):
        raise ConfigError("settings.FLUXA['CLICKHOUSE_TABLES'] must be a list of module paths")
    found: list[ClickhouseTable] = []
    for name in modules:
        module = importlib.import_module(name)
        found.extend(
            v for v in vars(module).values() if isinstance(v, ClickhouseTable) and v not in found
        )
    return found


def _alias_uri(pool: str, alias: str) -> str:
    from django.db import connections

    if alias not in connections.settings:
        raise ConfigError(f"pool {pool!r}: Django database alias {alias!r} is not in DATABASES")
    db = connections[alias].settings_dict
    if "mysql" not in str(db.get("ENGINE", "")):
        raise ConfigError(f"pool {pool!r}: Django database {alias!r} is not a MySQL database")
    user = urllib.parse.quote(str(db.get("USER") or "root"), safe="")
    password = urllib.parse.quote(str(db.get("PASSWORD") or ""), safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 3306
    return f"mysql://{user}:{password}@{host}:{port}/{db['NAME']}"


_DJANGO_REDIS = "django_redis.cache.RedisCache"


def _cache_redis(pool: str, spec: Any) -> str:
    """``{"cache": alias}``: the pool string of a django-redis ``CACHES`` entry.

    The pool shares the cache's server, database, password and timeouts (its own
    connections: django-redis's client is not thread-shared with fluxa's pool).
    """
    from django.conf import settings

    if (
        not isinstance(spec, Mapping)
        or set(spec) != {"cache"}
        or not isinstance(spec["cache"], str)
    ):
        raise ConfigError(
            f"pool {pool!r}: redis must be host:port:db or {{'cache': '<CACHES alias>'}}"
        )
    alias = spec["cache"]
    caches = getattr(settings, "CACHES", {})
    if alias not in caches:
        raise ConfigError(f"pool {pool!r}: Django cache alias {alias!r} is not in CACHES")
    cache = caches[alias]
    if cache.get("BACKEND") != _DJANGO_REDIS:
        raise ConfigError(
            f"pool {pool!r}: Django cache {alias!r} is not a django-redis cache "
            f"(BACKEND {_DJANGO_REDIS!r})"
        )
    location = cache.get("LOCATION")
    if isinstance(location, list | tuple):
        location = location[0] if location else None  # the primary (writes go there)
    parts = urllib.parse.urlsplit(str(location or ""))
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(
            f"pool {pool!r}: Django cache {alias!r} LOCATION must be redis://host:port/db"
        )
    db = (parts.path or "/0").lstrip("/") or "0"
    options = cache.get("OPTIONS", {})
    query: dict[str, str] = {}
    password = options.get("PASSWORD") or urllib.parse.unquote(parts.password or "")
    if parts.username:
        query["user"] = urllib.parse.unquote(parts.username)
    if password:
        query["password"] = str(password)
    for ours, theirs in (
        ("connect_timeout", "SOCKET_CONNECT_TIMEOUT"),
        ("read_timeout", "SOCKET_TIMEOUT"),
    ):
        if options.get(theirs):
            query[ours] = str(options[theirs])
    suffix = "?" + urllib.parse.urlencode(query) if query else ""
    return f"{parts.hostname}:{parts.port or 6379}:{db}{suffix}"


def registry_from_settings() -> Registry:
    """Build the ``Registry`` described by ``settings.FLUXA`` (no network I/O)."""
    conf = fluxa_settings()
    pools = conf.get("POOLS", {})
    if isinstance(pools, Mapping):
        pools = {
            code: {**spec, "redis": _cache_redis(code, spec["redis"])}
            if isinstance(spec, Mapping) and isinstance(spec.get("redis"), Mapping)
            else spec
            for code, spec in pools.items()
        }
    config, aliases = config_from_yaml(pools)
    for mysql in config.mysql_pools:
        if mysql.code in aliases:
            mysql.uri = _alias_uri(mysql.code, aliases[mysql.code])
    async_flush = conf.get("ASYNC_FLUSH")
    if async_flush is not None:
        from fluxa_django.config import ASYNC_SQL_GROUP, ConfigAsyncFlush

        if not isinstance(async_flush, Mapping) or "kafka_pool" not in async_flush:
            raise ConfigError("settings.FLUXA['ASYNC_FLUSH'] must be a dict with 'kafka_pool'")
        unknown = sorted(
            set(async_flush)
            - {"kafka_pool", "topic_partitions", "replication_factor", "consumer_group"}
        )
        if unknown:
            raise ConfigError(f"settings.FLUXA['ASYNC_FLUSH']: unknown key(s) {unknown}")
        config.async_flush = ConfigAsyncFlush(
            str(async_flush["kafka_pool"]),
            int(async_flush.get("topic_partitions", 1)),
            int(async_flush.get("replication_factor", -1)),
            str(async_flush.get("consumer_group", ASYNC_SQL_GROUP)),
        )
    registry = Registry()
    registry.init_by_config(config)
    for code, alias in aliases.items():
        registry.mysql_pools[code] = replace(registry.mysql_pools[code], django_alias=alias)
    registry.register_entity(*entity_classes(conf.get("ENTITIES", [])))
    for table in clickhouse_tables(conf.get("CLICKHOUSE_TABLES", [])):
        registry.register_clickhouse_table(table)
    options = conf.get("OPTIONS", {})
    if not isinstance(options, Mapping):
        raise ConfigError("settings.FLUXA['OPTIONS'] must be a dict")
    for key, value in options.items():
        registry.set_option(key, value)
    return registry


def get_engine() -> Engine:
    """The validated ``Engine`` built from settings (once per process)."""
    global _engine
    engine = _engine
    if engine is not None:
        return engine
    with _engine_lock:
        if _engine is None:
            # Pools fail alone: an unreachable pool is logged once and tried again at
            # each use, instead of failing every request that builds the engine.
            _engine = registry_from_settings().validate(allow_unavailable=True)
        return _engine


def reset_engine() -> None:
    """Close and forget the process engine (tests, settings changes)."""
    global _engine
    with _engine_lock:
        if _engine is not None:
            _engine.close()
        _engine = None
