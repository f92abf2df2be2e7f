"""The async flush cases: the request side of ``ctx.flush_async`` and the consumer.

Both run on the Kafka broker of ``make services`` (Tansu, ``FLUXA_TEST_KAFKA``), through
an engine of their own: the bench registry plus the Kafka pool and the async flush, with
a consumer group of this run that starts at the end of ``_fluxa_async_sql`` (records
of other applications on the shared topic are never read).

* ``flush_async_request``: ``flush_async(update_cache=False)`` of 100 new entities
  against the synchronous ``ctx.flush()`` of the same 100 (the "raw" column here);
  target: at most a third of it.
* ``async_consume``: the consumer applying 10,000 new rows published as 100 records
  (flushes of 100) against raw ``executemany`` of the same rows in one transaction;
  target: within 2x of it and at least 5,000 rows/s.
"""

from __future__ import annotations

import atexit
import contextlib
import cProfile
import gc
import os
import time
import uuid
from typing import Any, cast

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.case import Case
from bench.environment import (
    INSERT_SQL,
    LOCAL_TABLE,
    ROWS,
    TABLE,
    BenchEnv,
    Record,
    build_registry,
)
from bench.models import BenchItem
from bench.results import TIMES, CaseResult, Target
from bench.timing import BulkContender, Samples, bulk, fastest
from fluxa_django import AsyncFlushOptions, Context, Engine
from fluxa_django.config import ASYNC_SQL_FAILED_TOPIC, ASYNC_SQL_TOPIC
from fluxa_django.migrate.kafka import apply_kafka, plan_kafka
from fluxa_django.runtime.async_consume import AsyncConsumer, Stats
from fluxa_django.runtime.async_flush import records_of

KAFKA = os.environ.get("FLUXA_TEST_KAFKA", "127.0.0.1:9092")
FLUSH_ROWS = 100  # new entities per flush (both cases)
REQUEST_RUNS = 40  # interleaved runs per contender of the request case (20 quick)
BACK_TO_BACK = 20  # calls in a row per round of the back-to-back figures
CONSUME_RUNS = 5  # interleaved runs per contender of the consumer case (2 quick)
# A consumer group's session: on Tansu the group's first member waits half of it.
SESSION_MS = 3000


class AsyncEnv:
    """The bench's tables seen by an engine with the Kafka pool and the async flush."""

    _current: AsyncEnv | None = None

    def __init__(self, env: BenchEnv) -> None:
        self.env = env
        self.group = f"fluxa-bench-{uuid.uuid4().hex[:8]}"
        self.closed = False
        registry = build_registry()
        registry.register_kafka([KAFKA], "events")
        registry.register_async_flush(
            "events", AsyncFlushOptions(topic_partitions=1, consumer_group=self.group)
        )
        self.engine: Engine = registry.validate()
        plan = plan_kafka(self.engine)
        mine = (ASYNC_SQL_TOPIC, ASYNC_SQL_FAILED_TOPIC)
        apply_kafka(
            self.engine, [c for c in plan.safe if c.name in mine and c.kind == "create_topic"]
        )
        self.skip_to_end()
        atexit.register(self.close)

    @classmethod
    def of(cls, env: BenchEnv) -> AsyncEnv:
        """One per run (the two cases share it; closed when the process ends)."""
        if cls._current is None or cls._current.env is not env:
            cls._current = AsyncEnv(env)
        return cls._current

    def _consumer(self) -> Consumer:
        return Consumer(
            {"bootstrap.servers": KAFKA, "group.id": self.group, "enable.auto.commit": False}
        )

    def skip_to_end(self) -> None:
        """Commit the group's offsets at the end of the topic: the consumer reads only the
        records produced after this."""
        consumer = self._consumer()
        try:
            topic = consumer.list_topics(ASYNC_SQL_TOPIC, timeout=10).topics[ASYNC_SQL_TOPIC]
            ends = [
                TopicPartition(
                    ASYNC_SQL_TOPIC,
                    p,
                    consumer.get_watermark_offsets(TopicPartition(ASYNC_SQL_TOPIC, p), 10)[1],
                )
                for p in topic.partitions
            ]
            consumer.commit(offsets=ends, asynchronous=False)
        finally:
            consumer.close()

    def close(self) -> None:
        from confluent_kafka.admin import AdminClient

        if self.closed:
            return
        self.closed = True
        self.engine.close()
        admin = AdminClient({"bootstrap.servers": KAFKA})
        for future in admin.delete_consumer_groups([self.group]).values():
            with contextlib.suppress(Exception):
                future.result(10)

    def new_items(
        self, ctx: Context, records: list[Record], with_ids: bool = False, local: bool = False
    ) -> None:
        """New entities of ``BenchItemEntity`` (``local``: ``BenchLocalItemEntity``, with
        the local and Redis cache tiers) holding ``records`` (``with_ids``: their ids)."""
        provider = cast(Any, self.env.local_provider if local else self.env.provider)
        for r in records:
            item = provider.new_with_id(ctx, r.id) if with_ids else provider.new(ctx)
            item.name = r.name
            item.price = r.price
            item.quantity = r.quantity
            item.active = r.active
            item.created_at = r.created_at
            item.category = r.category

    def count(self) -> int:
        return int(self.env.scalar(f"SELECT COUNT(*) FROM `{TABLE}`"))


# -- 10. the request side of flush_async ---------------------------------------------------------


class _Flush:
    """``FLUSH_ROWS`` new entities in a fresh context (untimed); ``run`` writes them."""

    def __init__(self, aenv: AsyncEnv, first: int, local: bool = False) -> None:
        self.aenv = aenv
        self.records = aenv.env.records[first : first + FLUSH_ROWS]
        self.local = local  # BenchLocalItemEntity (local + Redis cache tiers)
        self.ctx = aenv.engine.new_context()

    def prepare(self) -> None:
        self.ctx = self.aenv.engine.new_context()
        self.aenv.new_items(self.ctx, self.records, local=self.local)

    def run(self) -> None:
        raise NotImplementedError

    def verify(self) -> None:
        assert self.ctx.tracked == [], f"{type(self).__name__} left tracked entities"


class _FlushAsync(_Flush):
    def __init__(self, aenv: AsyncEnv, first: int, update_cache: bool, local: bool = False) -> None:
        super().__init__(aenv, first, local)
        self.update_cache = update_cache

    def run(self) -> None:
        self.ctx.flush_async(update_cache=self.update_cache)


class _FlushSync(_Flush):
    def run(self) -> None:
        self.ctx.flush()


class _BrokerFloor(_Flush):
    """The broker's acknowledgement alone: the record ``flush_async`` publishes for the
    same 100 new entities (encoded once, untimed), produced with a bare confluent-kafka
    producer of the same settings (idempotent, acks=all, linger 0) and waited for by
    polling it in this thread (no delivery thread in between). What no implementation
    that waits for the acknowledgement, as the contract asks, can go below."""

    def __init__(self, aenv: AsyncEnv, first: int) -> None:
        super().__init__(aenv, first)
        self.prepare()
        records, _ = records_of(self.ctx, update_cache=False)
        self.payload, self.key = records[0].encode(), records[0].key
        self.ctx.clear_flush()
        self.producer = Producer(
            {
                "bootstrap.servers": KAFKA,
                "acks": -1,
                "linger.ms": 0,
                "enable.idempotence": True,
            }
        )
        self.acked: list[object] = []

    def _delivered(self, err: object, msg: object) -> None:
        assert err is None, f"the broker refused a record: {err}"
        self.acked.append(msg)

    def run(self) -> None:
        self.acked.clear()
        self.producer.produce(ASYNC_SQL_TOPIC, self.payload, self.key, on_delivery=self._delivered)
        while not self.acked:
            self.producer.poll(1.0)

    def verify(self) -> None:
        assert len(self.acked) == 1
        self.ctx.clear_flush()


class _DjangoCreate:
    def __init__(self, aenv: AsyncEnv, first: int) -> None:
        self.records = aenv.env.records[first : first + FLUSH_ROWS]
        self.next_id = 10**12  # far from the ids fluxa allocates (from MAX(id) up)
        self.objs: list[BenchItem] = []

    def prepare(self) -> None:
        self.objs = []
        for r in self.records:
            self.next_id += 1
            self.objs.append(BenchItem.of(r, self.next_id))

    def run(self) -> None:
        BenchItem.objects.bulk_create(self.objs)

    def verify(self) -> None:
        assert BenchItem.objects.filter(pk=self.next_id).exists()
        # gone again: fluxa allocates ids from MAX(id) up, and would meet these
        BenchItem.objects.filter(pk__gte=10**12).delete()


class FlushAsyncRequest(Case):
    key = "flush_async_request"
    title = f"10. flush_async of {FLUSH_ROWS} new entities (raw = sync flush)"
    target = Target(1 / 3, None)

    def run(self) -> CaseResult:
        aenv = AsyncEnv.of(self.env)
        runs = REQUEST_RUNS if self.scale.bulk_runs > 2 else REQUEST_RUNS // 2
        floor = _BrokerFloor(aenv, 6 * FLUSH_ROWS)
        contenders: dict[str, BulkContender] = {
            "fluxa": _FlushAsync(aenv, 0, update_cache=False),
            "raw": _FlushSync(aenv, FLUSH_ROWS),
            "django": _DjangoCreate(aenv, 2 * FLUSH_ROWS),
            "cache": _FlushAsync(aenv, 3 * FLUSH_ROWS, update_cache=True),
            "fluxa_local": _FlushAsync(aenv, 4 * FLUSH_ROWS, update_cache=False, local=True),
            "raw_local": _FlushSync(aenv, 5 * FLUSH_ROWS, local=True),
            "broker": floor,
        }
        try:
            samples = bulk(contenders, runs, warmup=3)
            steady = self._back_to_back(aenv)
        finally:
            self.env.seed()  # the sync flushes and Django added rows; the others read it
            self.env.seed(LOCAL_TABLE)
            aenv.skip_to_end()  # nobody applies the published records
        fluxa, sync = fastest(steady["fluxa"]), fastest(steady["raw"])
        cached, cached_sync = fastest(steady["fluxa_local"]), fastest(steady["raw_local"])
        apart, apart_sync = fastest(samples["fluxa_local"]), fastest(samples["raw_local"])
        broker, sync_apart = fastest(samples["broker"]), fastest(samples["raw"])
        return self.result(
            samples,
            f"per flush of {FLUSH_ROWS} rows",
            extras={
                "fluxa flush_async(update_cache=True)": fastest(samples["cache"]),
                "broker acknowledgement alone (raw confluent-kafka)": broker,
            },
            detail={
                "back_to_back_ns": {k: fastest(v) for k, v in steady.items()},
                "local_ns": {"fluxa": apart, "sync": apart_sync},
            },
            notes=[
                f"the floor: producing the same record ({len(floor.payload)} "
                f"bytes) with a bare confluent-kafka producer and waiting for the broker's "
                f"acknowledgement takes {broker / 1e6:.2f} ms, {broker / sync_apart:.2f}"
                f"{TIMES} the synchronous flush, in the same interleaved runs: fluxa's own "
                f"work (validate, plan, encode, settle, the delivery thread) adds "
                f"{(fastest(samples['fluxa']) - broker) / 1e6:.2f} ms to it",
                f"back to back ({BACK_TO_BACK} calls in a row, no collection between; the "
                f"fastest round's median): flush_async {fluxa / 1e6:.2f} ms, sync flush "
                f"{sync / 1e6:.2f} ms ({fluxa / sync:.2f}{TIMES}); the table's runs are "
                "apart (gc.collect() and new entities between two), after which the "
                "broker's acknowledgement takes longer (threads woken from idle)",
                f"BenchLocalItemEntity (local + Redis cache tiers: the synchronous flush "
                f"marks and releases the cache keys in Redis, flush_async(update_cache=False) "
                f"leaves them to the consumer): flush_async {apart / 1e6:.2f} ms, sync flush "
                f"{apart_sync / 1e6:.2f} ms ({apart / apart_sync:.2f}{TIMES}) as in the table; "
                f"back to back {cached / 1e6:.2f} ms and {cached_sync / 1e6:.2f} ms "
                f"({cached / cached_sync:.2f}{TIMES})",
                "fluxa: flush_async(update_cache=False) (validate, plan, encode one record, "
                "produce it and wait for the broker's acknowledgement); raw: ctx.flush() of "
                "the same 100 new entities (INSERT + COMMIT); django: bulk_create of 100 "
                "objects; timed: the flush only (the entities are built untimed)",
                "BenchItemEntity has no cache tier: update_cache=True costs the same as False "
                "here (it writes the rows to the Redis cache when the entity has one)",
            ],
        )

    def _back_to_back(self, aenv: AsyncEnv) -> dict[str, Samples]:
        """Calls in a row: the contexts of a round are built first (untimed), then flushed
        one after the other; rounds alternate between the two contenders."""
        rounds = 8 if self.scale.bulk_runs > 2 else 3
        names = ["fluxa", "raw", "fluxa_local", "raw_local"]
        samples = {name: Samples(BACK_TO_BACK) for name in names}
        records = self.env.records[:FLUSH_ROWS]
        for round_ in range(rounds):
            for name in names[round_ % 4 :] + names[: round_ % 4]:
                contexts = []
                for _ in range(BACK_TO_BACK):
                    ctx = aenv.engine.new_context()
                    aenv.new_items(ctx, records, local=name.endswith("_local"))
                    contexts.append(ctx)
                gc.collect()
                for ctx in contexts:
                    started = time.perf_counter_ns()
                    if name.startswith("fluxa"):
                        ctx.flush_async(update_cache=False)
                    else:
                        ctx.flush()
                    samples[name].append(time.perf_counter_ns() - started)
        return samples

    def profile(self, profiler: cProfile.Profile) -> None:
        aenv = AsyncEnv.of(self.env)
        contender = _FlushAsync(aenv, 0, update_cache=False)
        try:
            for _ in range(200):
                contender.prepare()
                profiler.enable()
                contender.run()
                profiler.disable()
        finally:
            aenv.skip_to_end()


# -- 11. the consumer ------------------------------------------------------------------------------


def _publish(aenv: AsyncEnv) -> None:
    """The bench rows (ids 1..ROWS) as flushes of ``FLUSH_ROWS`` new entities."""
    records = aenv.env.records
    for start in range(0, len(records), FLUSH_ROWS):
        ctx = aenv.engine.new_context()
        aenv.new_items(ctx, records[start : start + FLUSH_ROWS], with_ids=True)
        ctx.flush_async(update_cache=False)


class AsyncConsume(Case):
    key = "async_consume"
    title = f"11. consumer applying {ROWS:,} async inserts"
    target = Target(2.0, None, max_ns=ROWS / 5_000 * 1e9)

    def _consume(self, aenv: AsyncEnv) -> Stats:
        """Publish the rows into the truncated table (untimed), then let a consumer join and
        apply them; the consumer's figure runs from the first record it got to the commit
        of the last batch (joining the group is not counted)."""
        self.env.truncate(TABLE)
        _publish(aenv)
        consumer = AsyncConsumer(
            aenv.engine,
            {"BenchItemEntity": cast(Any, self.env.provider)},
            config={"session.timeout.ms": SESSION_MS},
        )
        gc.collect()
        stats = consumer.run(idle_timeout=0.5)
        count = aenv.count()
        assert count == ROWS and stats.rows == ROWS, (count, stats)
        return stats

    def _raw(self) -> int:
        self.env.truncate(TABLE)
        rows = [r.raw_row for r in self.env.records]
        conn = self.env.raw
        gc.collect()
        started = time.perf_counter_ns()
        cur = conn.cursor()
        conn.begin()
        cur.executemany(INSERT_SQL, rows)
        conn.commit()
        cur.close()
        elapsed = time.perf_counter_ns() - started
        assert int(self.env.scalar(f"SELECT COUNT(*) FROM `{TABLE}`")) == ROWS
        return elapsed

    def _django(self) -> int:
        self.env.truncate(TABLE)
        objs = [BenchItem.of(r) for r in self.env.records]
        gc.collect()
        started = time.perf_counter_ns()
        BenchItem.objects.bulk_create(objs, batch_size=1000)
        return time.perf_counter_ns() - started

    def run(self) -> CaseResult:
        aenv = AsyncEnv.of(self.env)
        runs = CONSUME_RUNS if self.scale.bulk_runs > 2 else 2
        samples = {name: Samples(1) for name in ("fluxa", "raw", "django")}
        batches: list[int] = []
        try:
            self._consume(aenv)  # warm-up
            for round_ in range(runs):
                order = ["fluxa", "raw", "django"]
                order = order[round_ % 3 :] + order[: round_ % 3]
                for name in order:
                    if name == "fluxa":
                        stats = self._consume(aenv)
                        assert stats.started is not None and stats.finished is not None
                        samples["fluxa"].append((stats.finished - stats.started) * 1e9)
                        batches.append(stats.applied)
                    elif name == "raw":
                        samples["raw"].append(self._raw())
                    else:
                        samples["django"].append(self._django())
        finally:
            self.env.seed()
        best = fastest(samples["fluxa"])
        return self.result(
            samples,
            f"per {ROWS:,} rows",
            extras={},
            notes=[
                f"fluxa: AsyncConsumer (batch 500) applying {ROWS // FLUSH_ROWS} records of "
                f"{FLUSH_ROWS} new rows each (published untimed, before the consumer joins); "
                "timed from the first record polled to the commit of the last batch (MySQL "
                "transaction with the applied offset, then the Kafka offsets): "
                f"{ROWS / best * 1e9:,.0f} rows/s",
                "raw: executemany of the same rows in one transaction; django: "
                "bulk_create(batch_size=1000); table truncated before every run",
            ],
        )

    def profile(self, profiler: cProfile.Profile) -> None:
        aenv = AsyncEnv.of(self.env)
        try:
            for _ in range(2):
                self.env.truncate(TABLE)
                _publish(aenv)
                consumer = AsyncConsumer(
                    aenv.engine,
                    {"BenchItemEntity": cast(Any, self.env.provider)},
                    config={"session.timeout.ms": SESSION_MS},
                )
                profiler.enable()
                consumer.run(idle_timeout=0.5)
                profiler.disable()
        finally:
            self.env.seed()


ASYNC_CASES: tuple[type[Case], ...] = (FlushAsyncRequest, AsyncConsume)
