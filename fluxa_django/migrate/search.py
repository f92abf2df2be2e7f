"""Redis Search indexes in ``fluxa_migrate``: what to build, and building it.

An entity's index is built under a name derived from its definition and the
application's alias switched to it only when it is complete (see
``runtime/search_index.py``): applying a plan never leaves searches with a
half-built index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fluxa_django.runtime.search_index import Plan, for_schema

if TYPE_CHECKING:
    from fluxa_django.engine import Engine


def plan_search(
    engine: Engine, entities: list[str] | None = None, force: bool = False
) -> list[Plan]:
    """The index builds the searchable entities need (all of them with ``force``)."""
    plans: list[Plan] = []
    for schema in sorted(engine.schemas.values(), key=lambda s: s.name):
        if schema.redis_search is None or (entities is not None and schema.name not in entities):
            continue
        plan = for_schema(engine, schema).plan(force)
        if plan.action:
            plans.append(plan)
    return plans


def apply_search(
    engine: Engine,
    plans: list[Plan],
    progress: Callable[[Plan, int, int], None] | None = None,
    force: bool = False,
) -> int:
    """Build each planned index (back-fill, check, switch the alias); returns how many."""
    for plan in plans:
        schema = engine.registered(plan.entity)
        assert schema is not None
        index = for_schema(engine, schema)

        def report(done: int, total: int, plan: Plan = plan) -> None:
            if progress is not None:
                progress(plan, done, total)

        index.build(force=force, progress=report)
    return len(plans)
