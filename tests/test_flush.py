"""Flush (unit of work) and Context behaviour against real MariaDB + Redis."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import MySQLdb
import pytest
from django.db import transaction

from fluxa_django import Context, EntityNotFound, IntegrityError, OperationalError, Query
from fluxa_django.runtime.state import state_of
from fluxa_django.testing.plugin import QueryCounter, clear_redis_db
from tests.generated import (
    CategoryEntity,
    CategoryEntityProvider,
    ProductEntity,
    ProductEntityProvider,
    Status,
    UserEntityProvider,
)

AssertQueries = Callable[..., AbstractContextManager[QueryCounter]]


def statements(ctx: Context) -> list[str]:
    log: list[str] = []
    ctx.register_query_logger(lambda e: log.append(e["query"]), redis=False, local=False)
    return log


def new_product(ctx: Context, category: CategoryEntity, name: str) -> ProductEntity:
    product = ProductEntityProvider.new(ctx)
    product.name = name
    product.category = category
    product.status = Status.ACTIVE
    return product


def new_category(ctx: Context, name: str) -> CategoryEntity:
    category = CategoryEntityProvider.new(ctx)
    category.name = name
    return category


def count(ctx: Context, table: str) -> int:
    row = ctx.engine.mysql().query_row(f"SELECT COUNT(*) FROM `{table}`")
    assert row is not None
    return int(row[0])


def test_new_entities_are_one_multi_row_insert_per_table(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    category = new_category(fluxa_ctx, "Books")
    products = [new_product(fluxa_ctx, category, f"Book {i}") for i in range(5)]
    log = statements(fluxa_ctx)
    with fluxa_assert_queries(mysql=2, redis=2):
        fluxa_ctx.flush()
    assert [s.split(" (")[0] for s in log] == [
        "INSERT INTO `CategoryEntity`",
        "INSERT INTO `ProductEntity`",
    ]
    assert count(fluxa_ctx, "ProductEntity") == 5
    assert all(not p.is_new and not p.is_dirty for p in products)
    fresh = ProductEntityProvider.must_get_by_id(fluxa_ctx.engine.new_context(), products[0].id)
    assert fresh.category_id == category.id, "new entities reference each other before the flush"
    assert (
        abs(
            fresh.created_at - datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        ).total_seconds()
        < 5
    )


def test_ids_are_allocated_in_new_and_unique(fluxa_ctx: Context) -> None:
    ids = [new_category(fluxa_ctx, f"c{i}").id for i in range(150)]
    assert len(set(ids)) == 150
    assert ids == sorted(ids)
    fluxa_ctx.flush()
    other = fluxa_ctx.engine.new_context()
    assert CategoryEntityProvider.new(other).id not in ids


def test_id_counter_is_seeded_from_max_id(fluxa_ctx: Context) -> None:
    state_of(fluxa_ctx.engine).bind(UserEntityProvider).forget_ids()  # a fresh process
    fluxa_ctx.engine.mysql().exec(
        "INSERT INTO UserEntity (id, name, email) VALUES (?, ?, ?)", 5000, "x", "x@e"
    )
    user = UserEntityProvider.new(fluxa_ctx)
    assert user.id > 5000


def test_a_busy_process_reserves_bigger_id_blocks(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    state_of(fluxa_ctx.engine).bind(UserEntityProvider).forget_ids()  # a fresh process
    with fluxa_assert_queries() as counter:
        ids = [UserEntityProvider.new(fluxa_ctx).id for _ in range(6300)]
    fluxa_ctx.clear_flush()
    assert len(set(ids)) == 6300 and ids == sorted(ids)
    reserves = [op for _, op in counter.operations if op == "reserve ids"]
    # blocks of 100, 200, 400, ... (plus one retry after seeding from MAX(id)), not 63
    assert 6 <= len(reserves) <= 7, reserves


def test_required_reference_unset_fails_and_writes_nothing(fluxa_ctx: Context) -> None:
    category = new_category(fluxa_ctx, "Toys")
    product = ProductEntityProvider.new(fluxa_ctx)
    product.name = "Orphan"
    with pytest.raises(
        ValueError, match=r"ProductEntity\.category: a required reference is not set"
    ):
        fluxa_ctx.flush()
    assert count(fluxa_ctx, "CategoryEntity") == 0, "nothing of the flush was written"
    assert category.is_new and product.is_new
    product.category = category
    fluxa_ctx.flush()
    assert count(fluxa_ctx, "ProductEntity") == 1


def test_failing_flush_leaves_mysql_unchanged_and_entities_dirty(fluxa_ctx: Context) -> None:
    category = new_category(fluxa_ctx, "Games")
    first = new_product(fluxa_ctx, category, "Chess")
    fluxa_ctx.flush()
    first.name = "Chess deluxe"
    extra = new_product(fluxa_ctx, category, "Go")
    clash = new_product(fluxa_ctx, category, "Go")  # duplicate unique name
    with pytest.raises(IntegrityError, match="Duplicate entry") as failed:
        fluxa_ctx.flush()
    assert isinstance(failed.value.__cause__, MySQLdb.IntegrityError)
    assert (failed.value.entity, failed.value.table, failed.value.pool) == (
        "ProductEntity",
        "ProductEntity",
        "default",
    )
    assert str(failed.value).startswith("ProductEntity (table `ProductEntity`) on mysql pool")
    assert count(fluxa_ctx, "ProductEntity") == 1
    row = fluxa_ctx.engine.mysql().query_row(
        "SELECT name FROM ProductEntity WHERE id = ?", first.id
    )
    assert row == ("Chess",), "the update in the failed flush was rolled back"
    assert first.is_dirty and first.name == "Chess deluxe"
    assert extra.is_new and clash.is_new
    clash.name = "Go (2)"
    fluxa_ctx.flush()
    assert count(fluxa_ctx, "ProductEntity") == 3
    row = fluxa_ctx.engine.mysql().query_row(
        "SELECT name FROM ProductEntity WHERE id = ?", first.id
    )
    assert row == ("Chess deluxe",)


def test_update_touches_only_changed_columns(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    category = new_category(fluxa_ctx, "Food")
    product = new_product(fluxa_ctx, category, "Bread")
    fluxa_ctx.flush()
    ctx = fluxa_ctx.engine.new_context()
    loaded = ProductEntityProvider.must_get_by_id(ctx, product.id)
    log = statements(ctx)
    loaded.name = "Bread"  # unchanged
    loaded.price = 2.0
    loaded.price = 0.0  # set back
    with fluxa_assert_queries(mysql=0):
        ctx.flush()
    loaded.price = 3.25
    with fluxa_assert_queries(mysql=1):
        ctx.flush()
    assert log == ["UPDATE `ProductEntity` SET `price`=%s WHERE `id`=%s -- 2 parameter(s)"]
    assert (
        ProductEntityProvider.must_get_by_id(fluxa_ctx.engine.new_context(), product.id).price
        == 3.25
    )


def test_deletes_are_batched(fluxa_ctx: Context, fluxa_assert_queries: AssertQueries) -> None:
    categories = [new_category(fluxa_ctx, f"c{i}") for i in range(4)]
    fluxa_ctx.flush()
    log = statements(fluxa_ctx)
    for category in categories[:3]:
        category.delete()
    with fluxa_assert_queries(mysql=1):
        fluxa_ctx.flush()
    assert log[0].startswith("DELETE FROM `CategoryEntity` WHERE `id` IN (%s,%s,%s)")
    assert count(fluxa_ctx, "CategoryEntity") == 1
    with pytest.raises(ValueError, match="was deleted"):
        categories[0].name = "again"


def test_deleting_a_new_entity_just_forgets_it(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    category = new_category(fluxa_ctx, "tmp")
    category.delete()
    with fluxa_assert_queries(mysql=0):
        fluxa_ctx.flush()


def test_soft_delete_stores_own_id_and_fires_delete_hook(fluxa_ctx: Context) -> None:
    events: list[tuple[str, int]] = []
    ProductEntityProvider.on_after_delete(lambda ctx, e: events.append(("delete", e.id)))
    ProductEntityProvider.on_after_update(lambda ctx, e, c: events.append(("update", e.id)))
    try:
        category = new_category(fluxa_ctx, "Soft")
        product = new_product(fluxa_ctx, category, "Soft")
        fluxa_ctx.flush()
        product.delete()
        fluxa_ctx.flush()
        row = fluxa_ctx.engine.mysql().query_row(
            "SELECT fake_delete FROM ProductEntity WHERE id = ?", product.id
        )
        assert row == (product.id,)
        assert product.fake_delete
        assert events == [("delete", product.id)]
    finally:
        ProductEntityProvider._after_delete = None
        ProductEntityProvider._after_update = None


def test_hooks_get_the_entity_and_update_hooks_the_old_values(fluxa_ctx: Context) -> None:
    seen: list[tuple[str, Any]] = []
    CategoryEntityProvider.on_after_insert(lambda ctx, e: seen.append(("insert", e.name)))
    CategoryEntityProvider.on_after_update(lambda ctx, e, changes: seen.append(("update", changes)))
    CategoryEntityProvider.on_after_delete(lambda ctx, e: seen.append(("delete", e.id)))
    try:
        category = new_category(fluxa_ctx, "Old")
        fluxa_ctx.flush()
        category.name = "New"
        fluxa_ctx.flush()
        category.delete()
        fluxa_ctx.flush()
        assert seen == [("insert", "Old"), ("update", {"name": "Old"}), ("delete", category.id)]
    finally:
        CategoryEntityProvider._after_insert = None
        CategoryEntityProvider._after_update = None
        CategoryEntityProvider._after_delete = None


def test_clear_flush_drops_new_and_reverts_loaded(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    category = new_category(fluxa_ctx, "Keep")
    fluxa_ctx.flush()
    category.name = "Changed"
    new_category(fluxa_ctx, "Dropped")
    fluxa_ctx.clear_flush()
    assert category.name == "Keep" and not category.is_dirty
    with fluxa_assert_queries(mysql=0):
        fluxa_ctx.flush()
    assert count(fluxa_ctx, "CategoryEntity") == 1


def test_context_cache_serves_repeated_reads(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    category = new_category(fluxa_ctx, "Cached")
    fluxa_ctx.flush()
    ctx = fluxa_ctx.engine.new_context()
    with fluxa_assert_queries(mysql=2):
        first = CategoryEntityProvider.get_by_id(ctx, category.id)
        again = CategoryEntityProvider.get_by_id(ctx, category.id)
        assert CategoryEntityProvider.get_by_id(ctx, 65_000) is None
    assert first is again
    ctx.set_context_cache_ttl(0)
    with fluxa_assert_queries(mysql=2):
        CategoryEntityProvider.get_by_id(ctx, category.id)
        CategoryEntityProvider.get_by_id(ctx, category.id)


def test_cached_miss_costs_nothing_the_second_time(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    ctx = fluxa_ctx.engine.new_context()
    with fluxa_assert_queries(mysql=1):
        assert CategoryEntityProvider.get_by_id(ctx, 4242) is None
        assert CategoryEntityProvider.get_by_id(ctx, 4242) is None
    ctx.disable_context_cache()
    with fluxa_assert_queries(mysql=1):
        assert CategoryEntityProvider.get_by_id(ctx, 4242) is None


def test_must_get_by_id_raises_entity_not_found(fluxa_ctx: Context) -> None:
    with pytest.raises(EntityNotFound, match="CategoryEntity with id 77 not found"):
        CategoryEntityProvider.must_get_by_id(fluxa_ctx, 77)


def test_new_with_id(fluxa_ctx: Context) -> None:
    category = CategoryEntityProvider.new_with_id(fluxa_ctx, 321)
    category.name = "Chosen"
    fluxa_ctx.flush()
    assert (
        CategoryEntityProvider.must_get_by_id(fluxa_ctx.engine.new_context(), 321).name == "Chosen"
    )
    with pytest.raises(ValueError, match=r"CategoryEntity\.id: 70000 is not a valid id"):
        CategoryEntityProvider.new_with_id(fluxa_ctx, 70000)


def test_query_logger_entries(fluxa_ctx: Context) -> None:
    entries: list[dict[str, Any]] = []
    fluxa_ctx.register_query_logger(entries.append)
    fluxa_ctx.set_meta_data("request", "r-1")
    CategoryEntityProvider.get_by_id(fluxa_ctx, 5)
    (entry,) = entries
    assert (
        entry["source"] == "mysql" and entry["pool"] == "default" and entry["operation"] == "select"
    )
    assert entry["query"].startswith("SELECT `id`,`name` FROM `CategoryEntity` WHERE `id` = %s")
    assert (
        entry["microseconds"] >= 0
        and entry["error"] is None
        and entry["meta"] == {"request": "r-1"}
    )
    clone = fluxa_ctx.clone()
    CategoryEntityProvider.get_by_id(clone, 6)
    assert len(entries) == 2, "a clone keeps the loggers"


def test_flush_inside_atomic_joins_it_and_defers_side_effects(fluxa_ctx: Context) -> None:
    inserted: list[int] = []
    CategoryEntityProvider.on_after_insert(lambda ctx, e: inserted.append(e.id))
    try:
        with transaction.atomic():
            category = new_category(fluxa_ctx, "Atomic")
            fluxa_ctx.flush()
            assert inserted == [], "hooks wait for the commit"
        assert inserted == [category.id]
        with pytest.raises(RuntimeError), transaction.atomic():
            rolled = new_category(fluxa_ctx, "Rolled back")
            fluxa_ctx.flush()
            raise RuntimeError("abort")
        assert inserted == [category.id], "no hook for a rolled back insert"
        assert CategoryEntityProvider.get_by_id(fluxa_ctx.engine.new_context(), rolled.id) is None
        assert count(fluxa_ctx, "CategoryEntity") == 1
    finally:
        CategoryEntityProvider._after_insert = None


def test_search_hydrates_into_the_context(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    category = new_category(fluxa_ctx, "Hydrate")
    fluxa_ctx.flush()
    ctx = fluxa_ctx.engine.new_context()
    with fluxa_assert_queries(mysql=1):
        (found,) = CategoryEntityProvider.search_many(ctx, Query())
        assert CategoryEntityProvider.get_by_id(ctx, category.id) is found


def test_deleting_an_already_soft_deleted_entity_changes_nothing(fluxa_ctx: Context) -> None:
    updates: list[dict[str, Any]] = []
    ProductEntityProvider.on_after_update(lambda ctx, e, changes: updates.append(changes))
    try:
        product = new_product(fluxa_ctx, new_category(fluxa_ctx, "Twice"), "Twice")
        fluxa_ctx.flush()
        product.delete()
        fluxa_ctx.flush()
        product.delete()
        fluxa_ctx.flush()
        assert not product.is_dirty
        product.price = 5.0
        fluxa_ctx.flush()
        assert updates == [{"price": 0.0}], "a later change is an update, not another delete"
    finally:
        ProductEntityProvider._after_update = None


def test_a_failing_hook_raises_after_the_commit_and_other_hooks_still_run(
    fluxa_ctx: Context,
) -> None:
    from fluxa_django import HookError

    seen: list[str] = []

    def broken(ctx: Context, entity: CategoryEntity) -> None:
        seen.append(entity.name)
        raise RuntimeError("hook bug")

    CategoryEntityProvider.on_after_insert(broken)
    try:
        new_category(fluxa_ctx, "A")
        new_category(fluxa_ctx, "B")
        with pytest.raises(HookError, match="2 after-flush hook"):
            fluxa_ctx.flush()
        assert sorted(seen) == ["A", "B"]
        assert count(fluxa_ctx, "CategoryEntity") == 2, "the data was saved"
    finally:
        CategoryEntityProvider._after_insert = None


def test_get_by_index_returns_id_order(fluxa_ctx: Context) -> None:
    category = new_category(fluxa_ctx, "Ordered")
    for id_ in (30, 10, 20):
        product = ProductEntityProvider.new_with_id(fluxa_ctx, id_)
        product.name = f"p{id_}"
        product.category = category
        product.status = Status.DRAFT
    fluxa_ctx.flush()
    found = ProductEntityProvider.get_by_index_category_status(fluxa_ctx, category.id, Status.DRAFT)
    assert [p.id for p in found] == [10, 20, 30]


def test_updates_of_the_same_columns_share_one_statement(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    category = new_category(fluxa_ctx, "Batch")
    products = [new_product(fluxa_ctx, category, f"b{i}") for i in range(5)]
    fluxa_ctx.flush()
    for i, product in enumerate(products[:4]):
        product.price = 10.0 + i
    products[4].name = "renamed"
    products[4].price = 99.0
    log = statements(fluxa_ctx)
    with fluxa_assert_queries(mysql=2):
        fluxa_ctx.flush()
    whens = " WHEN %s THEN %s" * 4
    assert sorted(log) == [
        "UPDATE `ProductEntity` SET `name`=%s,`price`=%s WHERE `id`=%s -- 3 parameter(s)",
        f"UPDATE `ProductEntity` SET `price`=CASE `id`{whens} END WHERE `id` IN (%s,%s,%s,%s)"
        " -- 12 parameter(s)",
    ]
    rows = fluxa_ctx.engine.mysql().query("SELECT name, price FROM ProductEntity ORDER BY id")
    assert [(n, float(p)) for n, p in rows] == [
        ("b0", 10.0),
        ("b1", 11.0),
        ("b2", 12.0),
        ("b3", 13.0),
        ("renamed", 99.0),
    ]


def test_each_engine_allocates_ids_from_its_own_database(fluxa_ctx: Context, mysql_db: str) -> None:
    from fluxa_django import Registry
    from fluxa_django.conf import entity_classes
    from fluxa_django.migrate import apply_alters, plan_mysql
    from tests.services import REDIS_ADDRESS, REDIS_TEST_DB, mysql_uri

    registry = Registry()
    registry.register_mysql(mysql_uri(mysql_db))
    registry.register_redis(REDIS_ADDRESS, REDIS_TEST_DB)
    registry.register_redis(REDIS_ADDRESS, 0, "search")
    registry.register_local_cache("default", 10)
    registry.register_entity(*entity_classes(["tests.entities"]))
    other = registry.validate()
    try:
        apply_alters(other, plan_mysql(other).alters)
        clear_redis_db(other.redis().client)
        other.mysql().exec("INSERT INTO CategoryEntity (id, name) VALUES (?, ?)", 5000, "theirs")
        mine = CategoryEntityProvider.new(fluxa_ctx).id
        theirs = CategoryEntityProvider.new(other.new_context()).id
        assert theirs > 5000, "seeded from the other engine's database"
        assert mine < 5000
        assert CategoryEntityProvider.new(fluxa_ctx).id == mine + 1
    finally:
        clear_redis_db(other.redis().client)
        other.close()


def test_a_flush_leaves_nothing_tracked(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    category = new_category(fluxa_ctx, "Tracked")
    fluxa_ctx.flush()
    category.name = "Other"
    category.name = "Tracked"  # set back: nothing to write
    fluxa_ctx.flush()
    assert fluxa_ctx._tracked == {}


# -- entity state: only the entity's own methods change it ---------------------------------------


def test_setting_a_value_back_makes_the_entity_clean_again(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    category = new_category(fluxa_ctx, "Books")
    fluxa_ctx.flush()
    ctx = fluxa_ctx.engine.new_context()
    loaded = CategoryEntityProvider.must_get_by_id(ctx, category.id)
    loaded.name = "Comics"
    assert loaded.is_dirty and loaded.changed_columns() == [1]
    assert ctx.tracked == [loaded]
    loaded.name = "Books"
    assert not loaded.is_dirty
    assert loaded.changed_columns() == []
    assert ctx.tracked == [], "a clean entity is not tracked"
    assert repr(loaded) == f"<CategoryEntity id={category.id}>"
    with fluxa_assert_queries(mysql=0, redis=0):
        ctx.flush()


def test_reverting_one_of_two_changes_keeps_the_other(fluxa_ctx: Context) -> None:
    category = new_category(fluxa_ctx, "Games")
    product = new_product(fluxa_ctx, category, "Chess")
    fluxa_ctx.flush()
    ctx = fluxa_ctx.engine.new_context()
    loaded = ProductEntityProvider.must_get_by_id(ctx, product.id)
    loaded.name = "Go"
    loaded.status = Status.ARCHIVED
    loaded.name = "Chess"
    assert loaded.is_dirty
    assert [ProductEntityProvider.attribute_names[i] for i in loaded.changed_columns()] == [
        "status"
    ]
    ctx.flush()
    again = ProductEntityProvider.must_get_by_id(fluxa_ctx.engine.new_context(), product.id)
    assert (again.name, again.status) == ("Chess", Status.ARCHIVED)


def test_after_a_flush_entities_are_clean_and_their_rows_immutable(fluxa_ctx: Context) -> None:
    category = new_category(fluxa_ctx, "Toys")
    product = new_product(fluxa_ctx, category, "Kite")
    assert product.is_new and product.is_dirty
    fluxa_ctx.flush()
    for entity in (category, product):
        assert not entity.is_new and not entity.is_dirty
        assert entity.changed_columns() == []
        assert isinstance(entity._row, tuple), "an inserted row is a tuple after the flush"
    product.name = "Big kite"
    fluxa_ctx.flush()
    assert isinstance(product._row, tuple) and product._orig is None
    assert not product.is_dirty and product.name == "Big kite"
    # A changed-and-reverted value after a flush is measured against the flushed row.
    product.name = "Small kite"
    product.name = "Big kite"
    assert not product.is_dirty and fluxa_ctx.tracked == []


def test_clear_flush_reverts_through_the_entity(fluxa_ctx: Context) -> None:
    category = new_category(fluxa_ctx, "Music")
    fluxa_ctx.flush()
    category.name = "Noise"
    added = new_category(fluxa_ctx, "Extra")
    fluxa_ctx.clear_flush()
    assert category.name == "Music" and not category.is_dirty
    assert isinstance(category._row, tuple)
    assert not added.is_dirty and fluxa_ctx.tracked == []
    with pytest.raises(ValueError, match="deleted"):
        added.name = "no longer flushable"


def test_read_errors_are_ours_and_name_the_entity(fluxa_ctx: Context) -> None:
    fluxa_ctx.engine.mysql().exec("ALTER TABLE `UserEntity` RENAME COLUMN `age` TO `age_old`")
    try:
        with pytest.raises(OperationalError, match="Unknown column") as failed:
            UserEntityProvider.get_by_id(fluxa_ctx.engine.new_context(), 1)
        assert isinstance(failed.value.__cause__, MySQLdb.OperationalError)
        assert (failed.value.entity, failed.value.table, failed.value.pool) == (
            "UserEntity",
            "UserEntity",
            "default",
        )
        assert failed.value.code == 1054
    finally:
        fluxa_ctx.engine.mysql().exec("ALTER TABLE `UserEntity` RENAME COLUMN `age_old` TO `age`")
