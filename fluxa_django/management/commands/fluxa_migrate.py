"""``manage.py fluxa_migrate``: show and apply schema changes for the entities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fluxa_django.errors import FluxaError
from fluxa_django.migrate import Alter, apply_alters, plan_mysql
from fluxa_django.migrate.clickhouse import (
    ClickhouseChange,
    ClickhousePlan,
    apply_clickhouse,
    plan_clickhouse,
)
from fluxa_django.migrate.debezium import (
    DebeziumChange,
    DebeziumPlan,
    apply_debezium,
    plan_debezium,
)
from fluxa_django.migrate.kafka import KafkaChange, KafkaPlan, apply_kafka, plan_kafka
from fluxa_django.migrate.search import apply_search, plan_search
from fluxa_django.runtime.search_index import Plan


class Command(BaseCommand):
    # The definitions must be valid; the generated code may lag behind (it is
    # generated again after migrating): the `fluxa_codegen` check is not run here.
    requires_system_checks = ["fluxa"]
    help = (
        "Show the MySQL schema changes, Redis Search index builds and Kafka topic and "
        "consumer group changes and Debezium connectors the definitions need, and apply them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--plan", action="store_true", help="print the changes, apply nothing")
        parser.add_argument(
            "--allow-destructive",
            action="store_true",
            help="also apply changes that drop tables/columns/indexes or narrow a column, "
            "delete Kafka topics or consumer groups no definition owns, or lower a topic's "
            "retention, or delete Debezium connectors (fluxa_*) no entity needs",
        )
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="do not ask"
        )
        parser.add_argument(
            "--drop-table",
            action="append",
            default=[],
            metavar="TABLE",
            help="drop this unmanaged table (needs --allow-destructive); may repeat",
        )
        parser.add_argument(
            "--pool",
            action="append",
            default=None,
            metavar="CODE",
            help="only this MySQL pool (Redis Search and Kafka are then left out)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from fluxa_django.conf import get_engine

        try:
            engine = get_engine()
            plan = plan_mysql(engine, options["drop_table"], options["pool"])
            searches = [] if options["pool"] else plan_search(engine)
            kafka = KafkaPlan() if options["pool"] else plan_kafka(engine)
            clickhouse = ClickhousePlan() if options["pool"] else plan_clickhouse(engine)
            debezium = DebeziumPlan() if options["pool"] else plan_debezium(engine)
        except FluxaError as exc:
            raise CommandError(str(exc)) from None
        out = self.stdout
        if plan.unmanaged:
            names = ", ".join(f"{pool}.{table}" for pool, table in plan.unmanaged)
            out.write(
                f"Unmanaged tables (no entity owns them; never dropped unless named with --drop-table): {names}"
            )
        if clickhouse.unmanaged:
            names = ", ".join(f"{pool}.{table}" for pool, table in clickhouse.unmanaged)
            out.write(
                f"Unmanaged ClickHouse tables (no definition owns them; never dropped): {names}"
            )
        if (
            not plan.alters
            and not searches
            and not kafka.changes
            and not debezium.changes
            and not clickhouse.changes
        ):
            out.write(self.style.SUCCESS("No changes: the MySQL schema matches the entities."))
            return
        self._show("Safe changes", plan.safe)
        self._show("Destructive changes", plan.destructive)
        if searches:
            out.write(f"Redis Search indexes ({len(searches)}):")
            for search in searches:
                out.write(f"  {search.describe()}")
        self._show_changes("Kafka changes", kafka.safe)
        self._show_changes("Kafka destructive changes", kafka.destructive)
        self._show_changes("Kafka changes held back (not made)", kafka.held_back)
        self._show_changes("Debezium connector changes", debezium.safe)
        self._show_changes("Debezium destructive changes", debezium.destructive)
        self._show_changes("ClickHouse changes", clickhouse.safe)
        self._show_changes("ClickHouse destructive changes", clickhouse.destructive)
        self._show_changes("ClickHouse changes held back (not made)", clickhouse.held_back)
        todo = plan.safe + (plan.destructive if options["allow_destructive"] else [])
        ch_todo = clickhouse.safe + (clickhouse.destructive if options["allow_destructive"] else [])
        kafka_todo = kafka.safe + (kafka.destructive if options["allow_destructive"] else [])
        debezium_todo = debezium.safe + (
            debezium.destructive if options["allow_destructive"] else []
        )
        if options["plan"]:
            out.write("--plan: nothing applied.")
            return
        destructive = (
            len(plan.destructive)
            + len(kafka.destructive)
            + len(debezium.destructive)
            + len(clickhouse.destructive)
        )
        if destructive and not options["allow_destructive"]:
            out.write(
                self.style.WARNING(
                    f"{destructive} destructive change(s) held back; rerun with --allow-destructive to apply them."
                )
            )
        count = len(todo) + len(searches) + len(kafka_todo) + len(debezium_todo) + len(ch_todo)
        if not count:
            return
        if options["interactive"]:
            try:
                answer = input(f"Apply {count} change(s)? [y/N] ")
            except EOFError:
                raise CommandError(
                    f"{count} change(s) to apply, but there is no terminal to confirm them: "
                    "run with --noinput to apply them without asking"
                ) from None
            if answer.strip().lower() not in ("y", "yes"):
                out.write("Nothing applied.")
                return
        # Keep the planned order: by pool, table and rank (columns before indexes).
        todo.sort(key=lambda a: (a.pool, a.table, a.rank))

        def progress(number: int, total: int, alter: Alter) -> None:
            out.write(f"Applying {number}/{total} [{alter.pool}] {alter.kind} {alter.table}")

        def kafka_progress(number: int, total: int, change: KafkaChange) -> None:
            out.write(f"Applying Kafka {number}/{total} [{change.pool}] {change.description}")

        def debezium_progress(number: int, total: int, change: DebeziumChange) -> None:
            out.write(f"Applying Debezium {number}/{total} {change}")

        def ch_progress(number: int, total: int, change: ClickhouseChange) -> None:
            out.write(f"Applying ClickHouse {number}/{total} [{change.pool}] {change.description}")

        # In this order: the tables first (indexes are back-filled from them).
        steps: list[tuple[str, Callable[[], int]]] = [
            ("schema change", lambda: apply_alters(engine, todo, progress)),
            (
                "Redis Search index build",
                lambda: apply_search(engine, searches, self._search_progress),
            ),
            ("Kafka change", lambda: apply_kafka(engine, kafka_todo, kafka_progress)),
            (
                "Debezium connector change",
                lambda: apply_debezium(engine, debezium_todo, debezium_progress),
            ),
            ("ClickHouse change", lambda: apply_clickhouse(engine, ch_todo, ch_progress)),
        ]
        applied = 0
        for what, step in steps:
            try:
                applied += step()
            except Exception as exc:
                raise CommandError(f"{what} failed: {exc}") from None
        out.write(self.style.SUCCESS(f"Applied {applied} change(s)."))

    def _search_progress(self, plan: Plan, done: int, total: int) -> None:
        search_progress(self.stdout, plan, done, total)

    def _show_changes(self, title: str, changes: Sequence[object]) -> None:
        """A titled list of Kafka, Debezium or ClickHouse changes (each prints itself)."""
        if not changes:
            return
        self.stdout.write(f"{title} ({len(changes)}):")
        for change in changes:
            self.stdout.write(f"  {change}")

    def _show(self, title: str, alters: list[Alter]) -> None:
        if not alters:
            return
        self.stdout.write(f"{title} ({len(alters)}):")
        for alter in alters:
            reason = f"  -- {alter.reason}" if alter.reason else ""
            self.stdout.write(f"  [{alter.pool}] {alter.sql};{reason}")


def search_progress(out: Any, plan: Plan, done: int, total: int) -> None:
    """One progress line per 10% (and the last row) of an index back-fill."""
    step = max(total // 10, 1)
    if done == total or done % step < 1000 or done < 1000:
        percent = 100 * done // total if total else 100
        out.write(f"  {plan.entity}: {done}/{total} rows indexed ({percent}%)")
