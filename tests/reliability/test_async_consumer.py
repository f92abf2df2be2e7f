"""The async flush consumer in real processes, killed and restarted (issue 12, SPEC §5).

A broker of the module's own (a throwaway Tansu; its ``_fluxa_async_sql`` and
``_fluxa_async_sql_failed`` have 6 partitions, made by ``fluxa_migrate``'s
``plan_kafka``/``apply_kafka``), MariaDB and Redis Stack. Each test publishes a seeded
random workload with ``flush_async(update_cache=False)`` to one database and applies the
same flushes with ``flush()`` to another; consumer processes
(``tests/reliability/async_worker.py``) apply the records; then every row of every table
of both databases, and every after-hook call, must be the same.

``FLUXA_ASYNC_SEED`` replays a run (the seed is in the failure message and the summary).
"""

from __future__ import annotations

import collections
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import Producer, TopicPartition

from fluxa_django import AsyncFlushOptions, Engine, Registry
from fluxa_django.config import ASYNC_SQL_FAILED_TOPIC, ASYNC_SQL_TOPIC
from fluxa_django.migrate import apply_alters, plan_mysql
from fluxa_django.migrate.kafka import apply_kafka, plan_kafka
from fluxa_django.runtime.async_flush import namespace_of
from fluxa_django.testing.plugin import clear_redis_db
from tests.cache_helpers import wait_until
from tests.reliability.async_entities import WORKLOAD
from tests.reliability.async_helpers import (
    Applier,
    Consumer,
    Workload,
    build_engine,
    databases,
    generated,
    hook_calls,
    install_hooks,
    logged_calls,
    providers,
    scalar,
    table_rows,
)
from tests.reliability.summary import record
from tests.test_kafka import Tansu

SEED = int(os.environ.get("FLUXA_ASYNC_SEED", str(time.time_ns() % 1_000_000)))
KILLS = 6  # SIGKILLs of the consumer while it applies the 10,000 writes


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Tansu broker of this module, with the async flush topics on 6 partitions."""
    tansu = Tansu(tmp_path_factory.mktemp("tansu"))
    tansu.start()
    try:
        registry = Registry()
        registry.register_kafka([tansu.address], "events")
        registry.register_async_flush("events", AsyncFlushOptions(topic_partitions=6))
        engine = registry.validate()
        try:
            made = apply_kafka(engine, plan_kafka(engine).safe)
            assert made == 2, "both topics created"
        finally:
            engine.close()
        generated()  # the consumer processes import the generated providers
        yield tansu.address
    finally:
        tansu.stop()


@dataclass
class Pair:
    """Two databases: ``a`` gets the workload through Kafka, ``b`` synchronously."""

    broker: str
    a: str
    b: str
    engine_a: Engine
    engine_b: Engine
    group: str
    app: str
    tmp: Path
    started: list[Consumer] = field(default_factory=list)

    def consumer(self, **options: Any) -> Consumer:
        consumer = Consumer(
            self.a, self.broker, self.group, self.app, self.tmp / "hooks-a.log", self.tmp, **options
        )
        self.started.append(consumer)
        return consumer

    def publish(self, workload: Workload) -> Applier:
        """The workload through ``flush_async`` to ``a`` and ``flush`` to ``b`` (hooks
        recorded in ``b``: the after-hooks of the synchronous flushes)."""
        remove = install_hooks(self.tmp / "hooks-b.log")
        try:
            to_a = Applier(self.engine_a, synchronous=False)
            to_b = Applier(self.engine_b, synchronous=True)
            for ops in workload.flushes:
                to_a.apply(ops)
                to_b.apply(ops)
        finally:
            remove()
        return to_b

    def assert_same(self) -> dict[str, int]:
        """Every row of every table equal in both databases; the same hook calls."""
        counts = {}
        for table in WORKLOAD:
            rows_a, rows_b = table_rows(self.a, table), table_rows(self.b, table)
            assert len(rows_a) == len(rows_b), f"{table}: {len(rows_a)} != {len(rows_b)} rows"
            diff = [(x, y) for x, y in zip(rows_a, rows_b, strict=True) if x != y][:3]
            assert not diff, f"{table} differs (seed {SEED}): {diff}"
            counts[table] = len(rows_a)
        calls_a, calls_b = hook_calls(self.a), hook_calls(self.b)
        extra = collections.Counter(calls_a) - collections.Counter(calls_b)
        missing = collections.Counter(calls_b) - collections.Counter(calls_a)
        assert not extra and not missing, (
            f"hook calls differ (seed {SEED}): duplicated {list(extra.items())[:5]}, "
            f"lost {list(missing.items())[:5]}"
        )
        assert scalar(self.a, "SELECT COUNT(*) FROM `_fluxa_async_hooks`") == 0
        counts["hook calls"] = len(calls_a)
        return counts


@pytest.fixture
def pair(broker: str, tmp_path: Path) -> Iterator[Pair]:
    with databases(2) as (a, b):
        app = f"async-{a}"
        engine_a = build_engine(a, broker, f"group-{a}", app)
        engine_b = build_engine(b, broker, f"group-{b}", f"sync-{b}")
        try:
            for engine in (engine_a, engine_b):
                apply_alters(engine, plan_mysql(engine).alters)
            clear_redis_db(engine_a.redis().client)
            made = Pair(broker, a, b, engine_a, engine_b, f"group-{a}", app, tmp_path)
            try:
                yield made
            finally:
                for consumer in made.started:
                    if consumer.alive:  # a test that failed: not left behind
                        consumer.kill()
        finally:
            clear_redis_db(engine_a.redis().client)
            engine_a.close()
            engine_b.close()


def dead_letters(broker: str, namespace: str | None) -> list[dict[str, Any]]:
    """The records of the dead-letter topic (of ``namespace``; ``None``: without one)."""
    consumer = KafkaConsumer(
        {
            "bootstrap.servers": broker,
            "group.id": f"dlq-{time.time_ns()}",
            "enable.auto.commit": False,
        }
    )
    found: list[dict[str, Any]] = []
    try:
        topic = consumer.list_topics(ASYNC_SQL_FAILED_TOPIC, timeout=10).topics[
            ASYNC_SQL_FAILED_TOPIC
        ]
        parts = [TopicPartition(ASYNC_SQL_FAILED_TOPIC, p, 0) for p in topic.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, 10)[1] for p in parts}
        consumer.assign(parts)
        left = sum(ends.values())
        deadline = time.monotonic() + 20
        while left > 0 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            left -= 1
            pairs: Any = msg.headers() or []
            headers = {str(k): bytes(v or b"").decode() for k, v in pairs}
            if headers.get("namespace") == namespace:
                found.append({"value": msg.value(), **headers})
        assert left <= 0, "the dead-letter topic was not read to its end"
    finally:
        consumer.close()
    return found


# -- killed consumers ----------------------------------------------------------------------------


def test_a_consumer_killed_again_and_again_applies_every_write_once(pair: Pair) -> None:
    """10,000 writes (inserts, updates, soft and hard deletes on four tables, three records
    that fail for good), a consumer stopped by SIGTERM, then SIGKILLed at random points six
    times and restarted
    (half of them never committing offsets to Kafka, so that the next one replays what
    they read): MySQL ends as the synchronous flushes left the other database, hooks
    once each, no record dead-lettered but the three."""
    rng = random.Random(SEED)
    workload = Workload(10_000, SEED, poison=3)
    started = time.monotonic()
    synchronous = pair.publish(workload)
    published = time.monotonic() - started
    assert synchronous.failed == 3, "the poison flushes fail when flushed synchronously too"

    # SIGTERM first: the consumer ends the batch it is applying and stops cleanly
    consumer = pair.consumer(batch=5)
    assert consumer.wait_for(lambda e: e["applied"] > 0, 30), consumer.output()
    consumer.terminate()
    terminated = consumer.finish(15)
    assert terminated["applied"] > 0 and terminated["lag"] > 0, "stopped halfway"

    kills: list[dict[str, Any]] = []
    while len(kills) < KILLS:
        # every other consumer commits no offset to Kafka: the next one replays all it
        # read, and MySQL's record of the applied offsets alone keeps writes single
        consumer = pair.consumer(batch=5, kafka_commit=len(kills) % 2 == 0)
        # killed while applying: after its first batch, at a random point of the next ones
        # (in a transaction, between commits, running hooks, committing offsets...)
        started_applying = consumer.wait_for(lambda e: e["applied"] + e["skipped"] > 0, 30)
        assert started_applying, consumer.output()
        time.sleep(rng.uniform(0.0, 0.3))
        assert consumer.alive, f"the consumer ended before its kill: {consumer.output()}"
        consumer.kill()
        done = scalar(pair.a, "SELECT COUNT(*) FROM `AsyncHookCallEntity`")
        last = consumer.last
        kills.append({"lag": last.get("lag"), "skipped": last.get("skipped"), "hook_rows": done})
    final = pair.consumer(batch=5).finish(120)
    # work was left after the last kill, so every consumer was killed while applying
    assert final["applied"] > 0, "the last kill left work for the last consumer"
    elapsed = time.monotonic() - started

    counts = pair.assert_same()
    # hook side effects outside the context: at least once (a kill after a hook ran and
    # before its transaction committed runs it again)
    logged = collections.Counter(logged_calls(pair.tmp / "hooks-a.log"))
    expected = collections.Counter(hook_calls(pair.b))
    assert not expected - logged, "every hook was called"
    repeated = sum((logged - expected).values())
    # the poison records are in the dead-letter topic (at least once each)
    letters = dead_letters(pair.broker, namespace_of(pair.engine_a, "default"))
    poison = {op[2] for ops in workload.flushes for op in ops if op[0] == "poison"}
    assert {f["entity"] for f in letters} == {"AsyncEventEntity"}
    assert all("Duplicate entry" in f["error"] for f in letters), letters[0]["error"]
    assert len({f["flush"] for f in letters}) == len(poison) == 3
    # what the caches serve is what MySQL holds
    ctx = pair.engine_a.new_context()
    items = providers()["AsyncItemEntity"]
    rows = table_rows(pair.a, "AsyncItemEntity")
    served = items.get_by_ids(ctx, [r[0] for r in rows])
    assert [e.name for e in served] == [r[1] for r in rows]

    record(
        "async_killed_consumer",
        [
            f"async flush, killed consumer (seed {SEED}): {len(workload.flushes)} flushes, "
            f"{workload.records} records, 10,000 writes; {len(kills)} SIGKILLs; published in "
            f"{published:.1f} s, all applied {elapsed:.1f} s after the start; rows equal to "
            f"the synchronous database ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
            f"0 lost, 0 duplicated; {len(letters)} dead letter(s) for 3 poison records; "
            f"{repeated} hook call(s) repeated outside the context after kills; replayed "
            f"records skipped {[k['skipped'] for k in kills]} + {final['skipped']}; lag in "
            f"the last progress line before each kill {[k['lag'] for k in kills]}",
        ],
        {
            "seed": SEED,
            "kills": len(kills),
            "records": workload.records,
            "counts": counts,
            "dead_letters": len(letters),
            "repeated_hook_side_effects": repeated,
            "seconds": round(elapsed, 1),
        },
    )


def test_two_consumers_on_six_partitions_share_the_work(pair: Pair) -> None:
    """Two consumer processes of one group split the 6 partitions and apply a workload
    while it is published; halfway one is killed (its partitions move to the other) and
    started again (they are split again): the same end state as the synchronous flushes."""
    rng = random.Random(SEED + 1)
    workload = Workload(3_000, SEED + 1)
    first = pair.consumer(batch=20, idle_timeout=4.0)
    assert first.wait_for(lambda e: len(e["partitions"]) == 6, 30), first.output()
    second = pair.consumer(batch=20, idle_timeout=4.0)
    assert second.wait_for(lambda e: bool(e["partitions"]), 30), second.output()
    assert first.wait_for(lambda e: 0 < len(e["partitions"]) < 6, 30), first.output()
    split = (first.partitions(), second.partitions())
    remove = install_hooks(pair.tmp / "hooks-b.log")
    try:
        to_a = Applier(pair.engine_a, synchronous=False)
        to_b = Applier(pair.engine_b, synchronous=True)
        kill_at = rng.randrange(len(workload.flushes) // 3, 2 * len(workload.flushes) // 3)
        for number, ops in enumerate(workload.flushes):
            to_a.apply(ops)
            to_b.apply(ops)
            if number == kill_at:
                first.partitions()  # its last events
                killed = first.last.get("applied", 0)
                first.kill()
                again = pair.consumer(batch=20, idle_timeout=4.0)
    finally:
        remove()
    stats = [second.finish(120), again.finish(120)]
    applied = [killed, *(s["applied"] for s in stats)]
    assert not set(split[0]) & set(split[1]) and len(split[0]) + len(split[1]) == 6, split
    assert all(a > 0 for a in applied[:2]), f"both applied records: {applied}"
    counts = pair.assert_same()
    record(
        "async_two_consumers",
        [
            f"async flush, two consumers on 6 partitions (seed {SEED + 1}): "
            f"{workload.records} records applied while published, partitions split "
            f"{split}; records applied per process {applied} (the first killed halfway, "
            f"then started again); the same end state ({counts['hook calls']} hook calls)"
        ],
        {"seed": SEED + 1, "applied": applied, "split": split, "counts": counts},
    )


# -- dead letters, foreign and undecodable records ------------------------------------------------


def test_a_record_that_fails_for_good_is_dead_lettered_and_the_rest_continue(
    pair: Pair,
) -> None:
    notes = providers()["AsyncNoteEntity"]
    ctx = pair.engine_a.new_context()
    for id_ in (1, 2):
        notes.new_with_id(ctx, id_).title = f"note {id_}"
    ctx.flush_async(update_cache=False)
    clash = notes.new_with_id(pair.engine_a.new_context(), 2)  # the id is taken
    clash.title = "clash"
    clash._ctx.flush_async(update_cache=False)
    # a record no application can read, and one of another application on the topic
    garbage = f"not a record {time.time_ns()}".encode()
    producer = Producer({"bootstrap.servers": pair.broker})
    producer.produce(ASYNC_SQL_TOPIC, garbage, b"default:AsyncNoteEntity")
    producer.flush(10)
    other = build_engine(pair.a, pair.broker, "other-group", "another-app")
    try:
        foreign = notes.new_with_id(other.new_context(), 7)
        foreign.title = "another application's"
        foreign._ctx.flush_async(update_cache=False)
    finally:
        other.close()
    after = notes.new_with_id(ctx, 3)
    after.title = "after"
    ctx.flush_async(update_cache=False)

    stats = pair.consumer().finish(60)
    assert (stats["applied"], stats["failed"], stats["undecodable"]) == (2, 1, 1), stats
    assert stats["foreign"] >= 1
    assert [(r[0], r[1]) for r in table_rows(pair.a, "AsyncNoteEntity")] == [
        (1, "note 1"),
        (2, "note 2"),
        (3, "after"),
    ]
    (letter,) = dead_letters(pair.broker, namespace_of(pair.engine_a, "default"))
    assert letter["entity"] == "AsyncNoteEntity" and "Duplicate entry" in letter["error"]
    assert letter["topic"] == ASYNC_SQL_TOPIC and int(letter["offset"]) >= 0
    assert b"clash" in letter["value"]
    unreadable = [d for d in dead_letters(pair.broker, None) if d["value"] == garbage]
    assert unreadable and "undecodable" in unreadable[0]["error"]


# -- what readers see before and after the consumer ----------------------------------------------


def test_readers_see_update_cache_true_at_once_and_false_after_the_consumer(pair: Pair) -> None:
    """Another process's reads (its own local tier) through ``get_by_id``: a write published
    with ``update_cache=False`` shows only once the consumer applied it (a "not found" it
    cached meanwhile included); with ``update_cache=True`` at once, before MySQL has it."""
    items = providers()["AsyncItemEntity"]
    ctx = pair.engine_a.new_context()
    kept = items.new_with_id(ctx, 1)
    kept.name, kept.stock = "kept", 1
    ctx.flush()
    reader = build_engine(pair.a, pair.broker, pair.group, pair.app)  # another process's tiers

    def stock(id_: int) -> int | None:
        found = items.get_by_id(reader.new_context(), id_)
        return None if found is None else int(found.stock)

    def mysql_stock() -> Any:
        return scalar(pair.a, "SELECT `stock` FROM `AsyncItemEntity` WHERE `id` = 1")

    try:
        assert stock(1) == 1  # now cached by the reader (local and Redis)
        hidden = items.new_with_id(ctx, 2)
        hidden.name, hidden.stock = "hidden", 2
        kept.stock = 10
        ctx.flush_async(update_cache=False)
        assert (stock(1), stock(2), mysql_stock()) == (1, None, 1)  # "not found" cached
        pair.consumer().finish(60)
        wait_until(lambda: (stock(1), stock(2)) == (10, 2), timeout=5.0)
        assert mysql_stock() == 10

        kept.stock = 100
        ctx.flush_async(update_cache=True)
        wait_until(lambda: stock(1) == 100, timeout=5.0)  # the reader's local copy evicted
        assert mysql_stock() == 10, "MySQL has it only once the consumer applied it"
        pair.consumer().finish(60)
        assert mysql_stock() == 100 and stock(1) == 100
    finally:
        reader.close()
