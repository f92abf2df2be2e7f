"""The consumer of ``_fluxa_async_sql`` (``manage.py fluxa_consume_async``).

Exactly-once effect on MySQL without broker transactions: every batch of records is
applied in **one MySQL transaction that also records what it applied** — the next
offset of each (topic, partition) in ``_fluxa_async_applied`` of that MySQL pool.
A record whose offset is below the recorded one was applied already and is
skipped, so a consumer killed at any point (before the commit: nothing happened;
after it: the offsets say so) and replayed from the broker's older committed
offsets neither loses nor repeats a write. Kafka offsets are committed after the
MySQL commit, only to spare replays.

After the commit, as after a synchronous flush: the cache keys of the changed rows
are released (marked before the SQL, so no reader fills an old row meanwhile),
search documents are made equal to MySQL, and the after-hooks run. Hook calls are
written to ``_fluxa_async_hooks`` in the same transaction and deleted once run;
the consumer that is given a partition (at start, or when a killed consumer's
partitions move to it) first runs that partition's pending calls. So every hook
runs once (a kill in the moment between a hook's return and its delete repeats
that one call).

Per-table order: records are keyed ``<pool>:<table>``, so one table's records are
on one partition, in flush order. Transient MySQL errors (lost connection, lock
wait timeout, deadlock) are retried with backoff, nothing committed; a record that
fails for good (a constraint its data breaks, a table that is gone) is sent to
``_fluxa_async_sql_failed`` with the error and the rest continue. Records of
another namespace (another application or database sharing the broker) are
skipped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack
import MySQLdb

from fluxa_django.backends.mysql import DriverError, database_error
from fluxa_django.config import ASYNC_SQL_FAILED_TOPIC
from fluxa_django.errors import FluxaError, HookError, IntegrityError, OperationalError
from fluxa_django.runtime import codec
from fluxa_django.runtime import mysql as sql_runner
from fluxa_django.runtime.async_flush import AsyncRecord, kafka_pool_code, namespace_of
from fluxa_django.runtime.flushkeys import FlushKeys, collect_keys

if TYPE_CHECKING:
    from fluxa_django.backends.kafka import KafkaGroupConsumer, KafkaRecord
    from fluxa_django.engine import Engine
    from fluxa_django.runtime.context import Context
    from fluxa_django.runtime.provider import ProviderBase

log = logging.getLogger("fluxa_django.async")

APPLIED = "_fluxa_async_applied"
HOOKS = "_fluxa_async_hooks"
CREATE_APPLIED = (
    f"CREATE TABLE IF NOT EXISTS `{APPLIED}` (`topic` varchar(190) NOT NULL, "
    "`partition_id` int NOT NULL, `next_offset` bigint NOT NULL, "
    "PRIMARY KEY (`topic`, `partition_id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)
CREATE_HOOKS = (
    f"CREATE TABLE IF NOT EXISTS `{HOOKS}` (`id` bigint unsigned NOT NULL AUTO_INCREMENT, "
    "`topic` varchar(190) NOT NULL, `partition_id` int NOT NULL, "
    "`entity` varchar(190) NOT NULL, `kind` char(1) NOT NULL, "
    "`entity_id` bigint unsigned NOT NULL, `data` mediumblob NULL, PRIMARY KEY (`id`), "
    "INDEX `Partition` (`topic`, `partition_id`, `id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)
TRANSIENT = {1205, 1213, 2002, 2003, 2006, 2013, 2055, 1040, 1053}  # retried, not dead-lettered
BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass
class Stats:
    """What a run did (printed by the command)."""

    applied: int = 0  # records applied
    rows: int = 0  # statements' affected rows
    skipped: int = 0  # already applied (replays)
    foreign: int = 0  # another namespace's records
    failed: int = 0  # sent to the dead-letter topic
    undecodable: int = 0  # of those: not a record of this version (any application's)
    retries: int = 0  # transient errors retried
    lag: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass
class _Item:
    message: KafkaRecord
    record: AsyncRecord


class AsyncConsumer:
    """Applies the async flush records of one engine (see the module docstring).

    ``providers`` maps entity names to their generated provider singletons (the
    command imports the generated package); ``config`` adds librdkafka settings
    to the consumer group (``session.timeout.ms`` ...).
    """

    def __init__(
        self,
        engine: Engine,
        providers: Mapping[str, ProviderBase[Any]],
        *,
        batch: int = 500,
        config: Mapping[str, Any] | None = None,
        progress: Callable[[Stats], None] | None = None,
    ) -> None:
        self.engine = engine
        self.providers = dict(providers)
        self.batch = batch
        self.config = dict(config or {})
        self.progress = progress
        self.kafka = engine.kafka(kafka_pool_code(engine.new_context()))
        self.namespaces = {namespace_of(engine, code): code for code in engine.mysql_pools}
        self.stats = Stats()
        self._stop = threading.Event()
        self._applied: dict[tuple[str, str, int], int] = {}  # (pool, topic, partition) -> next
        self._consumer: KafkaGroupConsumer | None = None
        self._joined = False
        self._idle_since = 0.0
        for code in engine.mysql_pools:
            engine.mysql(code).exec(CREATE_APPLIED)
            engine.mysql(code).exec(CREATE_HOOKS)

    def stop(self) -> None:
        """Finish the batch being applied, then return from ``run`` (signal-safe)."""
        self._stop.set()
        consumer = self._consumer
        if consumer is not None:
            consumer.stop()

    def run(self, idle_timeout: float | None = None, max_records: int | None = None) -> Stats:
        """Consume until ``stop()``, until no record came for ``idle_timeout`` seconds, or
        until ``max_records`` records were handled."""
        found = self.engine.registry.async_flush
        assert found is not None  # kafka_pool_code() checked it
        consumer = self.kafka.consumer_group(
            found[1].consumer_group,
            on_assign=self._assigned,
            on_revoke=self._revoked,
            config=self.config,
        )
        self._consumer = consumer
        self._idle_since = time.monotonic()
        handled = 0
        try:
            while not self._stop.is_set():
                messages = consumer.poll(timeout=0.5, max_records=self.batch)
                if not messages:
                    idle = time.monotonic() - self._idle_since
                    if idle_timeout is not None and self._joined and idle > idle_timeout:
                        break
                    continue
                self._idle_since = time.monotonic()
                self._handle(messages)
                handled += len(messages)
                try:
                    consumer.commit()
                except FluxaError as exc:  # MySQL holds the truth: a replay skips them
                    log.warning("fluxa: async consumer: committing offsets failed: %s", exc)
                if self.progress is not None:
                    with contextlib.suppress(FluxaError):
                        self.stats.lag = dict(consumer.lag())
                    self.progress(self.stats)
                if max_records is not None and handled >= max_records:
                    break
        finally:
            self._consumer = None
            consumer.close()
        return self.stats

    def _assigned(self, partitions: list[tuple[str, int]]) -> None:
        self._joined = True  # the idle timeout counts from the group's first assignment
        self._idle_since = time.monotonic()
        for topic, partition in partitions:
            self._run_pending_hooks(topic, partition)

    def _revoked(self, partitions: list[tuple[str, int]]) -> None:
        for pool in self.engine.mysql_pools:
            for topic, partition in partitions:
                self._applied.pop((pool, topic, partition), None)

    # -- one poll --------------------------------------------------------------------

    def _handle(self, messages: Sequence[KafkaRecord]) -> None:
        runs: dict[tuple[str, int], list[_Item]] = {}
        for message in messages:
            try:
                record = AsyncRecord.decode(message.value or b"")
            except ValueError as exc:
                self.stats.undecodable += 1
                self._dead_letter(message, f"undecodable record: {exc}", None)
                continue
            if record.namespace not in self.namespaces:
                self.stats.foreign += 1
                continue
            runs.setdefault((message.topic, message.partition), []).append(_Item(message, record))
        for items in runs.values():
            # consecutive records of one MySQL pool share a transaction
            group: list[_Item] = []
            for item in items:
                if group and group[-1].record.pool != item.record.pool:
                    self._apply(group)
                    group = []
                group.append(item)
            if group:
                self._apply(group)

    def _next_offset(self, pool: str, topic: str, partition: int) -> int:
        key = (pool, topic, partition)
        found = self._applied.get(key)
        if found is None:
            row = self.engine.mysql(pool).query_row(
                f"SELECT `next_offset` FROM `{APPLIED}` WHERE `topic` = ? AND `partition_id` = ?",
                topic,
                partition,
            )
            found = self._applied[key] = int(row[0]) if row else 0
        return found

    def _apply(self, items: list[_Item]) -> None:
        pool = items[0].record.pool
        topic, partition = items[0].message.topic, items[0].message.partition
        done = self._next_offset(pool, topic, partition)
        todo = [i for i in items if i.message.offset >= done]
        self.stats.skipped += len(items) - len(todo)
        if not todo:
            return
        attempt = 0
        while True:
            try:
                self._apply_batch(pool, topic, partition, todo)
                return
            except _Transient as exc:
                if self._stop.is_set() and attempt >= 2:
                    raise exc.error from None
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                attempt += 1
                self.stats.retries += 1
                log.warning(
                    "fluxa: async consumer: %s; retrying in %.1f s (attempt %d)",
                    exc.error,
                    delay,
                    attempt,
                )
                time.sleep(delay)
                self._applied.pop((pool, topic, partition), None)
                done = self._next_offset(pool, topic, partition)
                todo = [i for i in todo if i.message.offset >= done]
                if not todo:
                    return
            except _Permanent:
                if len(todo) == 1:
                    self._fail_one(pool, topic, partition, todo[0])
                    return
                for item in todo:  # find the record at fault: one transaction each
                    self._apply([item])
                return

    def _apply_batch(self, pool: str, topic: str, partition: int, items: list[_Item]) -> None:
        ctx = self.engine.new_context()
        marked = self._mark(ctx, [i.record for i in items if not i.record.update_cache])
        released = [*marked, *self._keys(ctx, [i.record for i in items if i.record.update_cache])]
        last = items[-1].message.offset
        mysql = self.engine.mysql(pool)
        hooks: list[tuple[str, int, str, str, int, bytes | None]] = []
        rows = 0
        committed = False
        try:
            with mysql.begin() as tx:
                cur = tx.raw.cursor()
                try:
                    for item in items:
                        record = item.record
                        for sql, args in record.statements:
                            try:
                                rows += sql_runner.execute(ctx, cur, pool, sql, args, "async")
                            except DriverError as exc:
                                raise _classify(exc, pool, record) from exc
                        hooks += [(topic, partition, *h) for h in self._hook_rows(record)]
                    if hooks:
                        cur.executemany(
                            f"INSERT INTO `{HOOKS}` (`topic`,`partition_id`,`entity`,`kind`,"
                            "`entity_id`,`data`) VALUES (%s,%s,%s,%s,%s,%s)",
                            hooks,
                        )
                    cur.execute(
                        f"INSERT INTO `{APPLIED}` (`topic`,`partition_id`,`next_offset`) "
                        "VALUES (%s,%s,%s) ON DUPLICATE KEY UPDATE `next_offset` = "
                        "VALUES(`next_offset`)",
                        (topic, partition, last + 1),
                    )
                except DriverError as exc:
                    raise _classify(exc, pool, None) from exc
                finally:
                    cur.close()
            committed = True
        except FluxaError as exc:
            if isinstance(exc, _Transient | _Permanent):
                raise
            if isinstance(exc, OperationalError) and (exc.code in TRANSIENT or exc.code == 0):
                raise _Transient(exc) from exc
            raise _Permanent(exc) from exc
        finally:
            for flush_keys in released:
                flush_keys.release(committed)
        self._applied[(pool, topic, partition)] = last + 1
        self.stats.applied += len(items)
        self.stats.rows += rows
        self._after_commit(ctx, [i.record for i in items])
        if hooks:
            self._run_pending_hooks(topic, partition, pool)

    # -- caches, search and hooks ------------------------------------------------------

    def _provider(self, record: AsyncRecord) -> ProviderBase[Any] | None:
        return self.providers.get(record.entity)

    def _keys(self, ctx: Context, records: Iterable[AsyncRecord]) -> list[FlushKeys]:
        entries = []
        for record in records:
            provider = self._provider(record)
            if provider is None:
                continue
            tiers = provider._binding(ctx).tiers
            if tiers is None:
                continue
            rows: list[Any] = [tuple(r) for r in record.inserted]
            for row, orig, _, _ in record.updated:
                rows.append(tuple(row))
                if orig is not None:
                    rows.append(tuple(orig))
            for row, orig in record.deleted:
                rows.append(tuple(row))
                if orig is not None:
                    rows.append(tuple(orig))
            entries.append((tiers, provider.cached_uniques, rows))
        return list(collect_keys(entries).values()) if entries else []

    def _mark(self, ctx: Context, records: list[AsyncRecord]) -> list[FlushKeys]:
        keys = self._keys(ctx, records)
        marked: list[FlushKeys] = []
        try:
            for flush_keys in keys:
                flush_keys.mark()
                marked.append(flush_keys)
        except FluxaError as exc:
            for flush_keys in marked:
                flush_keys.release(committed=False)
            raise _Transient(exc) from exc
        return marked

    def _after_commit(self, ctx: Context, records: list[AsyncRecord]) -> None:
        for record in records:
            provider = self._provider(record)
            if provider is None or provider.search_pool is None:
                continue
            index = provider._binding(ctx).search
            if index is not None:
                try:
                    index.sync(record.ids())
                except Exception as exc:
                    log.error(
                        "fluxa: async consumer: Redis Search documents of %s not written (%s); "
                        "run `manage.py fluxa_reindex %s`",
                        record.entity,
                        exc,
                        record.entity,
                    )

    def _hook_rows(self, record: AsyncRecord) -> list[tuple[str, str, int, bytes | None]]:
        """The hook calls of a record, each with the row(s) it is made from: the hooks see
        the entity as that flush wrote it (as after a synchronous flush), even when a
        later record of the same batch changed or deleted the row."""
        provider = self._provider(record)
        if provider is None:
            return []
        out: list[tuple[str, str, int, bytes | None]] = []
        if provider._after_insert is not None:
            out += [(record.entity, "i", row[0], _pack([row])) for row in record.inserted]
        for row, orig, columns, soft in record.updated:
            if soft and provider._after_delete is not None:
                out.append((record.entity, "d", row[0], _pack([row])))
            elif not soft and provider._after_update is not None:
                out.append((record.entity, "u", row[0], _pack([row, orig, columns])))
        if provider._after_delete is not None:
            out += [(record.entity, "d", row[0], _pack([row])) for row, _ in record.deleted]
        return out

    def _run_pending_hooks(self, topic: str, partition: int, pool: str | None = None) -> None:
        """Run the recorded hook calls of one partition, oldest first, deleting each one
        after it ran."""
        for code in [pool] if pool is not None else list(self.engine.mysql_pools):
            mysql = self.engine.mysql(code)
            pending = mysql.query(
                f"SELECT `id`,`entity`,`kind`,`entity_id`,`data` FROM `{HOOKS}` "
                "WHERE `topic` = ? AND `partition_id` = ? ORDER BY `id`",
                topic,
                partition,
            )
            for hook_id, entity, kind, entity_id, changes in pending:
                try:
                    self._call_hook(str(entity), str(kind), int(entity_id), changes)
                except HookError as exc:
                    log.error("fluxa: async consumer: after-hook failed: %s", exc)
                mysql.exec(f"DELETE FROM `{HOOKS}` WHERE `id` = ?", hook_id)

    def _call_hook(self, entity: str, kind: str, entity_id: int, data: bytes | None) -> None:
        provider = self.providers.get(entity)
        if provider is None:
            return
        ctx = self.engine.new_context()
        try:
            rows = _unpack(data)
            found = provider._load(ctx, tuple(rows[0]))
            if kind == "i" and provider._after_insert is not None:
                provider._after_insert(ctx, found)
            elif kind == "u" and provider._after_update is not None:
                changes = _changes(ctx, provider, rows[1], rows[2])
                provider._after_update(ctx, found, changes)
            elif kind == "d" and provider._after_delete is not None:
                provider._after_delete(ctx, found)
        except Exception as exc:
            raise HookError(f"{entity} {entity_id} after-hook ({kind}) failed: {exc!r}") from exc

    # -- failures ----------------------------------------------------------------------

    def _fail_one(self, pool: str, topic: str, partition: int, item: _Item) -> None:
        """A record that fails for good: dead-letter it, then record it as handled."""
        try:
            self._apply_batch(pool, topic, partition, [item])
            return
        except _Permanent as exc:
            error = str(exc.error)
        self._dead_letter(item.message, error, item.record)
        mysql = self.engine.mysql(pool)
        mysql.exec(
            f"INSERT INTO `{APPLIED}` (`topic`,`partition_id`,`next_offset`) VALUES (?,?,?) "
            "ON DUPLICATE KEY UPDATE `next_offset` = VALUES(`next_offset`)",
            topic,
            partition,
            item.message.offset + 1,
        )
        self._applied[(pool, topic, partition)] = item.message.offset + 1

    def _dead_letter(self, message: KafkaRecord, error: str, record: AsyncRecord | None) -> None:
        if record is not None:
            self.stats.failed += 1
        log.error(
            "fluxa: async consumer: record %s[%d]@%d (%s) sent to %s: %s",
            message.topic,
            message.partition,
            message.offset,
            f"{record.entity}, flush {record.flush_id}" if record else "undecodable",
            ASYNC_SQL_FAILED_TOPIC,
            error,
        )
        self.kafka.produce_sync(
            ASYNC_SQL_FAILED_TOPIC,
            message.value,
            message.key,
            headers=[
                ("error", error.encode()),
                ("topic", message.topic.encode()),
                ("partition", str(message.partition).encode()),
                ("offset", str(message.offset).encode()),
            ],
        )


class _Transient(FluxaError):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Permanent(FluxaError):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _classify(exc: BaseException, pool: str, record: AsyncRecord | None) -> FluxaError:
    error = database_error(
        exc, pool, record.entity if record else "", record.table if record else ""
    )
    if isinstance(exc, MySQLdb.OperationalError) and error.code in TRANSIENT:
        return _Transient(error)
    if isinstance(exc, MySQLdb.InterfaceError):
        return _Transient(error)
    if isinstance(error, IntegrityError) or isinstance(
        exc, MySQLdb.ProgrammingError | MySQLdb.DataError | MySQLdb.OperationalError
    ):
        return _Permanent(error)
    return _Transient(error)


def _changes(
    ctx: Context, provider: ProviderBase[Any], orig: list[Any] | None, columns: list[int]
) -> dict[str, Any]:
    """The ``changes`` argument of the update hook (``{attribute: old value}``, typed as
    the entity's getters return them), from the loaded row the record carries."""
    if orig is None:
        return {}
    old = provider._load(ctx, tuple(orig))
    skip = {provider.created_at_index, provider.updated_at_index}
    names = provider.attribute_names
    return {names[i]: getattr(old, names[i]) for i in columns if i not in skip}


def _pack(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, default=codec._default, use_bin_type=True)
    return data


def _unpack(data: bytes | None) -> Any:
    if data is None:
        return None
    return msgpack.unpackb(data, ext_hook=codec._ext, raw=False, strict_map_key=False)
