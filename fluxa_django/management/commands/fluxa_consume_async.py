"""``manage.py fluxa_consume_async``: apply the records ``ctx.flush_async()`` published."""

from __future__ import annotations

import importlib
import signal
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fluxa_django.errors import FluxaError
from fluxa_django.runtime.async_consume import AsyncConsumer, Stats
from fluxa_django.runtime.provider import ProviderBase


class Command(BaseCommand):
    requires_system_checks = ["fluxa"]
    help = (
        "Apply the async flush records of _fluxa_async_sql to MySQL, once each (what was "
        "applied is recorded in the same transaction), in per-table order; records that "
        "fail for good go to _fluxa_async_sql_failed. Stops cleanly on SIGTERM/SIGINT. "
        "Run several to share the partitions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch",
            type=int,
            default=500,
            help="most records per poll, applied in one transaction per partition (500)",
        )
        parser.add_argument(
            "--idle-timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="stop when no record came for this long once partitions were assigned "
            "(default: run until stopped)",
        )
        parser.add_argument(
            "--session-timeout-ms",
            type=int,
            default=None,
            metavar="MS",
            help="consumer group session.timeout.ms (librdkafka's 45000 when not given); "
            "on Tansu a group's first member waits half of it",
        )
        parser.add_argument(
            "--progress-interval",
            type=float,
            default=1.0,
            metavar="SECONDS",
            help="seconds between two progress lines (1; 0: a line per batch)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from fluxa_django.conf import fluxa_settings, get_engine

        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        config: dict[str, Any] = {}
        if options["session_timeout_ms"]:
            config["session.timeout.ms"] = options["session_timeout_ms"]  # (and its heartbeat)
        self._interval = float(options["progress_interval"])
        try:
            engine = get_engine()
            providers = _providers(fluxa_settings().get("GENERATED_PACKAGE"))
            consumer = AsyncConsumer(
                engine, providers, batch=options["batch"], config=config, progress=self._progress
            )
        except FluxaError as exc:
            raise CommandError(str(exc)) from None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, lambda *_: consumer.stop())
        self._last = 0.0
        self._partitions: list[tuple[str, int]] | None = None
        found = engine.registry.async_flush
        group = found[1].consumer_group if found else "?"
        self.stdout.write(
            f"fluxa_consume_async: consuming _fluxa_async_sql as group {group!r} "
            "(SIGTERM or Ctrl-C stops after the batch being applied)"
        )
        try:
            stats = consumer.run(idle_timeout=options["idle_timeout"])
        except FluxaError as exc:
            raise CommandError(str(exc)) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(self._line("stopped", stats))

    def _progress(self, stats: Stats) -> None:
        if stats.partitions != self._partitions:
            self._partitions = list(stats.partitions)
            shown = ", ".join(f"{t}[{p}]" for t, p in stats.partitions) or "none"
            self.stdout.write(f"partitions: {shown}")
        now = time.monotonic()
        if stats.applied + stats.skipped + stats.foreign + stats.failed == 0:
            return
        if now - self._last >= self._interval:
            self._last = now
            self.stdout.write(self._line("progress", stats))

    @staticmethod
    def _line(what: str, stats: Stats) -> str:
        lag = sum(stats.lag.values())
        rate = f", {stats.rows_per_second:,.0f} rows/s" if stats.rows_per_second else ""
        return (
            f"{what}: {stats.applied} record(s) applied ({stats.rows} row(s){rate}), "
            f"{stats.skipped} already applied, {stats.failed + stats.undecodable} "
            "dead-lettered, "
            f"{stats.hooks} hook call(s), {stats.retries} retried, "
            f"{stats.foreign} of other apps; lag {lag}"
        )


def _providers(package: str | None) -> dict[str, ProviderBase[Any]]:
    """The generated providers by entity name (their hooks are what the consumer runs)."""
    if not package:
        raise CommandError(
            "FLUXA['GENERATED_PACKAGE'] is not set: the consumer needs the providers"
        )
    module = importlib.import_module(package)
    return {
        value.entity_name: value
        for value in vars(module).values()
        if isinstance(value, ProviderBase)
    }
