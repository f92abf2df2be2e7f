"""The consumer of ``_fluxa_async_sql`` (``manage.py fluxa_consume_async``).

Exactly-once effect on MySQL without broker transactions: the records of one poll
are applied per (partition, MySQL pool) in **one MySQL transaction that also records
what it applied**: the partition's next offset, in ``_fluxa_async_applied`` of that
pool's database, keyed by the records' namespace and pool. The transaction first
locks that row (``SELECT ... FOR UPDATE``) and skips the records below it, so:

- a consumer killed at any point and replayed from the broker's older committed
  offsets neither loses nor repeats a write (before the commit nothing happened;
  after it the offset says so);
- two consumers that hold one partition at the same time (a rebalance that moved it
  while the old owner was still applying, a consumer that lost its session) queue on
  that row lock, and the second skips what the first applied.

Kafka offsets are committed after the MySQL commit, only to spare replays.

After the commit, as after a synchronous flush: the cache keys of the changed rows
are released (marked before the SQL, so no reader fills an old row meanwhile; for
``update_cache=True`` records the markers replace the rows the request wrote, so readers
read MySQL during the transaction), search documents are made equal to MySQL, and the
after-hooks run.

After-hooks: their calls are written to ``_fluxa_async_hooks`` in the batch's
transaction. They then run in transactions of their own that lock the calls (``FOR
UPDATE``), call the hooks, write the changes the hooks made through the context
they are given (and the calls of *their* hooks), and delete the calls, all in one
commit. So a hook's changes through its context happen once, and a consumer killed
before that commit runs those hooks again: a hook's other side effects (a mail, an
HTTP call) happen at least once. The consumer given a partition (at start, or when a
killed consumer's partitions move to it) first runs that partition's pending calls.

Per-table order: records are keyed by their table, so one table's records are
on one partition, in flush order. Transient errors (MySQL or Redis unreachable, lock
wait timeout, deadlock, and any error not known to be the record's fault) are
retried with backoff, nothing committed; a record that fails for good (a constraint
its data breaks, a column or table that is gone, a value out of range) is sent to
``_fluxa_async_sql_failed`` with the error, recorded as handled, and the rest
continue. Records of another namespace (another application or database sharing the
broker) are skipped without being decoded.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import msgpack
import MySQLdb
from confluent_kafka import TopicPartition

from fluxa_django.backends.mysql import DriverError, database_error, row_literals
from fluxa_django.config import ASYNC_SQL_FAILED_TOPIC
from fluxa_django.errors import (
    ConfigError,
    FluxaError,
    HookError,
    IntegrityError,
    OperationalError,
    PoolError,
)
from fluxa_django.runtime import codec
from fluxa_django.runtime import mysql as sql_runner
from fluxa_django.runtime.async_flush import (
    AsyncRecord,
    _settle,
    kafka_pool_code,
    namespace_of,
    record_namespace,
    records_of,
)
from fluxa_django.runtime.flush import TablePlan, _statements
from fluxa_django.runtime.flushkeys import FlushKeys, collect_keys
from fluxa_django.runtime.provider import imported_provider
from fluxa_django.runtime.search_index import BATCH as SEARCH_BATCH

if TYPE_CHECKING:
    from fluxa_django.backends.kafka import KafkaGroupConsumer, KafkaRecord
    from fluxa_django.backends.mysql import MySQLPool
    from fluxa_django.engine import Engine
    from fluxa_django.runtime.context import Context
    from fluxa_django.runtime.provider import ProviderBase

log = logging.getLogger("fluxa_django.async")

APPLIED = "_fluxa_async_applied"
HOOKS = "_fluxa_async_hooks"
CREATE_APPLIED = (
    f"CREATE TABLE IF NOT EXISTS `{APPLIED}` (`namespace` varchar(64) NOT NULL, "
    "`pool` varchar(64) NOT NULL, `topic` varchar(190) NOT NULL, "
    "`partition_id` int NOT NULL, `next_offset` bigint NOT NULL, "
    "PRIMARY KEY (`namespace`, `pool`, `topic`, `partition_id`)) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)
CREATE_HOOKS = (
    f"CREATE TABLE IF NOT EXISTS `{HOOKS}` (`id` bigint unsigned NOT NULL AUTO_INCREMENT, "
    "`namespace` varchar(64) NOT NULL, `pool` varchar(64) NOT NULL, "
    "`topic` varchar(190) NOT NULL, `partition_id` int NOT NULL, "
    "`entity` varchar(190) NOT NULL, `kind` char(1) NOT NULL, "
    "`entity_id` bigint unsigned NOT NULL, `data` mediumblob NULL, PRIMARY KEY (`id`), "
    "INDEX `Partition` (`namespace`, `pool`, `topic`, `partition_id`, `id`)) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)
# MySQL errors that say nothing about the record: retried, never dead-lettered. (Any
# error not known to be permanent is retried too; these are only logged more briefly.)
TRANSIENT = {1020, 1040, 1053, 1205, 1213, 1317, 1927, 2002, 2003, 2006, 2013, 2055, 4031}
# OperationalError codes that are the record's fault (mysqlclient reports them as
# OperationalError): unknown column, column count, wrong values, no default.
PERMANENT_CODES = {1054, 1136, 1292, 1364, 1366, 1406, 1264, 1265, 1048, 1146, 1064}
BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
HOOK_BATCH = 500  # hook calls run (and deleted) per transaction


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
    hooks: int = 0  # after-hook calls run
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    partitions: list[tuple[str, int]] = field(default_factory=list)  # assigned now
    started: float | None = None  # time.monotonic() when the first record came
    finished: float | None = None  # time.monotonic() when the last batch was applied

    @property
    def rows_per_second(self) -> float:
        """Rows applied per second between the first record and the last batch."""
        if self.started is None or self.finished is None or self.finished <= self.started:
            return 0.0
        return self.rows / (self.finished - self.started)


@dataclass
class _HookChanges:
    """What the hooks of one hook transaction changed on its pool."""

    records: list[AsyncRecord]
    tables: list[TablePlan]
    marked: list[FlushKeys]


@dataclass
class _Item:
    message: KafkaRecord
    record: AsyncRecord


class AsyncConsumer:
    """Applies the async flush records of one engine (see the module docstring).

    ``providers`` maps entity names to their generated provider singletons (the
    command imports the generated package); ``config`` adds librdkafka settings
    to the consumer group (``session.timeout.ms`` ...). ``batch`` is the most records
    one poll (and so one transaction per partition and pool) takes.
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
        # pool -> the namespace of its records; namespace -> pools
        self.pool_namespace = {code: namespace_of(engine, code) for code in engine.mysql_pools}
        self.namespaces = set(self.pool_namespace.values())
        self.stats = Stats()
        self._stop = threading.Event()
        self._consumer: KafkaGroupConsumer | None = None
        self._joined = False
        self._idle_since = 0.0
        self._positions: dict[tuple[str, int], int] = {}  # next offset to handle
        self._due: set[tuple[str, int]] = set()  # assigned partitions whose hooks may wait
        self._ensured: set[tuple[str, str, int]] = set()  # (pool, topic, partition) rows made
        self._unmapped: set[str] = set()  # entities without a provider (warned once)
        for code in engine.mysql_pools:
            _create_tables(engine.mysql(code))

    def stop(self) -> None:
        """Finish the batch being applied, then return from ``run`` (signal-safe)."""
        self._stop.set()
        consumer = self._consumer
        if consumer is not None:
            consumer.stop()

    def run(self, idle_timeout: float | None = None, max_records: int | None = None) -> Stats:
        """Consume until ``stop()``, until no record came for ``idle_timeout`` seconds
        (counted from the group's first assignment; a member that gets no partition stops
        a session timeout later), or until ``max_records`` records were handled."""
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
                if self._due:
                    self._recover_hooks()
                messages = consumer.poll(timeout=0.5, max_records=self.batch)
                if not messages:
                    idle = time.monotonic() - self._idle_since
                    if idle_timeout is not None and idle > idle_timeout + (
                        0.0 if self._joined else self._session_timeout()
                    ):
                        break  # (joining is not idle time: a session more to get partitions)
                    continue
                now = time.monotonic()
                self._idle_since = now
                if self.stats.started is None:
                    self.stats.started = now
                self._handle(messages)
                self.stats.finished = time.monotonic()
                handled += len(messages)
                try:
                    consumer.commit()
                except FluxaError as exc:  # MySQL holds the truth: a replay skips them
                    log.warning("fluxa: async consumer: committing offsets failed: %s", exc)
                if self.progress is not None:
                    self._report(consumer)
                if max_records is not None and handled >= max_records:
                    break
        finally:
            self._consumer = None
            consumer.close()
        return self.stats

    def _session_timeout(self) -> float:
        """Seconds of the group's session (librdkafka's 45 s unless configured)."""
        found = self.engine.registry.async_flush
        group = self.kafka.groups.get(found[1].consumer_group) if found else None
        ms = self.config.get("session.timeout.ms") or (group.session_timeout_ms if group else 0)
        return int(ms or 45_000) / 1000

    def _report(self, consumer: KafkaGroupConsumer) -> None:
        assert self.progress is not None
        self.stats.lag = self._lag(consumer)
        self.progress(self.stats)

    def _lag(self, consumer: KafkaGroupConsumer) -> dict[tuple[str, int], int]:
        """Records not yet handled per assigned partition, from the high watermarks the
        last fetches brought (no broker request: ``KafkaGroupConsumer.lag()`` asks the
        broker for each partition, 0.5 s each on Tansu, long enough to miss heartbeats)."""
        raw = getattr(consumer, "_consumer", None)  # the confluent_kafka.Consumer
        if raw is None:
            return {}
        lag: dict[tuple[str, int], int] = {}
        for key in consumer.assignment():
            high = -1
            with contextlib.suppress(Exception):  # not known yet
                _, high = raw.get_watermark_offsets(TopicPartition(*key), cached=True)
            position = self._positions.get(key)
            if high >= 0 and position is not None:
                lag[key] = max(0, int(high) - position)
        return lag

    def _assigned(self, partitions: list[tuple[str, int]]) -> None:
        self._joined = True  # the idle timeout counts from the group's first assignment
        self._idle_since = time.monotonic()
        self._due.update(partitions)  # their pending hook calls run before the next poll
        self.stats.partitions = sorted({*self.stats.partitions, *partitions})
        if self.progress is not None:
            self.progress(self.stats)

    def _revoked(self, partitions: list[tuple[str, int]]) -> None:
        self._due.difference_update(partitions)
        gone = set(partitions)
        self.stats.partitions = [p for p in self.stats.partitions if p not in gone]

    # -- one poll --------------------------------------------------------------------

    def _handle(self, messages: Sequence[KafkaRecord]) -> None:
        runs: dict[tuple[str, int, str], list[_Item]] = {}
        for message in messages:
            self._positions[(message.topic, message.partition)] = message.offset + 1
            value = message.value or b""
            namespace = record_namespace(value)
            if namespace is not None and namespace not in self.namespaces:
                self.stats.foreign += 1
                continue
            try:
                record = AsyncRecord.decode(value)
            except ValueError as exc:
                self.stats.undecodable += 1
                self._retrying(partial(self._dead_letter, message, str(exc), None))
                continue
            if self.pool_namespace.get(record.pool) != record.namespace:
                self.stats.foreign += 1  # a pool this engine does not have
                continue
            key = (message.topic, message.partition, record.pool)
            runs.setdefault(key, []).append(_Item(message, record))
        for (topic, partition, pool), items in runs.items():
            # one partition's records of one pool: one transaction (the other pools'
            # records of the partition have offsets of their own, in their databases)
            self._apply(pool, topic, partition, items)

    def _retrying(self, work: Callable[[], None]) -> None:
        """``work()`` until it does not fail with a transient error (backoff between)."""
        attempt = 0
        while True:
            try:
                work()
                return
            except (_Transient, PoolError, OperationalError) as exc:
                error = exc.error if isinstance(exc, _Transient) else exc
                if self._stop.is_set() and attempt >= 2:
                    raise error from None
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                attempt += 1
                self.stats.retries += 1
                log.warning(
                    "fluxa: async consumer: %s; retrying in %.1f s (attempt %d)",
                    error,
                    delay,
                    attempt,
                )
                time.sleep(delay)

    def _apply(self, pool: str, topic: str, partition: int, items: list[_Item]) -> None:
        try:
            self._retrying(lambda: self._apply_batch(pool, topic, partition, items))
        except _Permanent as exc:
            if len(items) == 1:
                failure = exc
                self._retrying(lambda: self._fail_one(pool, topic, partition, items[0], failure))
                return
            for item in items:  # find the record at fault: one transaction each
                self._apply(pool, topic, partition, [item])

    def _ensure_row(self, pool: str, topic: str, partition: int) -> None:
        """The partition's row in ``_fluxa_async_applied`` exists (so that the batch
        transactions can lock it)."""
        key = (pool, topic, partition)
        if key in self._ensured:
            return
        self.engine.mysql(pool).exec(
            f"INSERT IGNORE INTO `{APPLIED}` (`namespace`,`pool`,`topic`,`partition_id`,"
            "`next_offset`) VALUES (?,?,?,?,0)",
            self.pool_namespace[pool],
            pool,
            topic,
            partition,
        )
        self._ensured.add(key)

    def _lock_next(self, cur: Any, pool: str, topic: str, partition: int) -> int:
        cur.execute(
            f"SELECT `next_offset` FROM `{APPLIED}` WHERE `namespace`=%s AND `pool`=%s "
            "AND `topic`=%s AND `partition_id`=%s FOR UPDATE",
            (self.pool_namespace[pool], pool, topic, partition),
        )
        row = cur.fetchone()
        if row is None:  # deleted meanwhile (by hand): made again by the next attempt
            self._ensured.discard((pool, topic, partition))
            raise _Transient(
                OperationalError(f"the row of {topic}[{partition}] in {APPLIED} is gone", pool=pool)
            )
        return int(row[0])

    def _set_next(self, cur: Any, pool: str, topic: str, partition: int, offset: int) -> None:
        cur.execute(
            f"UPDATE `{APPLIED}` SET `next_offset`=%s WHERE `namespace`=%s AND `pool`=%s "
            "AND `topic`=%s AND `partition_id`=%s",
            (offset, self.pool_namespace[pool], pool, topic, partition),
        )

    def _apply_batch(self, pool: str, topic: str, partition: int, items: list[_Item]) -> None:
        """One transaction: lock the partition's offset, run the statements of the records
        at or past it, record their hook calls and the new offset. Raises ``_Transient``
        or ``_Permanent``."""
        self._ensure_row(pool, topic, partition)
        ctx = self.engine.new_context()
        mysql = self.engine.mysql(pool)
        marked: list[FlushKeys] = []
        todo: list[_Item] = []
        hooks = 0
        rows = 0
        with _transaction(mysql, marked) as (raw, cur):
            done = self._lock_next(cur, pool, topic, partition)
            todo = [i for i in items if i.message.offset >= done]
            if not todo:
                self.stats.skipped += len(items)
                return
            records = [i.record for i in todo]
            # The keys of update_cache=True records too: their rows, which the request
            # wrote into the Redis cache, give way to write markers until the commit
            # (readers read MySQL meanwhile), so that no reader that missed them
            # leaves an old row in a cache, as for a synchronous flush.
            marked += self._mark(ctx, records)
            rows = self._execute(ctx, raw, cur, pool, records)
            hooks = self._record_hooks(cur, pool, topic, partition, records)
            self._set_next(cur, pool, topic, partition, todo[-1].message.offset + 1)
        self.stats.skipped += len(items) - len(todo)
        self.stats.applied += len(todo)
        self.stats.rows += rows
        self._after_commit(ctx, [i.record for i in todo])
        if hooks:
            self._retrying(lambda: self._run_hooks(pool, topic, partition))

    def _execute(
        self, ctx: Context, raw: Any, cur: Any, pool: str, records: list[AsyncRecord]
    ) -> int:
        """Run the records' statements in order; the inserts of consecutive records of one
        table become one multi-row INSERT (per 1,000 rows, as ``flush`` writes them),
        formatted in one pass. Returns the affected rows."""
        rows = 0
        pending: dict[str, tuple[AsyncRecord, list[list[Any]]]] = {}  # table -> its inserts

        def write(table: str) -> int:
            first, new_rows = pending.pop(table)
            try:
                return self._insert(ctx, raw, cur, pool, first, new_rows)
            except DriverError as exc:
                raise _record_error(exc, pool, first) from exc

        for record in records:
            if record.inserted:
                found = pending.get(record.table)
                if found is not None and found[0].insert_sql != record.insert_sql:
                    rows += write(record.table)  # another schema: another INSERT
                    found = None
                if found is None:
                    pending[record.table] = (record, list(record.inserted))
                else:
                    found[1].extend(record.inserted)
            if record.statements:
                if record.table in pending:
                    rows += write(record.table)
                for sql, args in record.statements:
                    try:
                        rows += sql_runner.execute(ctx, cur, pool, sql, args, "async")
                    except DriverError as exc:
                        raise _record_error(exc, pool, record) from exc
        for table in list(pending):
            rows += write(table)
        return rows

    @staticmethod
    def _insert(
        ctx: Context, raw: Any, cur: Any, pool: str, record: AsyncRecord, rows: list[list[Any]]
    ) -> int:
        literals = row_literals(raw, rows)
        affected = 0
        for start, end in _statements(rows, literals):
            count = end - start
            sql = record.insert_sql + ",".join([record.insert_row_sql] * count)
            if literals is not None:
                statement = record.insert_sql + ",".join(literals[start:end])
                shown = range(count * len(rows[0]))  # the loggers see how many values
                affected += sql_runner.execute(ctx, cur, pool, sql, shown, "insert", statement)
                continue
            args: list[Any] = []
            for row in rows[start:end]:
                args.extend(row)
            affected += sql_runner.execute(ctx, cur, pool, sql, args, "insert")
        return affected

    # -- caches and search ---------------------------------------------------------------

    def _provider(self, record: AsyncRecord) -> ProviderBase[Any] | None:
        return self._provider_of(record.entity)

    def _provider_of(self, entity: str) -> ProviderBase[Any] | None:
        """The provider of ``entity``: from ``providers``, else the one this process
        imported for the engine's definition of it (so a map that misses an entity
        still keeps its caches and search documents right); ``None`` (logged once) when
        there is none: its records are applied, its caches wait for their TTL."""
        found = self.providers.get(entity)
        if found is not None:
            return found
        schema = self.engine.registered(entity)
        if schema is not None:
            found = imported_provider(entity, schema.table, schema.stamp())
        if found is not None:
            self.providers[entity] = found
        elif entity not in self._unmapped:
            self._unmapped.add(entity)
            log.warning(
                "fluxa: async consumer: no provider of %s (pass it in providers, or import "
                "its generated module): its records are applied, but its cache entries, "
                "search documents and after-hooks are not updated",
                entity,
            )
        return found

    def _keys(self, ctx: Context, records: Iterable[AsyncRecord]) -> list[FlushKeys]:
        entries = []
        for record in records:
            provider = self._provider(record)
            if provider is None:
                continue
            tiers = provider._binding(ctx).tiers
            if tiers is None:
                continue
            rows: list[Any] = list(record.inserted)
            for row, orig, _, _ in record.updated:
                rows.append(row)
                if orig is not None:
                    rows.append(orig)
            for row, orig in record.deleted:
                rows.append(row)
                if orig is not None:
                    rows.append(orig)
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
        """The search documents of the committed records' rows, made equal to MySQL:
        per entity, each id once, in chunks of ``BATCH`` (one sync costs three round
        trips, so a batch of records of one table costs three, not three per record)."""
        changed: dict[str, dict[int, None]] = {}
        for record in records:
            provider = self._provider(record)
            if provider is not None and provider.search_pool is not None:
                changed.setdefault(record.entity, {}).update(dict.fromkeys(record.ids()))
        for entity, found in changed.items():
            provider = self._provider_of(entity)
            index = provider._binding(ctx).search if provider is not None else None
            if index is None:
                continue
            ids = list(found)
            try:
                for start in range(0, len(ids), SEARCH_BATCH):
                    index.sync(ids[start : start + SEARCH_BATCH])
            except Exception as exc:
                log.error(
                    "fluxa: async consumer: Redis Search documents of %s not written (%s); "
                    "run `manage.py fluxa_reindex %s`",
                    entity,
                    exc,
                    entity,
                )

    # -- after-hooks ---------------------------------------------------------------------

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

    def _record_hooks(
        self, cur: Any, pool: str, topic: str, partition: int, records: list[AsyncRecord]
    ) -> int:
        """Write the records' hook calls to the outbox (in the caller's transaction)."""
        namespace = self.pool_namespace[pool]
        calls = [
            (namespace, pool, topic, partition, *call)
            for record in records
            for call in self._hook_rows(record)
        ]
        if calls:
            cur.executemany(
                f"INSERT INTO `{HOOKS}` (`namespace`,`pool`,`topic`,`partition_id`,`entity`,"
                "`kind`,`entity_id`,`data`) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                calls,
            )
        return len(calls)

    def _recover_hooks(self) -> None:
        """The pending hook calls of the partitions assigned since the last poll (left by a
        consumer that stopped or was killed before running them)."""
        for topic, partition in sorted(self._due):
            for pool in self.engine.mysql_pools:
                self._retrying(partial(self._run_hooks, pool, topic, partition))
            self._due.discard((topic, partition))

    def _run_hooks(self, pool: str, topic: str, partition: int) -> None:
        """Run a partition's pending hook calls, oldest first, ``HOOK_BATCH`` per
        transaction, until none is left (see the module docstring)."""
        while self._hook_batch(pool, topic, partition):
            pass

    def _hook_batch(self, pool: str, topic: str, partition: int) -> bool:
        """One transaction of hook calls; False when there was none."""
        mysql = self.engine.mysql(pool)
        namespace = self.pool_namespace[pool]
        ctx = self.engine.new_context()
        changes: _HookChanges | None = None
        calls: list[Any] = []
        marked: list[FlushKeys] = []
        # read committed: the FOR UPDATE below locks the calls it reads and no gap
        # next to them (other partitions' calls are written meanwhile)
        with _transaction(mysql, marked, "READ COMMITTED") as (raw, cur):
            cur.execute(
                f"SELECT `id`,`entity`,`kind`,`entity_id`,`data` FROM `{HOOKS}` "
                "WHERE `namespace`=%s AND `pool`=%s AND `topic`=%s AND "
                f"`partition_id`=%s ORDER BY `id` LIMIT {HOOK_BATCH} FOR UPDATE",
                (namespace, pool, topic, partition),
            )
            calls = list(cur.fetchall())
            if not calls:
                return False
            for _, entity, kind, entity_id, data in calls:
                try:
                    self._call_hook(ctx, str(entity), str(kind), int(entity_id), data)
                except HookError as exc:
                    log.error("fluxa: async consumer: after-hook failed: %s", exc)
            if ctx._tracked:
                changes = self._hook_changes(ctx, raw, cur, pool, topic, partition)
                marked += changes.marked
            ids = [int(c[0]) for c in calls]
            cur.execute(
                f"DELETE FROM `{HOOKS}` WHERE `id` IN ({','.join(['%s'] * len(ids))})",
                ids,
            )
        self.stats.hooks += len(calls)
        if changes is not None and changes.records:
            for table in changes.tables:
                _settle(ctx, table, untrack=True, visible=True)
            self._after_commit(ctx, changes.records)
        if ctx._tracked:  # changes on other MySQL pools: a flush of their own
            try:
                ctx.flush()
            except FluxaError as exc:
                log.error(
                    "fluxa: async consumer: the changes after-hooks made on other MySQL "
                    "pools were not saved: %s",
                    exc,
                )
        return True

    def _hook_changes(
        self, ctx: Context, raw: Any, cur: Any, pool: str, topic: str, partition: int
    ) -> _HookChanges:
        """The changes hooks made through their context, on this pool: written in the
        hook transaction, with the calls of their own hooks. When they fail for good
        (savepoint) they are logged and dropped; the calls still count as run."""
        try:
            records, pools = records_of(ctx, update_cache=False)
        except FluxaError as exc:
            log.error("fluxa: async consumer: the changes after-hooks made are invalid: %s", exc)
            ctx.clear_flush()
            return _HookChanges([], [], [])
        mine = [r for r in records if r.pool == pool]
        tables = list(pools.get(pool, {}).values())
        if not mine:
            return _HookChanges([], [], [])
        marked = self._mark(ctx, mine)
        cur.execute("SAVEPOINT fluxa_hooks")
        try:
            try:
                self._execute(ctx, raw, cur, pool, mine)
                self._record_hooks(cur, pool, topic, partition, mine)
            except DriverError as exc:
                raise database_error(exc, pool) from exc
        except FluxaError as exc:
            failure = _classify(exc)
            if isinstance(failure, _Transient):
                raise failure from exc
            cur.execute("ROLLBACK TO SAVEPOINT fluxa_hooks")
            log.error("fluxa: async consumer: the changes after-hooks made were not saved: %s", exc)
            for table in tables:
                for entity in table.entities():
                    entity._discard()
                    ctx._untrack(entity)
            return _HookChanges([], [], marked)
        return _HookChanges(mine, tables, marked)

    def _call_hook(
        self, ctx: Context, entity: str, kind: str, entity_id: int, data: bytes | None
    ) -> None:
        provider = self._provider_of(entity)
        if provider is None:
            return
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

    def _fail_one(
        self, pool: str, topic: str, partition: int, item: _Item, failure: _Permanent
    ) -> None:
        """A record that fails for good: dead-letter it, then record it as handled (a
        consumer killed in between sends it again: dead letters are at least once)."""
        self._ensure_row(pool, topic, partition)
        mysql = self.engine.mysql(pool)
        with mysql.begin() as tx:
            (row,) = tx.query(
                f"SELECT `next_offset` FROM `{APPLIED}` WHERE `namespace`=? AND `pool`=? "
                "AND `topic`=? AND `partition_id`=? FOR UPDATE",
                self.pool_namespace[pool],
                pool,
                topic,
                partition,
            )
            if int(row[0]) > item.message.offset:  # another consumer handled it meanwhile
                self.stats.skipped += 1
                return
            self._dead_letter(item.message, str(failure.error), item.record)
            tx.exec(
                f"UPDATE `{APPLIED}` SET `next_offset`=? WHERE `namespace`=? AND `pool`=? "
                "AND `topic`=? AND `partition_id`=?",
                item.message.offset + 1,
                self.pool_namespace[pool],
                pool,
                topic,
                partition,
            )

    def _dead_letter(self, message: KafkaRecord, error: str, record: AsyncRecord | None) -> None:
        if len(error) > 1000:
            error = error[:997] + "..."
        log.error(
            "fluxa: async consumer: record %s[%d]@%d (%s) sent to %s: %s",
            message.topic,
            message.partition,
            message.offset,
            f"{record.entity}, flush {record.flush_id}" if record else "undecodable",
            ASYNC_SQL_FAILED_TOPIC,
            error,
        )
        headers = [
            ("error", error.encode()),
            ("topic", message.topic.encode()),
            ("partition", str(message.partition).encode()),
            ("offset", str(message.offset).encode()),
        ]
        if record is not None:
            headers += [
                ("namespace", record.namespace.encode()),
                ("entity", record.entity.encode()),
                ("flush", record.flush_id.encode()),
            ]
        self.kafka.produce_sync(ASYNC_SQL_FAILED_TOPIC, message.value, message.key, headers)
        if record is not None:
            self.stats.failed += 1


@contextlib.contextmanager
def _transaction(
    mysql: MySQLPool, marked: list[FlushKeys], isolation: str = ""
) -> Iterator[tuple[Any, Any]]:
    """A transaction on a pooled connection: ``(raw connection, cursor)``, optionally at
    another isolation level. Its errors are ``_Transient`` or ``_Permanent`` (driver
    errors of the body, BEGIN and COMMIT become ours first; a broken connection is
    dropped, never reused); the cache keys the body put in ``marked`` are released at the
    end, as committed or not."""
    committed = False
    try:
        with _connection_transaction(mysql, isolation) as raw:
            cur = raw.cursor()
            try:
                yield raw, cur
            except DriverError as exc:
                raise database_error(exc, mysql.code) from exc
            finally:
                cur.close()
        committed = True
    except (_Transient, _Permanent):
        raise
    except FluxaError as exc:
        raise _classify(exc) from exc
    finally:
        for flush_keys in marked:
            flush_keys.release(committed)


@contextlib.contextmanager
def _connection_transaction(mysql: MySQLPool, isolation: str) -> Iterator[Any]:
    with mysql.connection() as raw:
        try:
            if isolation:
                raw.query(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
            raw.begin()
        except DriverError as exc:
            raise database_error(exc, mysql.code) from exc
        try:
            yield raw
        except BaseException:
            with contextlib.suppress(Exception):
                raw.rollback()
            raise
        try:
            raw.commit()
        except DriverError as exc:
            raise database_error(exc, mysql.code) from exc


def _create_tables(mysql: MySQLPool) -> None:
    mysql.exec(CREATE_APPLIED)
    mysql.exec(CREATE_HOOKS)
    for table in (APPLIED, HOOKS):
        if not mysql.query(f"SHOW COLUMNS FROM `{table}` LIKE 'namespace'"):
            raise ConfigError(
                f"mysql pool {mysql.code!r}: table `{table}` was made by an earlier "
                "development version of the async flush (no `namespace` column); drop it "
                "once no record waits (the consumer makes it again)"
            )


class _Transient(FluxaError):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Permanent(FluxaError):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _record_error(exc: BaseException, pool: str, record: AsyncRecord) -> FluxaError:
    """A driver error of a record's statement, naming its entity and table."""
    return database_error(exc, pool, record.entity, record.table)


def _classify(error: FluxaError) -> _Transient | _Permanent:
    """Permanent: the record's data or SQL is at fault (a constraint, a value, a column
    or table that is gone). Everything else is retried."""
    cause = error.__cause__
    code = getattr(error, "code", 0)
    if isinstance(error, IntegrityError):
        return _Permanent(error)
    if isinstance(cause, MySQLdb.DataError | MySQLdb.ProgrammingError | MySQLdb.NotSupportedError):
        return _Permanent(error)
    if isinstance(cause, MySQLdb.OperationalError) and code in PERMANENT_CODES:
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
