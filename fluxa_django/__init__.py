"""fluxa_django: FluxaORM for Python — a code-generation-first ORM for MySQL + Redis.

The public API is what this module exports (``__all__``); everything else is
internal and may change.
"""

from __future__ import annotations

from fluxa_django.codegen import generate
from fluxa_django.conf import get_engine
from fluxa_django.config import (
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
    KafkaConsumerGroup,
    KafkaPoolOptions,
    KafkaTopic,
    MySQLOptions,
    RedisOptions,
)
from fluxa_django.engine import Engine
from fluxa_django.errors import (
    ConfigError,
    DefinitionError,
    DefinitionErrors,
    EntityNotFound,
    FluxaError,
    HookError,
    IntegrityError,
    OperationalError,
    PoolError,
)
from fluxa_django.inttypes import int8, int16, int32, int64, uint8, uint16, uint32, uint64
from fluxa_django.registry import Registry
from fluxa_django.runtime.context import Context, current_context
from fluxa_django.runtime.query import Pager, Query, Where
from fluxa_django.runtime.search import RedisSearchQuery
from fluxa_django.schema import Entity, EntitySchema, Reference, References, field

__all__ = [
    "DEFAULT_POOL_CODE",
    "AsyncFlushOptions",
    "ClickhouseOptions",
    "Config",
    "ConfigAsyncFlush",
    "ConfigClickhouse",
    "ConfigError",
    "ConfigKafka",
    "ConfigKafkaConsumerGroup",
    "ConfigKafkaTopic",
    "ConfigLocalCache",
    "ConfigMysql",
    "ConfigRedis",
    "ConfigRedisSentinel",
    "Context",
    "DefinitionError",
    "DefinitionErrors",
    "Engine",
    "Entity",
    "EntityNotFound",
    "EntitySchema",
    "FluxaError",
    "HookError",
    "IntegrityError",
    "KafkaConsumerGroup",
    "KafkaPoolOptions",
    "KafkaTopic",
    "MySQLOptions",
    "OperationalError",
    "Pager",
    "PoolError",
    "Query",
    "RedisOptions",
    "RedisSearchQuery",
    "Reference",
    "References",
    "Registry",
    "Where",
    "current_context",
    "field",
    "generate",
    "get_engine",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
]
