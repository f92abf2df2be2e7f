"""A search racing with a delete (found by ``test_concurrent_tiers``, made deterministic).

``search_many`` of an entity with cache tiers selects the ids in MySQL, then loads
the rows through the tiers. A commit between the two steps is made to happen here
by an observer that runs a flush of another context just before the second step.
"""

from __future__ import annotations

from fluxa_django import Context, Engine, Query
from fluxa_django.runtime.observe import OBSERVERS
from tests.entities import Status
from tests.generated import CategoryEntityProvider, ProductEntityProvider


def seed(ctx: Context) -> tuple[int, list[int]]:
    category = CategoryEntityProvider.new(ctx)
    category.name = "race"
    ids = []
    for name in ("first", "second", "third"):
        product = ProductEntityProvider.new(ctx)
        product.name = name
        product.category = category
        product.status = Status.ACTIVE
        ids.append(product.id)
    ctx.flush()
    return category.id, ids


def search_while(engine: Engine, category: int, change: str, target: int) -> list[int]:
    """The ids ``search_many`` returns when ``target`` is deleted between its two steps."""
    done: list[str] = []

    def observer(source: str, operation: str) -> None:
        # The first Redis read of the search is its second step (the ids are selected).
        if source == "redis" and operation in ("get", "mget") and not done:
            done.append(operation)
            writer = engine.new_context()
            product = ProductEntityProvider.must_get_by_id(writer, target)
            if change == "soft":
                product.delete()
            else:
                product.force_delete()
            writer.flush()

    fields = ProductEntityProvider.fields
    query = Query().filter(fields.category.eq(category)).sort_by_asc(fields.id)
    OBSERVERS.append(observer)
    try:
        found = ProductEntityProvider.search_many(engine.new_context(), query)
    finally:
        OBSERVERS.remove(observer)
    assert done, "the delete ran between the two steps"
    return [p.id for p in found if not p.fake_delete] + [-p.id for p in found if p.fake_delete]


def test_search_leaves_out_a_row_deleted_between_its_two_steps(
    fluxa_engine: Engine, fluxa_ctx: Context
) -> None:
    category, ids = seed(fluxa_ctx)
    assert search_while(fluxa_engine, category, "hard", ids[1]) == [ids[0], ids[2]]


def test_search_leaves_out_a_row_soft_deleted_between_its_two_steps(
    fluxa_engine: Engine, fluxa_ctx: Context
) -> None:
    """Searches never return soft-deleted rows (SPEC: every WHERE-based read excludes them),
    and the docs say a row deleted between the two steps is left out; a soft-deleted one
    comes back (its id negated here), with ``fake_delete`` set."""
    category, ids = seed(fluxa_ctx)
    assert search_while(fluxa_engine, category, "soft", ids[1]) == [ids[0], ids[2]]
