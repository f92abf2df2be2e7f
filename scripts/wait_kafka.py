"""Readiness check for the Kafka-compatible broker used by the tests (Tansu on 127.0.0.1:9092).

Retries until the broker answers a metadata request, then creates a throw-away topic,
produces one message, reads it back (partition assignment, no consumer group: group joins
are slow on Tansu) and deletes the topic. Exits 0 when all of that worked, 1 otherwise.

Usage: python scripts/wait_kafka.py [--bootstrap 127.0.0.1:9092] [--timeout 60]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def check(bootstrap: str, deadline: float) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    while True:  # metadata first: the port may be open before the broker serves requests
        try:
            admin.list_topics(timeout=2)
            break
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    topic = f"__fluxa_ready_{uuid.uuid4().hex[:12]}"
    for fut in admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1)]
    ).values():
        fut.result(10)
    payload = uuid.uuid4().bytes
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    producer.produce(topic, value=payload, partition=0)
    if producer.flush(10) != 0:
        raise RuntimeError("produce did not complete")
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "fluxa-ready", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        while True:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and msg.value() == payload:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("produced message was not consumed in time")
    finally:
        consumer.close()
    for fut in admin.delete_topics([topic]).values():
        fut.result(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    start = time.monotonic()
    try:
        check(args.bootstrap, start + args.timeout)
    except Exception as exc:  # report any failure as "not ready"
        print(f"kafka not ready at {args.bootstrap}: {exc!r}", file=sys.stderr)
        return 1
    print(f"kafka ready at {args.bootstrap} ({time.monotonic() - start:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
