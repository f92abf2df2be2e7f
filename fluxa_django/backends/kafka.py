"""Kafka pool over confluent-kafka: admin checks and producing."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from fluxa_django.backends.breaker import Breaker
from fluxa_django.config import KafkaPoolOptions
from fluxa_django.errors import PoolError

_LOG = logging.getLogger("fluxa_django.kafka")
CONNECT_TIMEOUT = 2.0  # seconds validate() waits for the brokers' metadata


class KafkaPool:
    """Brokers of one Kafka cluster; ``produce_sync`` waits for the broker's ack."""

    def __init__(self, code: str, brokers: list[str], options: KafkaPoolOptions) -> None:
        self.code = code
        self.brokers = list(brokers)
        self.options = options
        self._producer: Producer | None = None
        self.breaker = Breaker("kafka", code)

    def __repr__(self) -> str:
        return f"<KafkaPool {self.code!r} {','.join(self.brokers)}>"

    def client_config(self) -> dict[str, Any]:
        # librdkafka's own log lines go to Python logging, not to stderr
        conf: dict[str, Any] = {"bootstrap.servers": ",".join(self.brokers), "logger": _LOG}
        if self.options.client_id:
            conf["client.id"] = self.options.client_id
        if self.options.sasl_mechanism:
            conf.update(
                {
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": self.options.sasl_mechanism,
                    "sasl.username": self.options.sasl_user,
                    "sasl.password": self.options.sasl_password,
                }
            )
        return conf

    def admin(self) -> AdminClient:
        return AdminClient(self.client_config())

    def connect(self) -> None:
        started = time.monotonic()
        try:
            self.admin().list_topics(timeout=CONNECT_TIMEOUT)
        except KafkaException as exc:
            waited = time.monotonic() - started
            self.breaker.failed(f"cannot connect: {exc}", waited, CONNECT_TIMEOUT)
            raise PoolError(
                f"kafka pool {self.code!r} ({','.join(self.brokers)}): cannot connect: {exc}",
                pool=self.code,
            ) from None

    def producer(self) -> Producer:
        if self._producer is None:
            conf = self.client_config()
            conf["acks"] = str(self.options.required_acks)
            conf["linger.ms"] = self.options.producer_linger_ms
            if self.options.max_buffered_records:
                conf["queue.buffering.max.messages"] = self.options.max_buffered_records
            self._producer = Producer(conf)
        return self._producer

    def produce(
        self, topic: str, value: bytes, key: bytes | None = None, on_delivery: Any = None
    ) -> None:
        self.producer().produce(topic, value=value, key=key, on_delivery=on_delivery)
        self.producer().poll(0)

    def produce_sync(
        self, topic: str, value: bytes, key: bytes | None = None, timeout: float = 10.0
    ) -> None:
        self.breaker.check()
        errors: list[Any] = []
        started = time.monotonic()
        self.producer().produce(
            topic, value=value, key=key, on_delivery=lambda err, _msg: errors.append(err)
        )
        self.producer().flush(timeout)
        if not errors or errors[0] is not None:
            reason = f"produce to {topic!r} failed: {errors[:1] or 'timeout'}"
            self.breaker.failed(reason, time.monotonic() - started, timeout)
            raise PoolError(f"kafka pool {self.code!r}: {reason}", pool=self.code)
        self.breaker.ok()

    def close(self) -> None:
        """Deliver what is queued (5 s at most), then drop the rest: closing never
        waits for a broker that is away (librdkafka would wait up to 5 minutes)."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        left = producer.flush(5)
        if left:
            _LOG.warning(
                "kafka pool %r closed with %d message(s) not delivered (dropped)", self.code, left
            )
            producer.purge()
            producer.flush(0)
