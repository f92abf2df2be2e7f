"""Kafka topics and consumer groups in fluxa_migrate, against real Tansu brokers.

Creating and altering topics runs on the shared broker (names of this run only, nothing
else applied there); the deletion rules run on a throwaway broker of their own, since
``--allow-destructive`` deletes every topic no definition owns."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]
from django.core.management import call_command
from django.test import override_settings

from fluxa_django import AsyncFlushOptions, KafkaConsumerGroup, KafkaPoolOptions, KafkaTopic
from fluxa_django.config import ASYNC_SQL_FAILED_TOPIC, ASYNC_SQL_GROUP, ASYNC_SQL_TOPIC
from fluxa_django.engine import Engine
from fluxa_django.migrate.kafka import (
    KafkaChange,
    _loses_records,
    apply_kafka,
    ignored,
    plan_kafka,
)
from fluxa_django.registry import Registry
from tests.services import KAFKA_BROKER, REDIS_ADDRESS, REDIS_TEST_DB, mysql_uri
from tests.test_kafka import (
    SESSION_MS,
    Tansu,
    admin_of,
    create_topic,
    names,
    tansu,
    unique,
)

__all__ = ["names", "tansu"]  # fixtures


@pytest.fixture(autouse=True)
def fresh_engine() -> Iterator[None]:
    """fluxa_migrate builds the engine of the overridden settings; the session's is kept."""
    from fluxa_django import conf

    saved = conf._engine
    conf._engine = None
    yield
    conf.reset_engine()
    conf._engine = saved


def engine_with(address: str, *topics: KafkaTopic, **options: Any) -> Engine:
    registry = Registry()
    registry.register_kafka([address], "events", KafkaPoolOptions(**options))
    for topic in topics:
        registry.register_kafka_topic(topic)
    return registry.validate()


def mine(changes: list[KafkaChange], *topics: str) -> list[str]:
    return [str(c) for c in changes if c.name in topics]


def configs_of(address: str, topic: str) -> dict[str, str]:
    admin = admin_of(address)
    (future,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    return {k: v.value for k, v in future.result(15).items()}


# -- rules (no broker) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "old", "new", "loses"),
    [
        ("retention.ms", "604800000", "86400000", True),
        ("retention.ms", "86400000", "604800000", False),
        ("retention.ms", "-1", "86400000", True),
        ("retention.ms", "86400000", "-1", False),
        ("retention.bytes", None, "1000", True),
        ("cleanup.policy", "delete", "compact", True),
        ("cleanup.policy", "compact,delete", "delete,compact", False),
        ("max.message.bytes", "1000", "10", False),
        ("compression.type", None, "zstd", False),
    ],
)
def test_which_config_changes_can_delete_records(
    key: str, old: str | None, new: str, loses: bool
) -> None:
    assert bool(_loses_records(key, old, new)) is loses


def test_ignored_names_and_patterns() -> None:
    assert ignored("legacy", ["legacy"])
    assert ignored("keep.orders", ["keep.*"])
    assert not ignored("orders", ["keep.*", "legacy"])


# -- create and alter (shared broker) ----------------------------------------------------------


def test_topics_are_created_then_altered_and_partition_changes_held_back(
    names: dict[str, list[str]],
) -> None:
    topic = unique("m")
    names["topics"].append(topic)
    definition = (
        KafkaTopic(topic, "events").partitions(2).retention_ms(3_600_000).cleanup_policy("delete")
    )
    engine = engine_with(KAFKA_BROKER, definition)
    try:
        plan = plan_kafka(engine)
        assert mine(plan.safe, topic) == [
            f"[events] create topic {topic} (2 partition(s), replication factor 1, "
            "cleanup.policy=delete, retention.ms=3600000)"
        ]
        assert apply_kafka(engine, [c for c in plan.safe if c.name == topic]) == 1
        metadata = admin_of(KAFKA_BROKER).list_topics(topic, timeout=10)
        assert len(metadata.topics[topic].partitions) == 2
        assert configs_of(KAFKA_BROKER, topic)["retention.ms"] == "3600000"
        assert mine(plan_kafka(engine).changes, topic) == [], "nothing left to do"
    finally:
        engine.close()

    changed = (
        KafkaTopic(topic, "events")
        .partitions(4)
        .replication_factor(3)
        .retention_ms(7_200_000)
        .cleanup_policy("delete")
        .max_message_bytes(2_000_000)
    )
    engine = engine_with(KAFKA_BROKER, changed)
    try:
        plan = plan_kafka(engine)
        assert mine(plan.safe, topic) == [
            f"[events] topic {topic}: max.message.bytes (not set) -> 2000000",
            f"[events] topic {topic}: retention.ms 3600000 -> 7200000",
        ]
        assert mine(plan.held_back, topic) == [
            f"[events] topic {topic}: partitions 2 -> 4 -- the broker does not support "
            "adding partitions (CreatePartitions)",
            f"[events] topic {topic}: replication factor 1 -> 3 -- changing the replication "
            "factor needs a partition reassignment (kafka-reassign-partitions), which "
            "fluxa_migrate does not do",
        ]
        assert mine(plan.destructive, topic) == []
        assert apply_kafka(engine, [c for c in plan.changes if c.name == topic]) == 2
        configs = configs_of(KAFKA_BROKER, topic)
        assert (configs["retention.ms"], configs["max.message.bytes"]) == ("7200000", "2000000")
        metadata = admin_of(KAFKA_BROKER).list_topics(topic, timeout=10)
        assert len(metadata.topics[topic].partitions) == 2, "a held-back change is not made"
    finally:
        engine.close()

    shorter = KafkaTopic(topic, "events").partitions(1).retention_ms(60_000)
    engine = engine_with(KAFKA_BROKER, shorter)
    try:
        plan = plan_kafka(engine)
        assert mine(plan.destructive, topic) == [
            f"[events] topic {topic}: retention.ms 7200000 -> 60000 -- records older/beyond "
            "the new limit are deleted",
        ]
        assert mine(plan.held_back, topic) == [
            f"[events] topic {topic}: partitions 2 -> 1 -- Kafka cannot remove partitions "
            "(recreate the topic to have fewer)"
        ]
    finally:
        engine.close()


def test_a_pool_without_definitions_is_not_managed() -> None:
    engine = engine_with(KAFKA_BROKER)
    try:
        assert plan_kafka(engine).changes == []
    finally:
        engine.close()


# -- deleting (a broker of its own) ------------------------------------------------------------


def commit_offset(address: str, group: str, topic: str) -> None:
    """Give ``group`` a committed offset (the broker lists a group once it has one)."""
    consumer = Consumer({"bootstrap.servers": address, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    finally:
        consumer.close()


def member_of(address: str, group: str, topic: str) -> Consumer:
    """A consumer that joined ``group`` and stays in it (close it)."""
    consumer = Consumer(
        {
            "bootstrap.servers": address,
            "group.id": group,
            "session.timeout.ms": SESSION_MS,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + 15
    while not consumer.assignment():
        consumer.poll(0.2)
        assert time.monotonic() < deadline, "the member did not join"
    consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    return consumer


def fluxa_setting(db: str, address: str, partitions: int = 1) -> dict[str, Any]:
    return {
        "POOLS": {
            "default": {
                "mysql": {"uri": mysql_uri(db)},
                "redis": f"{REDIS_ADDRESS}:{REDIS_TEST_DB}",
            },
            "events": {
                "kafka": {
                    "brokers": [address],
                    "ignored_topics": ["keep.*"],
                    "ignored_consumer_groups": ["ignored-group"],
                    "topics": [
                        {
                            "name": "orders",
                            "partitions": partitions,
                            "configs": {"retention.ms": 86_400_000},
                        }
                    ],
                    "consumer_groups": [{"name": "billing", "topics": ["orders"]}],
                }
            },
        },
        "ENTITIES": ["tests.migrate_entities"],
        "ASYNC_FLUSH": {"kafka_pool": "events", "topic_partitions": 3},
    }


def migrate(*args: str) -> str:
    out = io.StringIO()
    call_command("fluxa_migrate", *args, "--noinput", stdout=out)
    from fluxa_django import conf

    conf.reset_engine()
    return out.getvalue()


def topics_on(address: str) -> dict[str, int]:
    metadata = admin_of(address).list_topics(timeout=10)
    return {name: len(t.partitions) for name, t in metadata.topics.items()}


def groups_on(address: str) -> set[str]:
    admin = admin_of(address)  # alive until its future is done
    listed = admin.list_consumer_groups().result(15)
    return {g.group_id for g in listed.valid}


def test_migrate_plans_creates_and_deletes_only_what_it_may(tansu: Tansu, mysql_db: str) -> None:
    address = tansu.address
    for name in ("legacy", "__internal", "keep.me", "billing-input"):
        create_topic(address, name)
    # (Tansu lists a group by its committed offsets: on a topic that stays)
    commit_offset(address, "old-group", "keep.me")
    commit_offset(address, "ignored-group", "keep.me")
    commit_offset(address, "billing", "keep.me")  # registered: owned
    active = member_of(address, "active-group", "keep.me")
    try:
        with override_settings(FLUXA=fluxa_setting(mysql_db, address)):
            out = migrate("--plan")
            expected = [
                "Kafka changes (3):",
                "  [events] create topic _fluxa_async_sql (3 partition(s), replication factor "
                "the broker's default)",
                "  [events] create topic _fluxa_async_sql_failed (3 partition(s), replication "
                "factor the broker's default)",
                "  [events] create topic orders (1 partition(s), replication factor 1, "
                "retention.ms=86400000)",
                "Kafka destructive changes (3):",
                "  [events] delete consumer group old-group -- no definition owns it; its "
                "committed offsets are lost",
                "  [events] delete topic billing-input -- no definition owns it; its records "
                "are lost",
                "  [events] delete topic legacy -- no definition owns it; its records are lost",
                "Kafka changes held back (not made) (1):",
                "  [events] delete consumer group active-group -- no definition owns it, but "
                "it has members (state STABLE)",
                "--plan: nothing applied.",
            ]
            lines = out.splitlines()
            start = lines.index("Kafka changes (3):")
            assert lines[start:] == expected, out
            assert "CREATE TABLE `ShopItem`" in out, "the MySQL section is still there"
            before = topics_on(address)
            assert "orders" not in before

            out = migrate()
            assert "Applying Kafka 1/3 [events] create topic _fluxa_async_sql" in out
            assert "3 destructive change(s) held back" in out
            after = topics_on(address)
            assert after[ASYNC_SQL_TOPIC] == after[ASYNC_SQL_FAILED_TOPIC] == 3
            assert after["orders"] == 1 and "legacy" in after
            assert "old-group" in groups_on(address)

            out = migrate("--allow-destructive")
            assert "Applying Kafka 3/3 [events] delete topic legacy" in out
            after = topics_on(address)
            assert {"legacy", "billing-input"}.isdisjoint(after)
            assert {"__internal", "keep.me", "orders", ASYNC_SQL_TOPIC} <= set(after)
            groups = groups_on(address)
            assert "old-group" not in groups
            assert {"ignored-group", "billing", "active-group"} <= groups
            assert ASYNC_SQL_GROUP not in groups  # defined, never used yet

        # more partitions: Tansu cannot add them; the change is held back, not failed
        with override_settings(FLUXA=fluxa_setting(mysql_db, address, partitions=4)):
            out = migrate()
            assert (
                "  [events] topic orders: partitions 1 -> 4 -- the broker does not support "
                "adding partitions (CreatePartitions)"
            ) in out.splitlines()
            assert "Kafka changes held back (not made) (2):" in out
            assert topics_on(address)["orders"] == 1
    finally:
        active.close()
    with override_settings(FLUXA=fluxa_setting(mysql_db, address)):
        out = migrate("--allow-destructive")
        assert "delete consumer group active-group" in out, "deleted once it has no member"
        assert "active-group" not in groups_on(address)


def test_async_flush_definitions() -> None:
    registry = Registry()
    registry.register_kafka(["127.0.0.1:9092"], "events")
    registry.register_async_flush(
        "events", AsyncFlushOptions(topic_partitions=6, replication_factor=3)
    )
    topics = registry.kafka_topic_definitions()
    assert sorted(topics) == [("events", ASYNC_SQL_TOPIC), ("events", ASYNC_SQL_FAILED_TOPIC)]
    assert {(t.partition_count, t.replication) for t in topics.values()} == {(6, 3)}
    group = registry.kafka_group_definitions()[ASYNC_SQL_GROUP]
    assert (group.pool, group.topic_names) == ("events", (ASYNC_SQL_TOPIC,))
    # a registered group of that name wins
    registry.register_kafka_consumer_group(
        KafkaConsumerGroup(ASYNC_SQL_GROUP, "events").topics(ASYNC_SQL_TOPIC).session_timeout(6000)
    )
    assert registry.kafka_group_definitions()[ASYNC_SQL_GROUP].session_timeout_ms == 6000


def test_migrate_leaves_unreachable_kafka_as_a_command_error(mysql_db: str, tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    dead = Tansu(tmp_path)  # never started: nothing listens on its port
    setting = fluxa_setting(mysql_db, dead.address)
    setting["POOLS"]["events"]["kafka"]["connect_timeout"] = 1
    setting["POOLS"]["events"]["kafka"]["request_timeout"] = 1
    with override_settings(FLUXA=setting):
        started = time.monotonic()
        with pytest.raises(CommandError, match=r"kafka pool 'events' \(127\.0\.0\.1:\d+\)"):
            migrate("--plan")
        assert time.monotonic() - started < 5
