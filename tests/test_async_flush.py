"""``ctx.flush_async``: the request side (records on ``_fluxa_async_sql``, caches at once).

Real MariaDB, Redis Stack and the Tansu broker; each test has its own database, so the
records it reads back are told apart by their flush id and namespace.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from fluxa_django import Context, Engine, PoolError, Registry
from fluxa_django.conf import entity_classes
from fluxa_django.config import ASYNC_SQL_FAILED_TOPIC, ASYNC_SQL_TOPIC, AsyncFlushOptions
from fluxa_django.migrate import apply_alters, plan_mysql
from fluxa_django.runtime import codec
from fluxa_django.runtime.async_consume import AsyncConsumer, Stats
from fluxa_django.runtime.async_flush import (
    AsyncRecord,
    namespace_of,
    record_namespace,
    records_of,
)
from fluxa_django.runtime.codec import _ext
from fluxa_django.runtime.provider import ProviderBase
from fluxa_django.testing.plugin import clear_redis_db
from tests.generated import (
    CategoryEntity,
    CategoryEntityProvider,
    ProductEntity,
    ProductEntityProvider,
    Status,
)
from tests.services import KAFKA_BROKER, REDIS_ADDRESS, REDIS_TEST_DB, mysql_uri


@pytest.fixture
def engine(mysql_db: str) -> Iterator[Engine]:
    admin = AdminClient({"bootstrap.servers": KAFKA_BROKER})
    live = admin.list_topics(timeout=5).topics
    missing = [t for t in (ASYNC_SQL_TOPIC, ASYNC_SQL_FAILED_TOPIC) if t not in live]
    if missing:  # (one partition: Tansu cannot add partitions later)
        for future in admin.create_topics([NewTopic(t, 1, 1) for t in missing]).values():
            try:
                future.result(10)
            except Exception as exc:  # created meanwhile by another run
                if "already exists" not in str(exc).lower():
                    raise
    registry = Registry()
    registry.set_option("app_name", f"async-{mysql_db}")
    registry.register_mysql(mysql_uri(mysql_db))
    registry.register_redis(REDIS_ADDRESS, REDIS_TEST_DB)
    registry.register_redis(REDIS_ADDRESS, 0, "search")
    registry.register_local_cache("default", 100)
    registry.register_kafka([KAFKA_BROKER], "events")
    registry.register_async_flush(
        "events", AsyncFlushOptions(topic_partitions=1, consumer_group=f"async-{mysql_db}")
    )
    registry.register_entity(*entity_classes(["tests.entities"]))
    built = registry.validate()
    apply_alters(built, plan_mysql(built).alters)
    clear_redis_db(built.redis().client)
    yield built
    clear_redis_db(built.redis().client)
    built.close()
    for future in admin.delete_consumer_groups([f"async-{mysql_db}"]).values():
        with contextlib.suppress(Exception):  # never joined: no group
            future.result(10)


def _records_since(engine: Engine, offsets: dict[int, int], count: int) -> list[AsyncRecord]:
    """The first ``count`` async flush records of ``engine``'s data produced after
    ``offsets`` (partition -> end offset); other runs' records are skipped."""
    namespace = namespace_of(engine, "default")
    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA_BROKER,
            "group.id": f"t-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(ASYNC_SQL_TOPIC, p, o) for p, o in offsets.items()])
        found: list[AsyncRecord] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(found) < count:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            try:
                record = AsyncRecord.decode(msg.value() or b"")
            except ValueError:  # another run's record of an older format
                continue
            if record.namespace == namespace:
                assert msg.key() == record.table.encode(), "records are keyed by their table"
                found.append(record)
        return found
    finally:
        consumer.close()


def _end_offsets() -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": KAFKA_BROKER, "group.id": f"t-{uuid.uuid4().hex}"})
    try:
        topic = consumer.list_topics(ASYNC_SQL_TOPIC, timeout=5).topics[ASYNC_SQL_TOPIC]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(ASYNC_SQL_TOPIC, p), timeout=5)[1]
            for p in topic.partitions
        }
    finally:
        consumer.close()


def _dune(ctx: Context) -> tuple[CategoryEntity, ProductEntity]:
    """A new category "Books" and a new product "Dune" in it (not flushed)."""
    books = CategoryEntityProvider.new(ctx)
    books.name = "Books"
    dune = ProductEntityProvider.new(ctx)
    dune.name, dune.price, dune.category, dune.status = "Dune", 9.5, books, Status.ACTIVE
    return books, dune


def test_one_record_per_table_with_the_flush_statements(engine: Engine) -> None:
    ctx = engine.new_context()
    before = _end_offsets()
    books, dune = _dune(ctx)
    ctx.flush_async(update_cache=False)
    assert ctx.tracked == []
    records = _records_since(engine, before, 2)
    by_table = {r.table: r for r in records}
    assert set(by_table) == {"CategoryEntity", "ProductEntity"}
    assert len({r.flush_id for r in records}) == 1
    category = by_table["CategoryEntity"]
    assert category.key == b"CategoryEntity"
    assert [row[0] for row in category.inserted] == [books.id]
    [(sql, args)] = category.all_statements()
    assert sql.startswith("INSERT INTO `CategoryEntity`") and books.id in args and "Books" in args
    # update_cache=False: MySQL and the caches know nothing yet, nor the publishing context
    assert engine.mysql().query("SELECT COUNT(*) FROM ProductEntity") == [(0,)]
    assert ProductEntityProvider.get_by_id(engine.new_context(), dune.id) is None
    assert ProductEntityProvider.get_by_id(ctx, dune.id) is None
    assert CategoryEntityProvider.get_by_id(ctx, books.id) is None


def test_update_cache_true_reads_your_writes_before_mysql(engine: Engine) -> None:
    ctx = engine.new_context()
    _, dune = _dune(ctx)
    ctx.flush()
    dune.price = 12.25
    ctx.flush_async(update_cache=True)
    assert engine.mysql().query("SELECT price FROM ProductEntity") != [(12.25,)]
    fresh = ProductEntityProvider.get_by_id(engine.new_context(), dune.id)
    assert fresh is not None and fresh.price == 12.25  # the Redis row cache has it


def test_changes_that_plan_to_nothing_publish_nothing_at_once(engine: Engine) -> None:
    """A tracked entity whose flush writes nothing (a soft delete again) publishes no
    record (an empty one was published), and flush_async returns at once (with no record
    at all it waited delivery_timeout + 1 s for acknowledgements)."""
    ctx = engine.new_context()
    _, dune = _dune(ctx)
    ctx.flush()
    dune.delete()
    ctx.flush()
    dune.delete()  # already soft-deleted: tracked, nothing to write
    assert ctx.tracked == [dune]
    assert records_of(ctx, update_cache=True)[0] == []
    started = time.monotonic()
    ctx.flush_async(update_cache=True)
    assert time.monotonic() - started < 1.0 and ctx.tracked == []


def test_the_namespace_is_read_without_decoding_the_record(engine: Engine) -> None:
    ctx = engine.new_context()
    books = CategoryEntityProvider.new(ctx)
    books.name = "Books"
    (record,), _ = records_of(ctx, update_cache=False)
    data = record.encode()
    assert record_namespace(data) == record.namespace == namespace_of(engine, "default")
    assert AsyncRecord.decode(data) == record
    for garbage in (b"", b"not msgpack \xc1", msgpack.packb([1, 2]), msgpack.packb({"v": 1})):
        assert record_namespace(garbage) is None
        with pytest.raises(ValueError, match="undecodable async flush record"):
            AsyncRecord.decode(garbage)
    # another version of the format: the namespace is still read (a consumer skips another
    # application's record whatever its version)
    other = msgpack.packb({"v": 9, "ns": "elsewhere"})
    assert record_namespace(other) == "elsewhere"
    with pytest.raises(ValueError, match="not a version 3"):
        AsyncRecord.decode(other)
    ctx.clear_flush()


class _Level(enum.IntEnum):
    HIGH = 2


def _record(inserted: list[list[Any]]) -> AsyncRecord:
    return AsyncRecord(
        flush_id="f" * 32,
        namespace="ns",
        pool="default",
        table="t",
        entity="TEntity",
        insert_sql="INSERT INTO `t` VALUES ",
        insert_row_sql="(%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        statements=[("UPDATE `t` SET `a`=%s WHERE `id`=%s", [Decimal("1.50"), 7])],
        update_cache=False,
        inserted=inserted,
        updated=[([7, datetime.date(2024, 1, 2)], [7, None], [1], False)],
        deleted=[],
    )


def test_new_rows_of_every_column_type_travel_as_columns_and_come_back_equal() -> None:
    """Inserted rows are encoded column by column (datetimes, dates and decimals as their
    text in one pass); the consumer gets back rows equal to the planned ones, of the same
    types, NULLs included, whatever mix a column holds."""
    moment = datetime.datetime(2024, 5, 1, 12, 30, 5, 123456)
    rows: list[list[Any]] = [
        [
            i,
            f"name {i} \u00e9\u4e2d",
            Decimal("4980.48") if i % 3 else None,
            moment + datetime.timedelta(days=i),
            datetime.date(2024, 1, 1 + i) if i % 2 else None,
            b"\x00\xff" * i,
            i % 2 == 0,
            ["a", "c"] if i % 2 else None,  # a SET column's value (sorted) or NULL
            1.5 * i if i % 4 else i,  # a float column that also holds ints
        ]
        for i in range(1, 9)
    ]
    record = _record([list(r) for r in rows])
    decoded = AsyncRecord.decode(record.encode())
    assert decoded == record
    for got, want in zip(decoded.inserted, rows, strict=True):
        assert [type(v) for v in got] == [type(v) for v in want]
    # values of subclasses of str and int (a str enum, an IntEnum): written as msgpack
    # writes them, as their str and int
    odd = _record([[1, Status.ACTIVE, _Level.HIGH], [2, "draft", 1]])
    assert AsyncRecord.decode(odd.encode()).inserted == [[1, "active", 2], [2, "draft", 1]]
    one = _record([rows[0]])
    assert AsyncRecord.decode(one.encode()).inserted == [rows[0]]
    none = _record([])
    assert AsyncRecord.decode(none.encode()).inserted == []


def test_a_record_of_the_previous_format_version_is_still_applied() -> None:
    """Version 2 (rows, not columns): records published before an upgrade decode."""
    record = _record([[1, "a", Decimal("2.50"), datetime.datetime(2024, 5, 1), None]])
    body = msgpack.unpackb(record.encode(), raw=False, strict_map_key=False, ext_hook=_ext)
    del body["columns"]
    body["v"], body["inserted"] = 2, record.inserted
    data = msgpack.packb(body, default=codec._default, use_bin_type=True)
    assert AsyncRecord.decode(data) == record


def test_forged_columns_are_refused_as_undecodable() -> None:
    record = _record([[1, "a", Decimal("2.50"), datetime.datetime(2024, 5, 1), None]])
    body = msgpack.unpackb(record.encode(), raw=False, strict_map_key=False, ext_hook=_ext)
    for columns in (
        [[[1, 2], ["a"]], {}],  # columns of different lengths
        [[[1], ["a"]], {1: 99}],  # an unknown mark
        [[[1], ["a"]], {5: 1}],  # a mark past the columns
        [[[1], ["not a decimal"]], {1: 1}],
        [[[1], ["2024-13-45"]], {1: 3}],
        "not columns",
    ):
        body["columns"] = columns
        data = msgpack.packb(body, default=codec._default, use_bin_type=True)
        with pytest.raises(ValueError, match="undecodable async flush record"):
            AsyncRecord.decode(data)


def test_a_failed_produce_raises_and_leaves_the_entities_dirty(mysql_db: str) -> None:
    registry = Registry()
    registry.register_mysql(mysql_uri(mysql_db))
    registry.register_redis(REDIS_ADDRESS, REDIS_TEST_DB)
    registry.register_redis(REDIS_ADDRESS, 0, "search")
    registry.register_local_cache("default", 100)
    registry.register_kafka(["127.0.0.1:1"], "events")
    registry.register_async_flush("events")
    registry.register_entity(*entity_classes(["tests.entities"]))
    engine = registry.validate(allow_unavailable=["events"])
    try:
        apply_alters(engine, plan_mysql(engine).alters)
        ctx = engine.new_context()
        books = CategoryEntityProvider.new(ctx)
        books.name = "Books"
        with pytest.raises(PoolError, match="events"):
            ctx.flush_async(update_cache=True)
        assert ctx.tracked == [books] and books.is_new
        assert CategoryEntityProvider.get_by_id(engine.new_context(), books.id) is None
    finally:
        engine.close()


# -- the consumer ----------------------------------------------------------------------------


def consume(engine: Engine, idle: float = 2.0) -> Stats:
    from tests import generated

    providers = {p.entity_name: p for p in vars(generated).values() if isinstance(p, ProviderBase)}
    consumer = AsyncConsumer(engine, providers, config={"session.timeout.ms": 3000})
    return consumer.run(idle_timeout=idle)


def test_the_consumer_applies_each_record_once(engine: Engine) -> None:
    calls: list[tuple[str, int, dict[str, object]]] = []
    CategoryEntityProvider.on_after_insert(lambda _c, e: calls.append(("insert", e.id, {})))
    CategoryEntityProvider.on_after_update(lambda _c, e, ch: calls.append(("update", e.id, ch)))
    CategoryEntityProvider.on_after_delete(lambda _c, e: calls.append(("delete", e.id, {})))
    try:
        ctx = engine.new_context()
        books = CategoryEntityProvider.new(ctx)
        books.name = "Books"
        games = CategoryEntityProvider.new(ctx)
        games.name = "Games"
        ctx.flush_async(update_cache=False)
        books.name = "Novels"
        games.delete()
        ctx.flush_async(update_cache=False)
        stats = consume(engine)
        assert stats.applied == 2 and stats.failed == 0
        rows = engine.mysql().query("SELECT id, name FROM CategoryEntity ORDER BY id")
        assert rows == [(books.id, "Novels")]
        assert sorted(calls, key=str) == sorted(
            [
                ("insert", books.id, {}),
                ("insert", games.id, {}),
                ("update", books.id, {"name": "Books"}),
                ("delete", games.id, {}),
            ],
            key=str,
        )
        assert engine.mysql().query("SELECT COUNT(*) FROM _fluxa_async_hooks") == [(0,)]
        # a replay from the start (new group, earliest offsets) applies nothing again
        calls.clear()
        again = consume_from_start(engine)
        assert again.applied == 0 and again.skipped == 2
        assert engine.mysql().query("SELECT id, name FROM CategoryEntity ORDER BY id") == rows
        assert calls == []
        # the cache serves what MySQL holds
        found = CategoryEntityProvider.get_by_id(engine.new_context(), books.id)
        assert found is not None and found.name == "Novels"
    finally:
        CategoryEntityProvider._after_insert = None
        CategoryEntityProvider._after_update = None
        CategoryEntityProvider._after_delete = None


def test_a_consumer_without_an_entitys_provider_still_keeps_its_caches_right(
    engine: Engine,
) -> None:
    """An entity missing from ``providers`` (here: an empty map) is found among the
    imported generated providers, so the cache entries of its rows are still replaced
    after the records are applied."""
    ctx = engine.new_context()
    _, dune = _dune(ctx)
    ctx.flush()
    warm = ProductEntityProvider.get_by_id(engine.new_context(), dune.id)  # cached now
    assert warm is not None and warm.price == 9.5
    dune.price = 12.25
    ctx.flush_async(update_cache=False)
    cached = ProductEntityProvider.get_by_id(engine.new_context(), dune.id)
    assert cached is not None and cached.price == 9.5, "not applied yet"
    consumer = AsyncConsumer(engine, {}, config={"session.timeout.ms": 3000})
    stats = consumer.run(idle_timeout=2.0)
    assert stats.applied == 1 and stats.failed == 0
    assert engine.mysql().query("SELECT price FROM ProductEntity") == [(12.25,)]
    found = ProductEntityProvider.get_by_id(engine.new_context(), dune.id)
    assert found is not None and found.price == 12.25


def consume_from_start(engine: Engine) -> Stats:
    """The same records read again from the start (the group's offsets deleted: a replay
    as after losing every Kafka offset commit)."""
    found = engine.registry.async_flush
    assert found is not None
    admin = AdminClient({"bootstrap.servers": KAFKA_BROKER})
    for future in admin.delete_consumer_groups([found[1].consumer_group]).values():
        future.result(10)
    return consume(engine)


def test_a_record_that_fails_for_good_is_dead_lettered_and_the_rest_continue(
    engine: Engine,
) -> None:
    ctx = engine.new_context()
    first = CategoryEntityProvider.new_with_id(ctx, 10)
    first.name = "First"
    ctx.flush_async(update_cache=False)
    clash = CategoryEntityProvider.new_with_id(engine.new_context(), 10)  # the same id
    clash.name = "Clash"
    clash._ctx.flush_async(update_cache=False)
    after = CategoryEntityProvider.new_with_id(ctx, 11)
    after.name = "After"
    ctx.flush_async(update_cache=False)
    stats = consume(engine)
    assert stats.failed == 1 and stats.applied == 2
    rows = engine.mysql().query("SELECT id, name FROM CategoryEntity ORDER BY id")
    assert rows == [(10, "First"), (11, "After")]
