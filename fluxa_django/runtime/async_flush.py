"""``ctx.flush_async(update_cache)``: a flush published to Kafka, applied by a consumer.

The request side does what a flush does before its SQL — validate and plan every
change (``flush.plan``) — then publishes, per (MySQL pool, table), **one** record on
``_fluxa_async_sql`` keyed by the table name (so one table's records stay in order
on one partition) holding the statements the synchronous flush would run (bound
form: ``%s`` placeholders and their values), the flush id, and what the consumer
needs after applying them: the cache keys to invalidate, the ids whose Redis Search
documents change and the hook calls. The produce is idempotent (librdkafka
``enable.idempotence``) and waited for; when it fails, ``PoolError`` is raised and the
entities stay dirty, as after a failed flush.

With ``update_cache=True`` the caches see the write at once: the new rows are
written into the Redis row cache and the context cache, local copies are evicted
everywhere, search documents are written — reads through ``get_by_id`` see the
change before MySQL has it (read your writes). With ``False`` nothing changes
until the consumer (``manage.py fluxa_consume_async``) applies the record.

Record values are msgpack maps (the row-cache codec's types: Decimal, date and
datetime as extension types), version ``v`` = 3: ``insert`` is the table's
``INSERT INTO ... VALUES `` and ``row`` its ``(%s,...)``, run for the new rows,
which travel as ``columns`` (``_columns``: a column of datetimes, dates or decimals
as their text, marked; version 2 had ``inserted`` rows, still read) — the consumer
formats them as one multi-row statement, as ``flush`` does, and joins the inserts
of consecutive records of one table; ``sql`` holds the updates and the delete in
bound form. The namespace ``ns`` is read before anything else,
so a consumer skips another application's records whatever their version.
"""

from __future__ import annotations

import datetime
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import msgpack

from fluxa_django.config import ASYNC_SQL_TOPIC
from fluxa_django.errors import ConfigError, PoolError
from fluxa_django.runtime import codec
from fluxa_django.runtime.flush import (
    TablePlan,
    _cache_keys,
    _claim,
    _search_work,
    delete_statement,
    insert_statements,
    plan,
    update_statements,
)
from fluxa_django.runtime.flushkeys import FlushKeys
from fluxa_django.runtime.namespace import database_identity, key_prefix
from fluxa_django.runtime.tiers import REDIS_TTL

if TYPE_CHECKING:
    from fluxa_django.backends.kafka import KafkaPool
    from fluxa_django.engine import Engine
    from fluxa_django.runtime.context import Context

RECORD_VERSION = 3
READABLE_VERSIONS = (2, 3)  # a consumer applies what the previous release published


Row = list[Any]
Stored = Sequence[Any]  # a row as the entity holds it (list or tuple)


@dataclass(frozen=True)
class AsyncRecord:
    """One published record: the changes of one flush to one table.

    Besides the statements it carries the rows (new, and loaded for updates and
    deletes) so that the consumer can invalidate the same cache keys as a
    synchronous flush and give the after-hooks the same arguments. The new rows are
    the insert's values (``insert_sql`` + ``insert_row_sql`` per row), carried once.
    """

    flush_id: str
    namespace: str  # whose data: see ``namespace_of`` (consumers skip other namespaces)
    pool: str
    table: str
    entity: str
    insert_sql: str  # "INSERT INTO `t` (`id`,...) VALUES " (empty: no insert)
    insert_row_sql: str  # "(%s,...)"
    statements: list[tuple[str, list[Any]]]  # updates, then the delete (bound form)
    update_cache: bool
    inserted: list[Row]  # new rows
    updated: list[tuple[Stored, Stored | None, list[int], bool]]  # row, loaded, columns, soft
    deleted: list[tuple[Stored, Stored | None]]  # row, loaded row

    @property
    def key(self) -> bytes:
        """The table name: one table's records on one partition, in order."""
        return self.table.encode()

    def ids(self) -> list[int]:
        return [
            *(r[0] for r in self.inserted),
            *(u[0][0] for u in self.updated),
            *(d[0][0] for d in self.deleted),
        ]

    def all_statements(self) -> list[tuple[str, list[Any]]]:
        """Every statement in the bound form, in the order they run (the multi-row INSERTs
        as a synchronous flush would chunk them, then ``statements``)."""
        inserts = insert_statements(self.insert_sql, self.insert_row_sql, self.inserted)
        return [*inserts, *self.statements]

    def encode(self) -> bytes:
        body = {
            "ns": self.namespace,
            "v": RECORD_VERSION,
            "flush": self.flush_id,
            "pool": self.pool,
            "table": self.table,
            "entity": self.entity,
            "insert": self.insert_sql,
            "row": self.insert_row_sql,
            "columns": _columns(self.inserted),
            "sql": self.statements,
            "cache": self.update_cache,
            "updated": self.updated,
            "deleted": self.deleted,
        }
        data: bytes = msgpack.packb(body, default=_default, use_bin_type=True)
        return data

    @classmethod
    def decode(cls, data: bytes) -> AsyncRecord:
        """The record of ``data``; ``ValueError`` when it is not one (a poison record, or
        a record of another version). ``record_namespace`` reads only its namespace."""
        body = _body(data)
        try:
            version = body.get("v")
            if version not in READABLE_VERSIONS:
                raise ValueError(
                    f"not a version {RECORD_VERSION} async flush record (v={version!r})"
                )
            return cls(
                flush_id=str(body["flush"]),
                namespace=str(body["ns"]),
                pool=str(body["pool"]),
                table=str(body["table"]),
                entity=str(body["entity"]),
                insert_sql=str(body["insert"]),
                insert_row_sql=str(body["row"]),
                statements=[(str(sql), list(args)) for sql, args in body["sql"]],
                update_cache=bool(body["cache"]),
                inserted=(
                    [list(r) for r in body["inserted"]] if version == 2 else _rows(body["columns"])
                ),
                updated=[
                    (list(r), None if o is None else list(o), [int(c) for c in cs], bool(s))
                    for r, o, cs, s in body["updated"]
                ],
                deleted=[(list(r), None if o is None else list(o)) for r, o in body["deleted"]],
            )
        except Exception as exc:  # a missing or mistyped part, whatever a corrupt value raises
            raise ValueError(f"undecodable async flush record: {_short(exc)}") from exc


def _body(data: bytes) -> dict[Any, Any]:
    try:
        body = msgpack.unpackb(data, ext_hook=codec._ext, raw=False, strict_map_key=False)
    except Exception as exc:  # whatever a corrupt value makes msgpack raise
        raise ValueError(f"undecodable async flush record: {_short(exc)}") from exc
    if not isinstance(body, dict):
        raise ValueError("undecodable async flush record: not a map")
    return body


def _short(exc: BaseException) -> str:
    """An exception as text of at most 200 characters (msgpack's ``ExtraData`` shows the
    whole value it did not read)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."


def record_namespace(data: bytes) -> str | None:
    """The namespace of a record (any version), read without decoding the rest; ``None``
    when ``data`` is not a map with a string ``ns`` first. Records put ``ns`` first, so
    this reads a few bytes of any record, however large."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(data) or 1)
    unpacker.feed(data)
    try:
        if unpacker.read_map_header() < 1:
            return None
        key = unpacker.unpack()
        if key != "ns":  # a v1 record (its ``ns`` later): decode it whole
            body = _body(data)
            found = body.get("ns")
            return found if isinstance(found, str) else None
        value = unpacker.unpack()
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _default(value: Any) -> Any:
    """msgpack's fallback for the values of a record: the row-cache codec's extension
    types, and a set (a ``set[...]`` value before its conversion) as its sorted list."""
    if isinstance(value, set | frozenset):
        return sorted(value)
    return codec._default(value)


# Inserted rows travel as columns: a column holding only datetimes, dates or decimals
# (and NULLs) is written as their text in one C-level pass and marked with its extension
# code, instead of one ``_default`` call per value (which was most of the encoding).
_PLAIN = frozenset({int, str, float, bool, bytes, list, tuple, dict, type(None)})  # msgpack's own
_NATIVE = (int, str, float, bytes, list, tuple, dict, type(None))  # subclasses too (IntEnum...)
_TO_TEXT: dict[type, tuple[int, Callable[[Any], str]]] = {
    datetime.datetime: (codec._EXT_DATETIME, datetime.datetime.isoformat),
    datetime.date: (codec._EXT_DATE, datetime.date.isoformat),
    Decimal: (codec._EXT_DECIMAL, str),
}
_FROM_TEXT: dict[int, Callable[[str], Any]] = {
    codec._EXT_DATETIME: datetime.datetime.fromisoformat,
    codec._EXT_DATE: datetime.date.fromisoformat,
    codec._EXT_DECIMAL: Decimal,
}


def _columns(rows: Sequence[Stored]) -> list[Any]:
    """``[columns, {position: extension code}]`` of ``rows`` (``[]`` without rows)."""
    if not rows:
        return []
    columns: list[Any] = list(zip(*rows, strict=True))
    marks: dict[int, int] = {}
    for position, column in enumerate(columns):
        kinds = set(map(type, column))
        if kinds <= _PLAIN:
            continue
        kinds.discard(type(None))
        found = _TO_TEXT.get(kinds.pop()) if len(kinds) == 1 else None
        if found is None:  # anything else, value by value as in the rows of updates
            columns[position] = [v if isinstance(v, _NATIVE) else _default(v) for v in column]
            continue
        code, to_text = found
        marks[position] = code
        if None in column:
            columns[position] = [None if v is None else to_text(v) for v in column]
        else:
            columns[position] = list(map(to_text, column))
    return [columns, marks]


def _rows(data: Any) -> list[Row]:
    """The rows of ``_columns``' output (``ValueError``/``TypeError`` when it is not)."""
    if not data:
        return []
    columns, marks = data
    columns = list(columns)
    for position, code in marks.items():
        from_text = _FROM_TEXT[code]
        column = columns[position]
        if None in column:
            columns[position] = [None if v is None else from_text(v) for v in column]
        else:
            columns[position] = list(map(from_text, column))
    return [list(row) for row in zip(*columns, strict=True)]


def records_of(ctx: Context, update_cache: bool) -> tuple[list[AsyncRecord], dict[str, Any]]:
    """Plan the context's changes (raises before anything is published on bad input) and
    build one record per (pool, table) with something to write (a table whose entities
    all planned to nothing, such as a repeated soft delete, gets none); also returns the
    plan."""
    pools = plan(ctx)
    flush_id = uuid.uuid4().hex
    records: list[AsyncRecord] = []
    for pool_code in sorted(pools):
        namespace = namespace_of(ctx.engine, pool_code)
        for name in sorted(pools[pool_code]):
            table = pools[pool_code][name]
            if table.inserts or table.updates or table.deletes:
                records.append(_record(flush_id, namespace, pool_code, table, update_cache))
    return records, pools


def namespace_of(engine: Engine, pool: str) -> str:
    """Whose data a record changes: the MySQL pool's data identity (a random token kept
    in the database, ``runtime/namespace.py``), its database name and the app name. Two
    applications (or test runs) sharing a broker never apply each other's records."""
    mysql = engine.mysql(pool)
    app_name = str(engine.option("app_name") or "")
    return key_prefix(database_identity(mysql), mysql.database, "", app_name)[4:-2]


def _record(
    flush_id: str, namespace: str, pool: str, table: TablePlan, update_cache: bool
) -> AsyncRecord:
    provider = table.provider
    statements = list(update_statements(provider, table.updates))
    if table.deletes:
        statements.append(delete_statement(provider, [e._row[0] for e in table.deletes]))
    return AsyncRecord(
        flush_id=flush_id,
        namespace=namespace,
        pool=pool,
        table=provider.table,
        entity=provider.entity_name,
        insert_sql=provider.insert_sql if table.inserts else "",
        insert_row_sql=provider.insert_row_sql if table.inserts else "",
        statements=statements,
        update_cache=update_cache,
        # the planned rows themselves (msgpack writes lists and tuples alike): encoded
        # before anything else happens, so no copy is needed
        inserted=[row for _, row in table.inserts],
        updated=[
            (row, entity._orig, changed, soft) for entity, row, changed, soft in table.updates
        ],
        deleted=[(e._row, e._orig) for e in table.deletes],
    )


def kafka_pool_code(ctx: Context) -> str:
    found = ctx.engine.registry.async_flush
    if found is None:
        raise ConfigError(
            "flush_async needs the async flush to be registered: FLUXA['ASYNC_FLUSH'] = "
            "{'kafka_pool': '<pool>'} (or Registry.register_async_flush)"
        )
    return found[0]


def flush_async(ctx: Context, update_cache: bool) -> None:
    """See the module docstring. Raises before publishing anything on bad input; raises
    ``PoolError`` naming the tables whose record was not acknowledged (their entities
    stay dirty; the others are done)."""
    if not ctx._tracked:
        return
    records, pools = records_of(ctx, update_cache)
    if not records:  # every change was set back: nothing to publish
        ctx._tracked.clear()
        return
    kafka = ctx.engine.kafka(kafka_pool_code(ctx))
    # Encoded before any side effect: a value msgpack cannot write raises here, with
    # nothing marked or published.
    payloads = [record.encode() for record in records]
    marked: list[FlushKeys] = []
    if update_cache:
        try:
            for tables in pools.values():
                for flush_keys in _cache_keys(ctx, tables):
                    flush_keys.mark()
                    marked.append(flush_keys)
        except BaseException:
            for flush_keys in marked:
                flush_keys.release(committed=False)
            raise
    try:
        failed = _produce(ctx, kafka, records, payloads)
    except BaseException:
        for flush_keys in marked:  # nothing is known to be published: drop the markers
            flush_keys.release(committed=False)
        raise
    rows: dict[str, bytes] = {}
    for pool_code, tables in pools.items():
        for table in tables.values():
            if failed and (pool_code, table.provider.table) in failed:
                continue
            if update_cache:
                rows.update(_cached_rows(ctx, table))
                for index, items in _claim(_search_work(ctx, {table.provider.table: table})):
                    index.after_commit(items)
            _settle(ctx, table, untrack=bool(failed), visible=update_cache)
    for flush_keys in marked:
        flush_keys.release(committed=True, rows=rows, ttl=REDIS_TTL)
    if failed:
        names = ", ".join(f"{table} (pool {pool!r})" for pool, table in sorted(failed))
        others = ", the other tables were published" if len(failed) < len(records) else ""
        raise PoolError(
            f"flush_async: the records of {names} were not published ({failed_reason(failed)}); "
            f"their entities stay dirty{others}",
            pool=kafka.code,
        )
    ctx._tracked.clear()


def failed_reason(failed: dict[tuple[str, str], PoolError]) -> str:
    return str(next(iter(failed.values())))


def _produce(
    ctx: Context, kafka: KafkaPool, records: list[AsyncRecord], payloads: list[bytes]
) -> dict[tuple[str, str], PoolError]:
    """Produce every record, wait for every acknowledgement; the failed ones by table.

    The wait is on the acknowledgements themselves (the pool's delivery thread calls
    back), not ``KafkaPool.flush()``: librdkafka's flush polls in 10 ms steps while
    another thread serves the callbacks, which made every call cost 10 ms."""
    failed: dict[tuple[str, str], PoolError] = {}
    pending = set(range(len(records)))
    lock = threading.Lock()
    all_done = threading.Event()

    def delivered(number: int, error: PoolError | None) -> None:
        with lock:
            if error is not None:
                record = records[number]
                failed[(record.pool, record.table)] = error
            pending.discard(number)
            if not pending:
                all_done.set()

    for number, record in enumerate(records):
        try:
            kafka.produce(
                ASYNC_SQL_TOPIC,
                payloads[number],
                record.key,
                on_delivery=partial(_report, delivered, number),
                ctx=ctx,
            )
        except PoolError as exc:
            delivered(number, exc)
    if not all_done.wait(kafka.options.delivery_timeout + 1.0):
        with lock:
            for number in pending:
                record = records[number]
                failed[(record.pool, record.table)] = PoolError(
                    f"kafka pool {kafka.code!r}: not acknowledged in time", pool=kafka.code
                )
    return failed


def _report(
    delivered: Callable[[int, PoolError | None], None],
    number: int,
    _stored: object,
    error: PoolError | None,
) -> None:
    delivered(number, error)


def _cached_rows(ctx: Context, table: TablePlan) -> dict[str, bytes]:
    """The Redis row-cache entries of a published table's changed rows."""
    provider = table.provider
    tiers = provider._binding(ctx).tiers
    if tiers is None or not tiers.row_cache:
        return {}
    stamp = tiers.stamp
    found = {tiers.key(row[0]): codec.encode_row(stamp, row) for _, row in table.inserts}
    for _, row, _, _ in table.updates:
        found[tiers.key(row[0])] = codec.encode_row(stamp, row)
    for entity in table.deletes:
        found[tiers.key(entity._row[0])] = codec.NOT_FOUND
    return found


def _settle(ctx: Context, table: TablePlan, untrack: bool, visible: bool) -> None:
    """A published table's entities are written as far as this context is concerned:
    clean, and in the context cache (hooks run when the consumer applies them).
    ``untrack``: another table failed, so the context keeps tracking only its entities
    (otherwise the caller clears the tracked set at once). Not ``visible``
    (``update_cache=False``): the context cache forgets their ids instead, so that this
    context, too, reads them as they are until the consumer applies the record."""
    cache = ctx._kind_cache(table.provider.kind)
    if not visible and cache is not None:
        for entity in table.entities():
            cache.pop(entity._row[0], None)
        cache = None
    for entity, _ in table.inserts:
        entity._inserted()
        if cache is not None:
            cache[entity._row[0]] = entity
    for entity, row, _, _ in table.updates:
        entity._updated(row)
        if cache is not None:
            cache[entity._row[0]] = entity
    for entity in table.deletes:
        entity._deleted()
        if cache is not None:
            cache[entity._row[0]] = None
    if untrack:
        for entity in table.entities():
            ctx._untrack(entity)
