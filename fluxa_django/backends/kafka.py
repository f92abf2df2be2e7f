"""Kafka pool over confluent-kafka: producing, consumer groups, admin access.

Bounds (``KafkaPoolOptions``, seconds): ``connect_timeout`` (2) bounds the set-up of
a broker connection (TCP, TLS, SASL) and a metadata request; ``request_timeout`` (10)
one broker request; ``delivery_timeout`` (10) a produced record, which librdkafka
acknowledges or fails within it (``message.timeout.ms``), so ``produce_sync`` returns
or raises within ``delivery_timeout`` + 1 s.

A pool whose brokers are all down fails fast: librdkafka reports it
(``_ALL_BROKERS_DOWN``), a background thread then asks the brokers for metadata
(at most ``connect_timeout``) and, while they stay away, fails the records waiting
in the queue instead of keeping them for ``delivery_timeout``; a produce then
raises ``PoolError`` after at most ``connect_timeout`` + 0.2 s, and the pool's
``Breaker`` makes the calls of the next 5 s raise at once. Once a metadata request
succeeds the pool is used again, without a restart.

Credentials (``sasl_password``) are never in a repr, a ``PoolError``/``ConfigError``
message or a log line: librdkafka's own log lines go to the ``fluxa_django.kafka``
logger through a filter that replaces the password.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from fluxa_django import metrics
from fluxa_django._fork import reset_in_child
from fluxa_django.backends.breaker import Breaker
from fluxa_django.config import KafkaConsumerGroup, KafkaPoolOptions
from fluxa_django.errors import ConfigError, PoolError
from fluxa_django.observe import OBSERVERS, QueryLog, notify

if TYPE_CHECKING:
    from types import TracebackType


_LOG = logging.getLogger("fluxa_django.kafka")
GRACE = (
    1.0  # seconds produce_sync waits past delivery_timeout (librdkafka scans timeouts each second)
)
POLL_INTERVAL = 0.1  # seconds between two polls of the producer's delivery thread
_PROBE_PAUSE = 0.5  # seconds between two metadata probes of a pool whose brokers are down
REPEAT_PAUSE = 60.0  # seconds a repeated librdkafka log line is not logged again
_NUMBERS = re.compile(r"\d+")

# Errors after which the brokers are considered away until a metadata request succeeds.
_DOWN = {KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION, KafkaError._RESOLVE}
# Delivery errors after which the producer is replaced: a fatal error, or a record not
# acknowledged in time although the brokers answer (an idempotent producer whose id a
# broker lost, after a restart without its state, retries that id for ever).
_STUCK = {
    KafkaError._MSG_TIMED_OUT,
    KafkaError._FATAL,
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.UNKNOWN_PRODUCER_ID,
    KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
}
# Consumer errors that polling again cannot fix.
_CONSUMER_FATAL = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError._AUTHENTICATION,
}

Value = bytes | bytearray | memoryview | str
Headers = Mapping[str, Value | None] | Sequence[tuple[str, Value | None]]
TopicPartitionKey = tuple[str, int]


class Positioned(Protocol):
    """What ``commit`` needs of a record (a ``KafkaRecord``, a Debezium event...)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One record: as produced (``produce_sync``, a delivery callback) or consumed."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp_ms: int | None = None  # milliseconds since the epoch (producer or broker time)

    @property
    def timestamp(self) -> datetime.datetime | None:
        """``timestamp_ms`` as an aware UTC datetime."""
        if self.timestamp_ms is None:
            return None
        return datetime.datetime.fromtimestamp(self.timestamp_ms / 1000, tz=datetime.UTC)

    def header(self, name: str) -> bytes | None:
        """The value of the first header called ``name`` (``None`` when there is none)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


def _record(msg: Message, sent: list[tuple[str, bytes | None]] | None = None) -> KafkaRecord:
    """A record from a consumed message, or from a delivery report (whose headers are
    the ``sent`` ones: librdkafka does not repeat them)."""
    kind, stamp = msg.timestamp()
    raw = msg.headers() or sent or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    headers = tuple((str(k), _bytes("header", v)) for k, v in pairs)
    return KafkaRecord(
        topic=str(msg.topic()),
        partition=int(msg.partition() or 0),
        offset=int(msg.offset() or 0),
        key=msg.key(),
        value=msg.value(),
        headers=headers,
        timestamp_ms=stamp if kind != 0 else None,  # 0: TIMESTAMP_NOT_AVAILABLE
    )


def _bytes(what: str, value: Value | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"kafka {what} must be bytes, str or None, got {type(value).__name__}")


def _headers(headers: Headers | None) -> list[tuple[str, bytes | None]] | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[str, bytes | None]] = []
    for name, value in items:
        if not isinstance(name, str):
            raise TypeError(f"kafka header names must be str, got {type(name).__name__}")
        out.append((name, _bytes(f"header {name!r}", value)))
    return out


def client_config(
    brokers: Sequence[str], options: KafkaPoolOptions, client_id: str = ""
) -> dict[str, Any]:
    """The librdkafka settings every client of a pool shares (credentials included:
    never log the result)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": ",".join(brokers),
        "socket.connection.setup.timeout.ms": int(options.connect_timeout * 1000),
        "socket.timeout.ms": max(int(options.request_timeout * 1000), 10),
        # a broker back after an outage is found within 2 s (librdkafka: up to 10 s)
        "reconnect.backoff.max.ms": 2000,
    }
    if client_id or options.client_id:
        conf["client.id"] = client_id or options.client_id
    mechanism = options.sasl_mechanism.upper()
    if mechanism:
        conf["security.protocol"] = "SASL_SSL" if options.tls else "SASL_PLAINTEXT"
        conf["sasl.mechanism"] = mechanism
        conf["sasl.username"] = options.sasl_user
        conf["sasl.password"] = options.sasl_password
    elif options.tls:
        conf["security.protocol"] = "SSL"
    else:
        conf["security.protocol"] = "PLAINTEXT"
    if options.tls and options.tls_ca_file:
        conf["ssl.ca.location"] = options.tls_ca_file
    return conf


def producer_config(options: KafkaPoolOptions) -> dict[str, Any]:
    """The producer's own settings (on top of ``client_config``)."""
    conf: dict[str, Any] = {
        "acks": options.required_acks,
        "linger.ms": options.producer_linger_ms,
        "message.timeout.ms": int(options.delivery_timeout * 1000),
        "request.timeout.ms": max(int(options.request_timeout * 1000), 1),
        # no duplicates from librdkafka's own retries (needs acks=all)
        "enable.idempotence": options.required_acks == -1,
    }
    if options.max_buffered_records:
        conf["queue.buffering.max.messages"] = options.max_buffered_records
    return conf


def heartbeat_ms(session_timeout_ms: int) -> int:
    """The heartbeat of a session: a third of it, at most 3 s."""
    return max(1, min(3000, session_timeout_ms // 3))


def group_config(group: KafkaConsumerGroup) -> dict[str, Any]:
    """A consumer group's settings (on top of ``client_config``).

    Offsets are committed by the caller (``commit``) unless the group has an
    ``auto_commit_interval``; a new group starts at the earliest offset.
    ``session_timeout`` (librdkafka's default: 45 s) also sets the heartbeat to a
    third of it (at most 3 s); ``rebalance_timeout`` is ``max.poll.interval.ms``.
    """
    conf: dict[str, Any] = {
        "group.id": group.name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": group.auto_commit_interval_ms > 0,
        "enable.partition.eof": False,
    }
    if group.auto_commit_interval_ms:
        conf["auto.commit.interval.ms"] = group.auto_commit_interval_ms
    if group.session_timeout_ms:
        conf["session.timeout.ms"] = group.session_timeout_ms
        conf["heartbeat.interval.ms"] = heartbeat_ms(group.session_timeout_ms)
    if group.rebalance_timeout_ms:
        conf["max.poll.interval.ms"] = group.rebalance_timeout_ms
    if group.fetch_max_bytes:
        conf["fetch.max.bytes"] = group.fetch_max_bytes
        # librdkafka wants message.max.bytes <= fetch.max.bytes < receive.message.max.bytes
        conf["message.max.bytes"] = max(1000, min(1_000_000, group.fetch_max_bytes))
        conf["receive.message.max.bytes"] = max(100_000_000, group.fetch_max_bytes + 512)
    return conf


class _ScrubbedLog:
    """What librdkafka logs through (``logger``): the password never reaches a handler,
    and a line that repeats (a broker that stays down is retried several times a
    second) is logged once per ``REPEAT_PAUSE`` seconds, with the count of the others."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._seen: dict[str, tuple[float, int]] = {}  # line without numbers -> (last, skipped)
        self._lock = threading.Lock()

    def log(self, level: int, fmt: str, *args: Any) -> None:
        if not _LOG.isEnabledFor(level):
            return
        text = scrub(fmt % args, self._secret)
        shape = _NUMBERS.sub("#", text)
        now = time.monotonic()
        with self._lock:
            last, skipped = self._seen.get(shape, (-REPEAT_PAUSE, 0))
            if now - last < REPEAT_PAUSE:
                self._seen[shape] = (last, skipped + 1)
                return
            if len(self._seen) > 1000:
                self._seen.clear()
            self._seen[shape] = (now, 0)
        if skipped:
            text += f" ({skipped} similar line(s) in the last {now - last:.0f} s not logged)"
        _LOG.log(level, "%s", text)


def scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


@dataclass
class _Down:
    """The brokers of a client are away since ``since`` (monotonic), for ``reason``."""

    since: float
    reason: str


class KafkaPool:
    """Brokers of one Kafka cluster: ``produce_sync``, ``produce``, ``consumer_group``.

    One producer per pool (thread-safe, created on first use) with a daemon thread
    that serves its delivery callbacks; a new consumer client per ``consumer_group``
    call (close it, or use it as a context manager).
    """

    def __init__(
        self,
        code: str,
        brokers: list[str],
        options: KafkaPoolOptions,
        groups: Mapping[str, KafkaConsumerGroup] | None = None,
    ) -> None:
        self.code = code
        self.brokers = list(brokers)
        self.options = options
        self.groups: dict[str, KafkaConsumerGroup] = dict(groups or {})
        self.breaker = Breaker("kafka", code)
        self._producer: Producer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._down: _Down | None = None
        self._fatal: str | None = None  # the producer must be replaced (why)
        reset_in_child(self._forked)

    def _forked(self) -> None:
        # librdkafka's threads are not in a forked child: the inherited producer is
        # kept out of reach (never used, never destroyed there); a new one is made.
        if self._producer is not None:
            _INHERITED.append(self._producer)
        self._producer = None
        self._thread = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._down = None
        self._fatal = None

    def __repr__(self) -> str:
        return f"<KafkaPool {self.code!r} {self.describe}>"

    @property
    def describe(self) -> str:
        return ",".join(self.brokers)

    def _error(self, message: str) -> PoolError:
        text = f"kafka pool {self.code!r} ({self.describe}): {message}"
        return PoolError(scrub(text, self.options.sasl_password), pool=self.code)

    def client_config(self, client_id: str = "") -> dict[str, Any]:
        """librdkafka settings of a new client of this pool (with the credentials and a
        logger that scrubs them)."""
        conf = client_config(self.brokers, self.options, client_id)
        conf["logger"] = _ScrubbedLog(self.options.sasl_password)
        return conf

    def admin(self) -> AdminClient:
        """A new admin client (topics, configs, groups; ``fluxa_migrate`` uses it)."""
        try:
            return AdminClient(self.client_config())
        except KafkaException as exc:
            raise self._config_error(exc) from None

    def _config_error(self, exc: KafkaException) -> ConfigError:
        text = f"kafka pool {self.code!r}: invalid client settings: {exc.args[0]}"
        return ConfigError(scrub(text, self.options.sasl_password))

    def connect(self) -> None:
        """Ask the brokers for metadata (``validate()``, ``connect_timeout`` at most)."""
        started = time.monotonic()
        try:
            self.admin().list_topics(timeout=self.options.connect_timeout)
        except KafkaException as exc:
            waited = time.monotonic() - started
            reason = scrub(f"cannot connect: {describe_error(exc)}", self.options.sasl_password)
            self.breaker.failed(reason, waited, self.options.connect_timeout)
            raise self._error(f"cannot connect: {describe_error(exc)}") from None
        self.breaker.ok()

    # -- producing -----------------------------------------------------------------

    def producer(self) -> Producer:
        """The pool's producer (created on first use, with its delivery thread; replaced
        after a fatal error, such as an idempotent producer fenced by a broker that lost
        its state)."""
        producer = self._producer
        if producer is not None and self._fatal is None:
            return producer
        with self._lock:
            if self._fatal is not None and self._producer is not None:
                self._retire()
            if self._producer is None:
                conf = self.client_config()
                conf.update(producer_config(self.options))
                conf["error_cb"] = self._on_error
                try:
                    self._producer = Producer(conf)
                except KafkaException as exc:
                    raise self._config_error(exc) from None
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._serve,
                    args=(self._producer, self._stop),
                    name=f"fluxa-kafka-{self.code}",
                    daemon=True,
                )
                self._thread.start()
            return self._producer

    def _retire(self) -> None:
        """Drop a producer that had a fatal error: its records fail (their callbacks are
        called), its delivery thread ends; the next use makes a new one."""
        old, self._producer = self._producer, None
        _LOG.warning("kafka pool %r: new producer after a fatal error: %s", self.code, self._fatal)
        self._fatal = None
        self._stop.set()
        if old is not None:
            with contextlib.suppress(KafkaException, RuntimeError):
                old.purge()
                old.poll(0)

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka's error callback (in the thread that polls)."""
        if err.code() in _DOWN:
            if self._down is None:
                self._down = _Down(time.monotonic(), scrub(err.str(), self.options.sasl_password))
                _LOG.warning("kafka pool %r: brokers unreachable: %s", self.code, self._down.reason)
        elif err.fatal():
            self._fatal = scrub(err.str(), self.options.sasl_password)
            _LOG.error("kafka pool %r: fatal producer error: %s", self.code, self._fatal)

    def _serve(self, producer: Producer, stop: threading.Event) -> None:
        """Serve delivery callbacks; while the brokers are away, probe them and fail the
        queued records rather than keeping them for ``delivery_timeout``."""
        while not stop.is_set():
            try:
                producer.poll(POLL_INTERVAL)
                if self._down is not None:
                    self._probe(producer, stop)
            except Exception:  # a delivery callback raised: logged, the thread goes on
                _LOG.exception("kafka pool %r: error in a delivery callback", self.code)

    def _probe(self, producer: Producer, stop: threading.Event) -> None:
        try:
            producer.list_topics(timeout=self.options.connect_timeout)
        except KafkaException:
            if stop.is_set():
                return
            # Only records not yet sent: a record in flight may still be acknowledged.
            producer.purge(in_queue=True, in_flight=False, blocking=False)
            producer.poll(0)
            stop.wait(_PROBE_PAUSE)
        else:
            if self._down is not None:
                _LOG.warning("kafka pool %r: brokers reachable again", self.code)
            self._down = None

    def _enqueue(
        self,
        topic: str,
        value: Value | None,
        key: Value | None,
        headers: list[tuple[str, bytes | None]] | None,
        partition: int | None,
        callback: Callable[[KafkaError | None, Message], None],
    ) -> None:
        producer = self.producer()
        kwargs: dict[str, Any] = {
            "value": _bytes("value", value),
            "key": _bytes("key", key),
            "on_delivery": callback,
        }
        if headers:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        deadline = time.monotonic() + self.options.delivery_timeout
        while True:
            try:
                producer.produce(topic, **kwargs)
                return
            except BufferError:  # max_buffered_records reached: wait for room
                if time.monotonic() >= deadline:
                    raise self._error(
                        f"produce to {topic!r}: the producer queue stayed full "
                        f"(max_buffered_records={self.options.max_buffered_records}) for "
                        f"{self.options.delivery_timeout:g} s"
                    ) from None
                time.sleep(0.01)
            except KafkaException as exc:
                raise self._error(f"produce to {topic!r}: {describe_error(exc)}") from None

    def produce_sync(
        self,
        topic: str,
        value: Value | None,
        key: Value | None = None,
        headers: Headers | None = None,
        *,
        partition: int | None = None,
        timeout: float | None = None,
        ctx: QueryLog | None = None,
    ) -> KafkaRecord:
        """Produce one record and wait for the broker's acknowledgement (``required_acks``).

        Returns the record as stored (partition, offset, timestamp). Raises ``PoolError``
        naming the pool when it was not acknowledged: within ``delivery_timeout`` + 1 s,
        or ``connect_timeout`` + 0.2 s when the brokers are down. A ``timeout`` shorter than
        that raises after ``timeout`` seconds, but the record may still be delivered later
        (librdkafka keeps it until ``delivery_timeout``). ``ctx`` logs the call on that
        context's query loggers (``source`` ``"kafka"``).
        """
        started, clock = time.time(), time.monotonic()
        shown = partial(_shown, "PRODUCE", topic, key, value)
        sent_headers = _headers(headers)
        if OBSERVERS:
            notify("kafka", "produce_sync")
        done = threading.Event()
        box: list[tuple[KafkaError | None, Message]] = []

        def delivered(err: KafkaError | None, msg: Message) -> None:
            box.append((err, msg))
            done.set()

        try:
            self.breaker.check()
            self._enqueue(topic, value, key, sent_headers, partition, delivered)
            bound = self.options.delivery_timeout + GRACE
            if timeout is not None and timeout < bound:
                if not done.wait(timeout):
                    reason = f"not acknowledged within {timeout:g} s"
                    self.breaker.failed(reason, time.monotonic() - clock, timeout)
                    raise self._error(
                        f"produce to {topic!r}: {reason} (timeout; it may still be delivered)"
                    )
            elif not done.wait(bound):
                reason = f"not acknowledged within {self.options.delivery_timeout:g} s"
                self._fatal = reason
                self.breaker.failed(reason, time.monotonic() - clock, bound)
                raise self._error(f"produce to {topic!r}: {reason} (delivery_timeout)")
            err, msg = box[0]
            error = self._settle(topic, err, clock)
            if error is not None:
                raise error
        except PoolError as exc:
            self._observe(ctx, "produce_sync", shown, started, clock, exc)
            raise
        self._observe(ctx, "produce_sync", shown, started, clock, None)
        return _record(msg, sent_headers)

    def _settle(self, topic: str, err: KafkaError | None, clock: float) -> PoolError | None:
        """A delivery report of a record produced at ``clock``: the error its caller gets
        (``None``: acknowledged). The breaker, the pool's down state and the delivery
        metric follow it, whichever way the record was produced."""
        sink = metrics.METRICS
        if err is None:
            self._down = None
            self.breaker.ok()
            if sink is not None:
                sink.observe("kafka", self.code, "delivery", time.monotonic() - clock)
            return None
        self._note(err)
        code = err.code()
        if code in (KafkaError._PURGE_QUEUE, KafkaError._MSG_TIMED_OUT):
            reason = (
                "brokers unreachable" if code == KafkaError._PURGE_QUEUE else "produce timed out"
            )
            self.breaker.failed(reason, time.monotonic() - clock, self.options.connect_timeout)
        if sink is not None:
            sink.error("kafka", self.code)
        return self._delivery_error(topic, err)

    def _note(self, err: KafkaError) -> None:
        """Replace the producer before its next use when ``err`` shows it is stuck."""
        if err.fatal() or err.code() in _STUCK:
            self._fatal = scrub(err.str(), self.options.sasl_password)

    def _delivery_error(self, topic: str, err: KafkaError) -> PoolError:
        code = err.code()
        if code == KafkaError._PURGE_QUEUE:
            down = self._down
            why = f": {down.reason}" if down is not None else ""
            return self._error(f"produce to {topic!r}: the brokers are unreachable{why}")
        if code == KafkaError._MSG_TIMED_OUT:
            return self._error(
                f"produce to {topic!r}: not acknowledged within "
                f"{self.options.delivery_timeout:g} s (delivery_timeout)"
            )
        return self._error(f"produce to {topic!r}: {err.str()}")

    def produce(
        self,
        topic: str,
        value: Value | None,
        key: Value | None = None,
        headers: Headers | None = None,
        *,
        partition: int | None = None,
        on_delivery: Callable[[KafkaRecord | None, PoolError | None], None] | None = None,
        ctx: QueryLog | None = None,
    ) -> None:
        """Queue one record and return at once (``flush`` waits for the queue).

        ``on_delivery(record, error)`` is called once, from the pool's delivery
        thread: with the stored record, or with ``None`` and a ``PoolError`` when it
        was not acknowledged within ``delivery_timeout`` (sooner when the brokers are
        down). Raises ``PoolError`` at once while the pool's breaker is open.
        """
        started, clock = time.time(), time.monotonic()
        shown = partial(_shown, "PRODUCE", topic, key, value)
        sent_headers = _headers(headers)
        if OBSERVERS:
            notify("kafka", "produce")

        def delivered(err: KafkaError | None, msg: Message) -> None:
            error = self._settle(topic, err, clock)
            if on_delivery is not None:
                on_delivery(None if error is not None else _record(msg, sent_headers), error)

        try:
            self.breaker.check()
            self._enqueue(topic, value, key, sent_headers, partition, delivered)
        except PoolError as exc:
            self._observe(ctx, "produce", shown, started, clock, exc)
            raise
        self._observe(ctx, "produce", shown, started, clock, None)

    def flush(self, timeout: float | None = None) -> int:
        """Wait until every queued record is delivered or failed (at most ``timeout``,
        default ``delivery_timeout`` + 1 s); returns how many are still queued."""
        if self._producer is None:
            return 0
        bound = self.options.delivery_timeout + GRACE if timeout is None else timeout
        return int(self._producer.flush(bound))

    # -- consuming -------------------------------------------------------------------

    def consumer_group_names(self) -> list[str]:
        """The consumer groups registered on this pool."""
        return sorted(self.groups)

    def consumer_group(
        self,
        name: str,
        *,
        ctx: QueryLog | None = None,
        on_assign: Callable[[list[TopicPartitionKey]], None] | None = None,
        on_revoke: Callable[[list[TopicPartitionKey]], None] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> KafkaGroupConsumer:
        """A new consumer of the registered group ``name``, subscribed to its topics.

        ``on_assign``/``on_revoke`` are called (inside ``poll``) with the
        (topic, partition) pairs a rebalance gives or takes; records returned but not
        committed before a revocation are no longer this consumer's to commit.
        ``config`` adds or overrides librdkafka settings (for example
        ``{"session.timeout.ms": 6000}``). Close it (``close()`` or ``with``).
        """
        group = self.groups.get(name)
        if group is None:
            known = ", ".join(self.consumer_group_names()) or "none"
            raise ConfigError(
                f"kafka consumer group {name!r} is not registered on kafka pool "
                f"{self.code!r} (registered: {known})"
            )
        if not group.topic_names:
            raise ConfigError(f"kafka consumer group {name!r} has no topics")
        self.breaker.check()
        return KafkaGroupConsumer(self, group, ctx, on_assign, on_revoke, config or {})

    # -- logging and metrics -----------------------------------------------------------

    def _observe(
        self,
        ctx: QueryLog | None,
        operation: str,
        shown: str | Callable[[], str],
        started: float,
        clock: float,
        error: BaseException | None,
    ) -> None:
        """A call for the metrics and ``ctx``'s loggers (``shown``: its text, or what
        builds it, called only when somebody logs)."""
        sink = metrics.METRICS
        if sink is not None:
            if error is None:
                sink.observe("kafka", self.code, operation, time.monotonic() - clock)
            else:
                sink.error("kafka", self.code)
        if ctx is not None and ctx._loggers:
            text = shown() if callable(shown) else shown
            ctx._log("kafka", self.code, operation, text, started, error)

    def close(self) -> None:
        """Deliver what is queued (5 s at most), then drop the rest: closing never
        waits for a broker that is away (librdkafka would wait up to 5 minutes)."""
        producer, self._producer = self._producer, None
        thread, self._thread = self._thread, None
        if producer is None:
            return
        left = producer.flush(5)
        self._stop.set()
        if thread is not None:
            thread.join(self.options.connect_timeout + 1)
        if left:
            _LOG.warning(
                "kafka pool %r closed with %d record(s) not delivered (dropped)", self.code, left
            )
            producer.purge()
            producer.flush(0)


_INHERITED: list[Any] = []  # producers inherited by a forked child: never used there


def _shown(operation: str, topic: str, key: Value | None, value: Value | None) -> str:
    """A produce for the loggers: topic and sizes, never the key's or the value's bytes."""
    sized = (bytes, bytearray, memoryview, str)
    key_size = len(key) if isinstance(key, sized) else 0
    value_size = len(value) if isinstance(value, sized) else 0
    return f"{operation} {topic} (key {key_size} B, value {value_size} B)"


def describe_error(exc: KafkaException) -> str:
    """A librdkafka error as text (its own message when it carries a ``KafkaError``)."""
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError):
        return str(err.str())
    return str(exc)


def _tp(tp: TopicPartition) -> TopicPartitionKey:
    return (str(tp.topic), int(tp.partition))


class KafkaGroupConsumer:
    """A member of a consumer group: ``poll``, iterate, ``commit``, ``close``.

    Not thread-safe (one thread polls), except ``stop()``, which a signal handler
    may call: ``poll`` then returns no more records and iteration ends after the
    record being handled.
    """

    def __init__(
        self,
        pool: KafkaPool,
        group: KafkaConsumerGroup,
        ctx: QueryLog | None,
        on_assign: Callable[[list[TopicPartitionKey]], None] | None,
        on_revoke: Callable[[list[TopicPartitionKey]], None] | None,
        config: Mapping[str, Any],
    ) -> None:
        self.pool = pool
        self.name = group.name
        self.topics = tuple(group.topic_names)
        self._ctx = ctx
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._pending: dict[TopicPartitionKey, int] = {}  # next offset, returned not committed
        self._assigned: set[TopicPartitionKey] = set()
        self._stopped = threading.Event()
        self._down: _Down | None = None
        self._closed = False
        conf = pool.client_config()
        conf.update(group_config(group))
        conf.update(config)
        if "session.timeout.ms" in config and "heartbeat.interval.ms" not in config:
            conf["heartbeat.interval.ms"] = heartbeat_ms(int(config["session.timeout.ms"]))
        # (what a join may wait: the session; librdkafka's default is 45 s)
        self._session_timeout = int(conf.get("session.timeout.ms", 45_000)) / 1000
        conf["error_cb"] = self._on_error
        try:
            self._consumer = Consumer(conf)
        except KafkaException as exc:
            text = f"kafka consumer group {self.name!r} (pool {pool.code!r}): {describe_error(exc)}"
            raise ConfigError(scrub(text, pool.options.sasl_password)) from None
        self._consumer.subscribe(
            list(self.topics), on_assign=self._assign, on_revoke=self._revoke, on_lost=self._revoke
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"assigned={sorted(self._assigned)}"
        return f"<KafkaGroupConsumer {self.name!r} pool={self.pool.code!r} {state}>"

    def __enter__(self) -> KafkaGroupConsumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[KafkaRecord]:
        return self.records()

    def _error(self, message: str) -> PoolError:
        return self.pool._error(f"consumer group {self.name!r}: {message}")

    # -- callbacks (run inside poll) ------------------------------------------------------

    def _on_error(self, err: KafkaError) -> None:
        if err.code() in _DOWN and self._down is None:
            self._down = _Down(time.monotonic(), scrub(err.str(), self.pool.options.sasl_password))

    def _assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [_tp(tp) for tp in partitions]
        self._assigned.update(keys)
        if self._on_assign is not None:
            self._on_assign(keys)

    def _revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [_tp(tp) for tp in partitions]
        if self._on_revoke is not None:
            self._on_revoke(keys)
        for key in keys:
            self._assigned.discard(key)
            self._pending.pop(key, None)

    # -- reading ----------------------------------------------------------------------------

    def poll(self, timeout: float = 1.0, max_records: int = 500) -> list[KafkaRecord]:
        """The next records (at most ``max_records``), waiting up to ``timeout`` seconds for
        the first one; ``[]`` when none came or after ``stop()``.

        Raises ``PoolError`` when the brokers are unreachable (after a metadata request of
        at most ``connect_timeout``), or when a subscribed topic does not exist.
        """
        if self._closed:
            raise self._error("closed")
        if self._stopped.is_set():
            return []
        if self._down is not None:
            self._probe()
        started, clock = time.time(), time.monotonic()
        try:
            first = self._consumer.poll(timeout)
            messages = [first] if first is not None else []
            if first is not None and max_records > 1:
                messages.extend(self._consumer.consume(max_records - 1, 0))
        except KafkaException as exc:
            raise self._error(describe_error(exc)) from None
        records: list[KafkaRecord] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() in _CONSUMER_FATAL or err.fatal():
                    error = self._error(f"{msg.topic() or ''}: {err.str()}".lstrip(": "))
                    self.pool._observe(self._ctx, "poll", self._shown(0), started, clock, error)
                    raise error
                _LOG.warning("kafka consumer group %r: %s", self.name, err.str())
                continue
            record = _record(msg)
            records.append(record)
            key = (record.topic, record.partition)
            self._pending[key] = max(self._pending.get(key, 0), record.offset + 1)
        if records:
            self._down = None
            if OBSERVERS:
                notify("kafka", "poll")
            self.pool._observe(self._ctx, "poll", self._shown(len(records)), started, clock, None)
        return records

    def _shown(self, count: int) -> str:
        return f"POLL {','.join(self.topics)} group {self.name} -> {count} record(s)"

    def _probe(self) -> None:
        try:
            self._consumer.list_topics(timeout=self.pool.options.connect_timeout)
        except KafkaException:
            down = self._down
            raise self._error(
                f"the brokers are unreachable: {down.reason if down else 'metadata request failed'}"
            ) from None
        self._down = None

    def records(
        self, idle_timeout: float | None = None, poll_timeout: float = 1.0
    ) -> Iterator[KafkaRecord]:
        """Records one by one until ``stop()``, or until none came for ``idle_timeout``
        seconds while the member had partitions (``None``: no such end). Joining the group
        is not idle time: without partitions the member waits up to the group's session
        timeout more. Iterating the consumer is ``records()``."""
        started = idle_since = time.monotonic()
        joined = bool(self._assigned)
        while not self._stopped.is_set():
            wait = poll_timeout
            if idle_timeout is not None:
                now = time.monotonic()
                if not joined and self._assigned:
                    joined, idle_since = True, now
                if joined:
                    left = idle_since + idle_timeout - now
                else:
                    left = started + idle_timeout + self._session_timeout - now
                if left <= 0:
                    return
                wait = min(wait, left)
            batch = self.poll(wait)
            if batch:
                idle_since = time.monotonic()
            for record in batch:
                yield record
                if self._stopped.is_set():
                    return

    # -- offsets ----------------------------------------------------------------------------

    def commit(
        self,
        records: Iterable[Positioned] | None = None,
        *,
        offsets: Mapping[TopicPartitionKey, int] | None = None,
    ) -> dict[TopicPartitionKey, int]:
        """Commit offsets synchronously; returns what was committed ((topic, partition) ->
        the next offset to read).

        - ``commit()``: everything ``poll`` returned so far;
        - ``commit(records)``: up to and including the given records (per partition);
        - ``commit(offsets={(topic, partition): next_offset})``: exactly these offsets.

        Raises ``PoolError`` when the broker refuses (for example a partition taken away by
        a rebalance).
        """
        if self._closed:
            raise self._error("closed")
        if offsets is not None:
            wanted = dict(offsets)
        elif records is not None:
            wanted = {}
            for record in records:
                key = (record.topic, record.partition)
                wanted[key] = max(wanted.get(key, 0), record.offset + 1)
        else:
            wanted = dict(self._pending)
        if not wanted:
            return {}
        started, clock = time.time(), time.monotonic()
        shown = "COMMIT " + ", ".join(f"{t}[{p}]={o}" for (t, p), o in sorted(wanted.items()))
        try:
            result = self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in wanted.items()],
                asynchronous=False,
            )
            failed = [tp for tp in result or [] if tp.error is not None]
            if failed:
                raise self._error(
                    "commit refused: "
                    + ", ".join(f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in failed)
                )
        except KafkaException as exc:
            error = self._error(f"commit failed: {describe_error(exc)}")
            self.pool._observe(self._ctx, "commit", shown, started, clock, error)
            raise error from None
        except PoolError as error:
            self.pool._observe(self._ctx, "commit", shown, started, clock, error)
            raise
        for key, offset in wanted.items():
            if self._pending.get(key, -1) <= offset:
                self._pending.pop(key, None)
        if OBSERVERS:
            notify("kafka", "commit")
        self.pool._observe(self._ctx, "commit", shown, started, clock, None)
        return wanted

    def committed(self, timeout: float | None = None) -> dict[TopicPartitionKey, int | None]:
        """The group's committed offsets of the assigned partitions (``None``: none yet)."""
        parts = [TopicPartition(t, p) for t, p in sorted(self._assigned)]
        if not parts:
            return {}
        try:
            found = self._consumer.committed(
                parts, timeout=self.pool.options.request_timeout if timeout is None else timeout
            )
        except KafkaException as exc:
            raise self._error(f"committed offsets: {describe_error(exc)}") from None
        return {_tp(tp): (None if tp.offset < 0 else int(tp.offset)) for tp in found}

    def lag(self) -> dict[TopicPartitionKey, int]:
        """Records not yet committed, per assigned partition (high watermark - committed)."""
        out: dict[TopicPartitionKey, int] = {}
        timeout = self.pool.options.request_timeout
        for key, offset in self.committed().items():
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(*key), timeout=timeout, cached=False
                )
            except KafkaException as exc:
                raise self._error(
                    f"watermarks of {key[0]}[{key[1]}]: {describe_error(exc)}"
                ) from None
            out[key] = max(0, int(high) - (int(low) if offset is None else offset))
        return out

    def assignment(self) -> list[TopicPartitionKey]:
        """The (topic, partition) pairs this member reads now."""
        return sorted(self._assigned)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read ``topic[partition]`` from ``offset`` on (an assigned partition)."""
        try:
            self._consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as exc:
            raise self._error(
                f"seek {topic}[{partition}] to {offset}: {describe_error(exc)}"
            ) from None
        key = (topic, partition)
        if key in self._pending:
            self._pending[key] = offset

    def pause(self) -> None:
        """Stop fetching the assigned partitions (the member stays in the group)."""
        parts = [TopicPartition(t, p) for t, p in sorted(self._assigned)]
        if parts:
            self._consumer.pause(parts)

    def resume(self) -> None:
        parts = [TopicPartition(t, p) for t, p in sorted(self._assigned)]
        if parts:
            self._consumer.resume(parts)

    def stop(self) -> None:
        """End iteration and make ``poll`` return ``[]`` (safe in a signal handler)."""
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def close(self) -> None:
        """Leave the group (its partitions go to the other members at once). Offsets not
        committed are not committed (the next member reads those records again)."""
        if self._closed:
            return
        self._closed = True
        self._stopped.set()
        with contextlib.suppress(KafkaException, RuntimeError):
            self._consumer.close()


__all__ = [
    "KafkaGroupConsumer",
    "KafkaPool",
    "KafkaRecord",
    "client_config",
    "group_config",
    "producer_config",
]
