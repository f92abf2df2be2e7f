"""``manage.py fluxa_reindex [Entity ...]``: rebuild Redis Search indexes from MySQL."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fluxa_django.errors import FluxaError
from fluxa_django.management.commands.fluxa_migrate import search_progress
from fluxa_django.migrate.search import apply_search, plan_search
from fluxa_django.runtime.search_index import Plan


class Command(BaseCommand):
    requires_system_checks = ["fluxa"]
    help = (
        "Rebuild the Redis Search index of each named entity (default: every searchable "
        "entity) from MySQL: a new index is back-filled while searches use the old one, "
        "then the alias is switched. Safe while the application writes; an interrupted "
        "run continues where it stopped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("entities", nargs="*", metavar="Entity", help="entity names")

    def handle(self, *args: Any, **options: Any) -> None:
        from fluxa_django.conf import get_engine

        names: list[str] = options["entities"]
        try:
            engine = get_engine()
            searchable = sorted(s.name for s in engine.schemas.values() if s.redis_search)
            unknown = [n for n in names if n not in searchable]
            if unknown:
                raise CommandError(
                    f"not a searchable entity: {', '.join(unknown)} "
                    f"(searchable: {', '.join(searchable) or 'none'})"
                )
            plans = plan_search(engine, names or None, force=True)
            for plan in plans:
                self.stdout.write(plan.describe())
            applied = apply_search(engine, plans, self._progress, force=True)
        except FluxaError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(f"Reindexed {applied} entit{'y' if applied == 1 else 'ies'}.")
        )

    def _progress(self, plan: Plan, done: int, total: int) -> None:
        search_progress(self.stdout, plan, done, total)
