"""``manage.py fluxa_migrate``: show and apply schema changes for the entities."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fluxa_django.errors import FluxaError
from fluxa_django.migrate import Alter, apply_alters, plan_mysql


class Command(BaseCommand):
    # The definitions must be valid; the generated code may lag behind (it is
    # generated again after migrating): the `fluxa_codegen` check is not run here.
    requires_system_checks = ["fluxa"]
    help = "Show the MySQL schema changes the entity definitions need, and apply them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--plan", action="store_true", help="print the changes, apply nothing")
        parser.add_argument(
            "--allow-destructive",
            action="store_true",
            help="also apply changes that drop tables/columns/indexes or narrow a column",
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
            "--pool", action="append", default=None, metavar="CODE", help="only this MySQL pool"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from fluxa_django.conf import get_engine

        try:
            engine = get_engine()
            plan = plan_mysql(engine, options["drop_table"], options["pool"])
        except FluxaError as exc:
            raise CommandError(str(exc)) from None
        out = self.stdout
        if plan.unmanaged:
            names = ", ".join(f"{pool}.{table}" for pool, table in plan.unmanaged)
            out.write(
                f"Unmanaged tables (no entity owns them; never dropped unless named with --drop-table): {names}"
            )
        if not plan.alters:
            out.write(self.style.SUCCESS("No changes: the MySQL schema matches the entities."))
            return
        self._show("Safe changes", plan.safe)
        self._show("Destructive changes", plan.destructive)
        todo = plan.safe + (plan.destructive if options["allow_destructive"] else [])
        if options["plan"]:
            out.write("--plan: nothing applied.")
            return
        if plan.destructive and not options["allow_destructive"]:
            out.write(
                self.style.WARNING(
                    f"{len(plan.destructive)} destructive change(s) held back; rerun with --allow-destructive to apply them."
                )
            )
        if not todo:
            return
        if options["interactive"]:
            try:
                answer = input(f"Apply {len(todo)} change(s)? [y/N] ")
            except EOFError:
                raise CommandError(
                    f"{len(todo)} change(s) to apply, but there is no terminal to confirm them: "
                    "run with --noinput to apply them without asking"
                ) from None
            if answer.strip().lower() not in ("y", "yes"):
                out.write("Nothing applied.")
                return
        # Keep the planned order: by pool, table and rank (columns before indexes).
        todo.sort(key=lambda a: (a.pool, a.table, a.rank))

        def progress(number: int, total: int, alter: Alter) -> None:
            out.write(f"Applying {number}/{total} [{alter.pool}] {alter.kind} {alter.table}")

        try:
            applied = apply_alters(engine, todo, progress)
        except Exception as exc:
            raise CommandError(f"schema change failed: {exc}") from None
        out.write(self.style.SUCCESS(f"Applied {applied} change(s)."))

    def _show(self, title: str, alters: list[Alter]) -> None:
        if not alters:
            return
        self.stdout.write(f"{title} ({len(alters)}):")
        for alter in alters:
            reason = f"  -- {alter.reason}" if alter.reason else ""
            self.stdout.write(f"  [{alter.pool}] {alter.sql};{reason}")
