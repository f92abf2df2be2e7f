"""Debezium change data capture: connector config, the Kafka Connect REST client, and
typed change events.

- ``connector_config`` builds the Debezium 2.x+ config of the connector ``fluxa_<pool>``
  that streams the tables of one MySQL pool's ``Meta.debezium`` entities (``fluxa_migrate``
  creates, updates and deletes it through ``ConnectClient``; see
  ``fluxa_django.migrate.debezium``);
- ``debezium_topic_name`` is the topic of one entity's table:
  ``fluxa_<pool>.<database>.<table>`` (generated providers have ``debezium_topic_name()``);
- ``parse_debezium_event`` turns one record of such a topic into a ``DebeziumEvent`` whose
  ``before``/``after`` hold the entity's Python values (``None`` for a tombstone), with or
  without converter schemas and in every ``decimal.handling.mode``;
- ``DebeziumConsumer`` reads a registered consumer group and yields those events.

Nothing here needs Django.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from fluxa_django.config import DECIMAL_HANDLING_MODES, DebeziumOptions
from fluxa_django.errors import ConfigError, FluxaError, PoolError
from fluxa_django.schema.model import ColumnSchema, EntitySchema, FieldKind

if TYPE_CHECKING:
    from fluxa_django.backends.kafka import KafkaGroupConsumer, KafkaRecord
    from fluxa_django.engine import Engine
    from fluxa_django.registry import Registry
    from fluxa_django.runtime.context import Context

__all__ = [
    "DEBEZIUM_CREATE",
    "DEBEZIUM_DELETE",
    "DEBEZIUM_READ",
    "DEBEZIUM_UPDATE",
    "ConnectClient",
    "DebeziumConsumer",
    "DebeziumEvent",
    "DebeziumEventError",
    "DebeziumOptions",
    "DebeziumSource",
    "connector_config",
    "connector_name",
    "debezium_topic_name",
    "decode_decimal",
    "parse_debezium_event",
    "parse_debezium_key",
    "server_id",
]

_LOG = logging.getLogger("fluxa_django.debezium")

DEBEZIUM_CREATE = "c"
DEBEZIUM_UPDATE = "u"
DEBEZIUM_DELETE = "d"
DEBEZIUM_READ = "r"  # a snapshot read
_OPS = (DEBEZIUM_CREATE, DEBEZIUM_UPDATE, DEBEZIUM_DELETE, DEBEZIUM_READ)

MYSQL_CONNECTOR = "io.debezium.connector.mysql.MySqlConnector"
MARIADB_CONNECTOR = "io.debezium.connector.mariadb.MariaDbConnector"
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
CONNECTOR_PREFIX = "fluxa_"
# Config keys whose values are never printed.
SECRET_KEYS = frozenset({"database.password"})
_EPOCH = datetime.datetime(1970, 1, 1)
_EPOCH_DAY = datetime.date(1970, 1, 1)


class DebeziumEventError(FluxaError, ValueError):
    """A record that is not a Debezium change event of the expected table."""


# -- names and config -----------------------------------------------------------------------


def connector_name(mysql_pool: str) -> str:
    """The connector of one MySQL pool: ``fluxa_<pool>`` (also its ``topic.prefix``)."""
    return f"{CONNECTOR_PREFIX}{mysql_pool}"


def server_id(mysql_pool: str) -> int:
    """``database.server.id``: FNV-1a 32 of the pool code, mod 100000, plus 1000 (as the Go
    original), so every pool's connector has its own stable replica id."""
    h = 0x811C9DC5
    for byte in mysql_pool.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h % 100000 + 1000


def _schema_of(source: Engine | Registry, entity: Any) -> EntitySchema:
    if isinstance(entity, EntitySchema):
        return entity
    name = entity if isinstance(entity, str) else getattr(entity, "entity_name", None)
    if name is None:
        name = entity.__name__
    from fluxa_django.engine import Engine

    if isinstance(source, Engine):
        return source.schema(name)
    for schema in source.build_schemas().values():
        if schema.name == name:
            return schema
    raise ConfigError(f"entity {name} is not registered")


def debezium_topic_name(source: Engine | Registry | Context, entity: Any) -> str:
    """The topic Debezium writes ``entity``'s changes to: ``fluxa_<pool>.<db>.<table>``.

    ``source`` is an engine, a context or a registry (to name the topics of a consumer
    group before ``validate()``); ``entity`` an entity class, its name, its provider or its
    schema. An entity without ``Meta.debezium`` is a ``ConfigError``.
    """
    from fluxa_django.engine import Engine
    from fluxa_django.registry import Registry

    registry_or_engine: Engine | Registry
    if isinstance(source, Registry):
        registry_or_engine = source
        registry = source
    else:
        registry_or_engine = source if isinstance(source, Engine) else source.engine
        registry = registry_or_engine.registry
    schema = _schema_of(registry_or_engine, entity)
    if schema.debezium is None:
        raise ConfigError(f"entity {schema.name} is not streamed by Debezium (Meta.debezium)")
    database = registry.mysql_pools[schema.mysql_pool].uri.database
    return f"{connector_name(schema.mysql_pool)}.{database}.{schema.table}"


def connector_class_for(version: str) -> str:
    """The MariaDB connector for a server whose ``VERSION()`` names MariaDB, else MySQL's."""
    return MARIADB_CONNECTOR if "mariadb" in version.lower() else MYSQL_CONNECTOR


def connector_config(
    registry: Registry,
    mysql_pool: str,
    kafka_pool: str,
    tables: Iterable[str],
    server_version: str,
    options: DebeziumOptions | None = None,
) -> dict[str, str]:
    """The Debezium 2.x+ config (every value a string) of the connector of ``mysql_pool``
    streaming ``tables`` to ``kafka_pool``. Holds the database password: never print it
    (``shown_config`` masks it)."""
    opts = options or registry.debezium_options.get(kafka_pool) or DebeziumOptions()
    uri = registry.mysql_pools[mysql_pool].uri
    kafka = registry.kafka_pools[kafka_pool]
    name = connector_name(mysql_pool)
    schemas = "true" if opts.schemas else "false"
    config = {
        "connector.class": opts.connector_class or connector_class_for(server_version),
        "tasks.max": "1",
        "database.hostname": opts.hostname or uri.host,
        "database.port": str(opts.port or uri.port),
        "database.user": opts.user or uri.user,
        "database.password": opts.password if opts.password is not None else uri.password,
        "database.server.id": str(server_id(mysql_pool)),
        "topic.prefix": name,
        # both are regular expressions for Debezium: names are matched literally
        "database.include.list": re.escape(uri.database),
        "table.include.list": ",".join(sorted(re.escape(f"{uri.database}.{t}") for t in tables)),
        "include.schema.changes": "false",
        "decimal.handling.mode": opts.decimal_handling_mode,
        "key.converter": JSON_CONVERTER,
        "key.converter.schemas.enable": schemas,
        "value.converter": JSON_CONVERTER,
        "value.converter.schemas.enable": schemas,
        "schema.history.internal.kafka.bootstrap.servers": ",".join(kafka.brokers),
        "schema.history.internal.kafka.topic": f"{name}_schema_history",
    }
    config.update({str(k): str(v) for k, v in opts.extra.items()})
    return config


def shown_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the secret values replaced by ``***`` (for plans and logs)."""
    return {k: ("***" if k in SECRET_KEYS or "password" in k else v) for k, v in config.items()}


# -- the Kafka Connect REST client ---------------------------------------------------------


def _split_url(url: str) -> tuple[str, str | None]:
    """The URL without credentials, and a Basic ``Authorization`` header when it had some."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url.rstrip("/"), None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    clean = urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/")
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return clean, f"Basic {token}"


class ConnectClient:
    """The Kafka Connect REST endpoints that manage connectors (JSON in, JSON out).

    A request answered 409 (the workers are rebalancing) is retried with a growing pause
    until ``conflict_timeout`` seconds have passed; any other error status raises
    ``PoolError`` with Connect's ``message``. The URL may carry ``user:password@`` (sent
    as Basic auth, never shown); ``secrets`` are masked in every message.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        conflict_timeout: float = 60.0,
        secrets: Iterable[str] = (),
        pool: str = "default",
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("the Kafka Connect url must be http(s)://")
        self.url, self._auth = _split_url(url)
        self.timeout = timeout
        self.conflict_timeout = conflict_timeout
        self._secrets = [s for s in secrets if s]
        self.pool = pool  # the Kafka pool whose Connect this is (named by PoolError)

    def __repr__(self) -> str:
        return f"<ConnectClient {self.url}>"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, decoded JSON or None)``; 404 is returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        deadline = time.monotonic() + self.conflict_timeout
        pause = 0.1
        while True:
            # the scheme is http(s), checked in __init__
            req = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
            req.add_header("Accept", "application/json")
            if data is not None:
                req.add_header("Content-Type", "application/json")
            if self._auth:
                req.add_header("Authorization", self._auth)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                    raw = resp.read()
                    return resp.status, json.loads(raw) if raw.strip() else None
            except urllib.error.HTTPError as exc:
                raw = exc.read()
                status = exc.code
                if status == 404:
                    return status, None
                if status == 409 and time.monotonic() + pause < deadline:
                    _LOG.info("kafka connect %s: %s %s -> 409, retrying", self.url, method, path)
                    time.sleep(pause)
                    pause = min(pause * 2, 2.0)
                    continue
                raise PoolError(
                    self._scrub(
                        f"kafka connect {self.url}: {method} {path} -> {status}: "
                        f"{_error_message(raw)}"
                    ),
                    pool=self.pool,
                ) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise PoolError(
                    self._scrub(f"kafka connect {self.url}: {method} {path} failed: {reason}"),
                    pool=self.pool,
                ) from None

    def connectors(self) -> list[str]:
        """``GET /connectors``: the names of every connector."""
        _, body = self.request("GET", "/connectors")
        return sorted(body or [])

    def config(self, name: str) -> dict[str, str] | None:
        """``GET /connectors/{name}/config`` (``None`` when there is no such connector)."""
        status, body = self.request("GET", f"/connectors/{_quote(name)}/config")
        return None if status == 404 else dict(body or {})

    def put_config(self, name: str, config: Mapping[str, str]) -> bool:
        """``PUT /connectors/{name}/config``: create (True) or update (False) the connector."""
        status, _ = self.request("PUT", f"/connectors/{_quote(name)}/config", dict(config))
        if status == 404:
            raise PoolError(
                f"kafka connect {self.url}: PUT /connectors/{name}/config -> 404", pool=self.pool
            )
        return status == 201

    def delete(self, name: str) -> bool:
        """``DELETE /connectors/{name}``; False when there was no such connector."""
        status, _ = self.request("DELETE", f"/connectors/{_quote(name)}")
        return status != 404


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _error_message(raw: bytes) -> str:
    """Connect's error body ``{"error_code": n, "message": "..."}``, else the text."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:500] or "(no body)"
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return text[:500]


# -- change events --------------------------------------------------------------------------


@dataclass(frozen=True)
class DebeziumSource:
    """The ``source`` block of an event: where in the binlog the change comes from."""

    connector: str = ""
    name: str = ""  # the topic prefix
    db: str = ""
    table: str = ""
    ts_ms: int = 0  # when the change was made in the database
    snapshot: str = "false"  # "true", "last", "false", ...
    server_id: int = 0
    gtid: str | None = None
    file: str = ""
    pos: int = 0
    row: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class DebeziumEvent:
    """One change of one row. ``before``/``after`` map column names to the entity's Python
    values (``None`` where the op has no such image: ``before`` of a create or read, ``after``
    of a delete); ``ts_ms`` is when Debezium processed it."""

    op: str  # "c", "u", "d" or "r"
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: DebeziumSource
    ts_ms: int
    entity: str | None = None  # the entity's name when parsed for one
    topic: str = ""
    partition: int = -1
    offset: int = -1

    @property
    def id(self) -> int | None:
        """The row's id (from ``after``, or ``before`` of a delete)."""
        row = self.after if self.after is not None else self.before
        value = None if row is None else row.get("id")
        return None if value is None else int(value)

    @property
    def timestamp(self) -> datetime.datetime:
        """``ts_ms`` as an aware UTC datetime."""
        return datetime.datetime.fromtimestamp(self.ts_ms / 1000, tz=datetime.UTC)


def _json(data: bytes | str | Mapping[str, Any] | None) -> Any:
    if data is None or isinstance(data, Mapping):
        return data
    if isinstance(data, bytes):
        if not data:
            return None
        data = data.decode("utf-8")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise DebeziumEventError(f"not JSON: {exc}") from None


def _unwrap(value: Any) -> tuple[Any, Mapping[str, Any] | None]:
    """``(payload, schema)`` of a converter message with schemas, else ``(value, None)``."""
    if isinstance(value, Mapping) and set(value) == {"schema", "payload"}:
        return value["payload"], value["schema"]
    return value, None


def parse_debezium_key(record: KafkaRecord | bytes | str | Mapping[str, Any]) -> int | None:
    """The ``id`` in a record's key (``{"id": 5}``, with or without schemas)."""
    data = record if isinstance(record, bytes | str | Mapping) else record.key
    key, _ = _unwrap(_json(data))
    if key is None:
        return None
    if not isinstance(key, Mapping) or "id" not in key:
        raise DebeziumEventError("the key has no id")
    return int(key["id"])


def parse_debezium_event(
    record: KafkaRecord | bytes | str | Mapping[str, Any] | None,
    schema: EntitySchema | None = None,
    *,
    decimal_handling_mode: str = "precise",
) -> DebeziumEvent | None:
    """The change event in ``record`` (a ``KafkaRecord`` or its value), ``None`` for a
    tombstone (a record without a value, sent after a delete).

    With ``schema`` (``engine.schema(...)``) ``before``/``after`` hold the entity's Python
    values keyed by column name: ``int``, ``bool``, ``float`` (decimals decoded in
    ``decimal_handling_mode``, the connector's ``decimal.handling.mode``: ``precise`` base64
    unscaled value, ``string`` or ``double``), ``str``, ``bytes``, ``date``, naive UTC
    ``datetime``, enum members, sets, reference ids (``None`` for no reference) and id lists.
    Without it they are the JSON payload's values as they came. Converter schemas
    (``schemas.enable``), when present, decide how each value is decoded.
    """
    if decimal_handling_mode not in DECIMAL_HANDLING_MODES:
        raise ConfigError(
            f"decimal_handling_mode must be one of {', '.join(DECIMAL_HANDLING_MODES)}"
        )
    topic, partition, offset = "", -1, -1
    if record is not None and not isinstance(record, bytes | str | Mapping):
        topic, partition, offset = record.topic, record.partition, record.offset
        record = record.value
    payload, envelope_schema = _unwrap(_json(record))
    if payload is None:
        return None
    if not isinstance(payload, Mapping) or "op" not in payload:
        raise DebeziumEventError(f"{topic or 'record'}: not a Debezium change event (no op)")
    op = payload["op"]
    if op not in _OPS:
        raise DebeziumEventError(f"{topic or 'record'}: unexpected op {op!r}")
    src = payload.get("source") or {}
    source = DebeziumSource(
        connector=str(src.get("connector", "")),
        name=str(src.get("name", "")),
        db=str(src.get("db", "")),
        table=str(src.get("table", "")),
        ts_ms=int(src.get("ts_ms") or 0),
        snapshot=str(src.get("snapshot", "false")).lower(),
        server_id=int(src.get("server_id") or 0),
        gtid=src.get("gtid"),
        file=str(src.get("file", "")),
        pos=int(src.get("pos") or 0),
        row=int(src.get("row") or 0),
        raw=dict(src),
    )
    if schema is not None and source.table and source.table != schema.table:
        raise DebeziumEventError(
            f"{topic or 'record'}: a change of table {source.table!r}, not {schema.table!r} "
            f"({schema.name})"
        )
    fields = _field_schemas(envelope_schema)
    images = []
    for side in ("before", "after"):
        row = payload.get(side)
        if row is None or schema is None:
            images.append(None if row is None else dict(row))
        else:
            images.append(_typed_row(schema, row, fields.get(side, {}), decimal_handling_mode))
    return DebeziumEvent(
        op=op,
        before=images[0],
        after=images[1],
        source=source,
        ts_ms=int(payload.get("ts_ms") or 0),
        entity=schema.name if schema is not None else None,
        topic=topic,
        partition=partition,
        offset=offset,
    )


def _field_schemas(schema: Mapping[str, Any] | None) -> dict[str, dict[str, Mapping[str, Any]]]:
    """``{"before": {column: field schema}, "after": {...}}`` of an envelope schema."""
    found: dict[str, dict[str, Mapping[str, Any]]] = {}
    for side in (schema or {}).get("fields") or ():
        if side.get("field") in ("before", "after"):
            found[side["field"]] = {f["field"]: f for f in side.get("fields") or ()}
    return found


def _typed_row(
    schema: EntitySchema,
    row: Mapping[str, Any],
    fields: Mapping[str, Mapping[str, Any]],
    mode: str,
) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for column in schema.columns:
        if column.name not in row:
            raise DebeziumEventError(f"{schema.name}: the event has no column {column.name!r}")
        value = row[column.name]
        try:
            typed[column.name] = _typed(column, value, fields.get(column.name), mode)
        except (ValueError, TypeError, KeyError, InvalidOperation, binascii.Error) as exc:
            raise DebeziumEventError(
                f"{schema.name}.{column.name}: cannot decode {value!r}: {exc}"
            ) from None
    return typed


def decode_decimal(value: Any, scale: int, mode: str = "precise") -> Decimal:
    """A DECIMAL column's value as Debezium wrote it, in ``decimal.handling.mode`` ``mode``:
    ``precise`` (the unscaled value as big-endian two's complement bytes, base64 in JSON, with
    ``scale`` from the column or the converter schema; a number when the JSON converter has
    ``decimal.format=NUMERIC``; ``{"scale", "value"}`` for a variable scale), ``string`` or
    ``double``."""
    if isinstance(value, Mapping):  # io.debezium.data.VariableScaleDecimal
        return decode_decimal(value["value"], int(value["scale"]), "precise")
    if isinstance(value, bool):
        raise TypeError("a boolean is not a decimal")
    if isinstance(value, int | float):
        return Decimal(str(value))
    if mode == "precise":
        raw = base64.b64decode(str(value), validate=True)
        return Decimal(int.from_bytes(raw, "big", signed=True)).scaleb(-scale)
    return Decimal(str(value))


def _datetime(value: Any, logical: str | None) -> datetime.datetime:
    if isinstance(value, str):  # ZonedTimestamp (UTC) or a string representation
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
        return moment
    number = int(value)
    if logical == "io.debezium.time.MicroTimestamp":
        return _EPOCH + datetime.timedelta(microseconds=number)
    if logical == "io.debezium.time.NanoTimestamp":
        return _EPOCH + datetime.timedelta(microseconds=number // 1000)
    # io.debezium.time.Timestamp, org.apache.kafka.connect.data.Timestamp and, without a
    # schema, a DATETIME(0..3) column in the default adaptive time precision mode
    return _EPOCH + datetime.timedelta(milliseconds=number)


def _typed(
    column: ColumnSchema, value: Any, field_schema: Mapping[str, Any] | None, mode: str
) -> Any:
    kind = column.kind
    if kind is FieldKind.REFERENCE:
        return int(value) or None if value is not None else None
    if value is None:
        return None
    logical = field_schema.get("name") if field_schema else None
    if kind in (FieldKind.ID, FieldKind.INT):
        return int(value)
    if kind in (FieldKind.BOOL, FieldKind.FAKE_DELETE):
        return bool(value)
    if kind is FieldKind.FLOAT:
        if column.decimal is None:
            return float(value)
        scale = column.decimal[1]
        if field_schema is not None:
            if logical == "org.apache.kafka.connect.data.Decimal":
                params = field_schema.get("parameters") or {}
                scale = int(params.get("scale", scale))
                mode = "precise"
            elif field_schema.get("type") == "string":
                mode = "string"
            elif field_schema.get("type") in ("double", "float"):
                mode = "double"
        return float(decode_decimal(value, scale, mode))
    if kind is FieldKind.STR:
        return str(value)
    if kind is FieldKind.BYTES:  # binary.handling.mode=bytes: base64 in JSON
        return base64.b64decode(value) if isinstance(value, str) else bytes(value)
    if kind is FieldKind.DATE:
        if isinstance(value, str):
            return datetime.date.fromisoformat(value[:10])
        return _EPOCH_DAY + datetime.timedelta(days=int(value))
    if kind is FieldKind.DATETIME:
        return _datetime(value, logical)
    if kind is FieldKind.ENUM:
        return column.enum_class(value) if column.enum_class else str(value)
    if kind is FieldKind.SET:
        members = [v for v in str(value).split(",") if v]
        if column.enum_class is not None:
            return {column.enum_class(v) for v in members}
        return set(members)
    if kind is FieldKind.REFERENCES:
        ids = json.loads(value) if isinstance(value, str) else value
        return [int(i) for i in ids or ()]
    raise TypeError(f"unsupported field kind {kind.value}")


# -- consuming ------------------------------------------------------------------------------


class DebeziumConsumer:
    """A consumer of the registered Kafka consumer group ``group`` (on the Kafka pool of the
    entities' ``Meta.debezium``) whose topics are the Debezium topics of ``entities``:
    yields their ``DebeziumEvent``s, typed for each entity; tombstones are skipped (their
    offsets still count as read). A record of another topic is a ``DebeziumEventError``.

    Commit what you handled with ``commit()`` (everything polled so far) or
    ``commit(events)``; close it (``close()`` or ``with``).
    """

    def __init__(
        self,
        engine: Engine,
        group: str,
        entities: Sequence[Any],
        *,
        decimal_handling_mode: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if not entities:
            raise ConfigError("DebeziumConsumer needs at least one entity")
        schemas = [_schema_of(engine, e) for e in entities]
        pools = {s.debezium for s in schemas}
        if None in pools or len(pools) != 1:
            raise ConfigError(
                "DebeziumConsumer: every entity needs Meta.debezium on one Kafka pool"
            )
        pool = next(iter(pools))
        assert pool is not None
        self.kafka_pool = pool
        self.topics = {debezium_topic_name(engine, s): s for s in schemas}
        options = engine.registry.debezium_options.get(pool) or DebeziumOptions()
        self.decimal_handling_mode = decimal_handling_mode or options.decimal_handling_mode
        self.consumer: KafkaGroupConsumer = engine.kafka(pool).consumer_group(group, config=config)
        missing = sorted(set(self.topics) - set(self.consumer.topics))
        if missing:
            self.consumer.close()
            raise ConfigError(
                f"kafka consumer group {group!r} does not read {', '.join(missing)} "
                "(register it with .topics(debezium_topic_name(registry, Entity)))"
            )

    def __enter__(self) -> DebeziumConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def parse(self, record: KafkaRecord) -> DebeziumEvent | None:
        schema = self.topics.get(record.topic)
        if schema is None:
            raise DebeziumEventError(f"topic {record.topic!r} is not one of {sorted(self.topics)}")
        return parse_debezium_event(
            record, schema, decimal_handling_mode=self.decimal_handling_mode
        )

    def poll(self, timeout: float = 1.0, max_records: int = 500) -> list[DebeziumEvent]:
        """The next events (tombstones left out); ``[]`` when none came within ``timeout``."""
        events = []
        for record in self.consumer.poll(timeout, max_records):
            event = self.parse(record)
            if event is not None:
                events.append(event)
        return events

    def events(
        self, idle_timeout: float | None = None, poll_timeout: float = 1.0
    ) -> Iterator[DebeziumEvent]:
        """Events one by one until ``stop()`` or ``idle_timeout`` seconds without records."""
        for record in self.consumer.records(idle_timeout, poll_timeout):
            event = self.parse(record)
            if event is not None:
                yield event

    def __iter__(self) -> Iterator[DebeziumEvent]:
        return self.events()

    def commit(self, events: Iterable[DebeziumEvent] | None = None) -> dict[tuple[str, int], int]:
        """Commit everything polled (``None``) or up to and including ``events``."""
        return self.consumer.commit(events)

    def stop(self) -> None:
        self.consumer.stop()

    def close(self) -> None:
        self.consumer.close()
