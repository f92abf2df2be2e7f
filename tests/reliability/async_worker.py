"""A consumer process of the async flush reliability tests.

``python -m tests.reliability.async_worker --database D --broker HOST:PORT --group G
--app-name A --hook-log PATH [--batch N] [--idle-timeout S]`` builds the engine the test
built (``async_helpers.build_engine``: same database, app name and consumer group, so
the same namespace), installs the recording after-hooks (``async_helpers.install_hooks``)
and runs ``AsyncConsumer`` until no record came for ``--idle-timeout`` seconds (or
until SIGTERM); ``--no-kafka-commit`` makes it commit no offset to Kafka. On stdout, one JSON event per line: ``progress`` after each batch and
at each assignment (the ``Stats`` so far), ``stopped`` at the end.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from fluxa_django.backends.kafka import KafkaGroupConsumer
from fluxa_django.runtime.async_consume import AsyncConsumer, Stats
from tests.reliability.async_helpers import SESSION_MS, all_providers, build_engine, install_hooks


def emit(event: str, stats: Stats) -> None:
    data = asdict(stats)
    data["lag"] = sum(stats.lag.values())
    data["partitions"] = [p for _, p in stats.partitions]
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--app-name", required=True)
    parser.add_argument("--hook-log", required=True, type=Path)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--idle-timeout", type=float, default=2.0)
    parser.add_argument(
        "--no-kafka-commit",
        action="store_true",
        help="never commit offsets to Kafka: the next consumer replays everything this one "
        "read (MySQL's record of what was applied must skip it)",
    )
    args = parser.parse_args()
    if args.no_kafka_commit:
        KafkaGroupConsumer.commit = lambda *_, **__: {}  # type: ignore[method-assign]
    faulthandler.register(signal.SIGUSR1)  # the test asks for the stacks of a stuck worker
    engine = build_engine(args.database, args.broker, args.group, args.app_name)
    install_hooks(args.hook_log)
    consumer = AsyncConsumer(
        engine,
        all_providers(),
        batch=args.batch,
        config={"session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": SESSION_MS // 3},
        progress=lambda stats: emit("progress", stats),
    )
    signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
    try:
        stats = consumer.run(idle_timeout=args.idle_timeout)
    finally:
        engine.close()
    emit("stopped", stats)


if __name__ == "__main__":
    main()
