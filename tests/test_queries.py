"""``Where``, ``Pager``, ``Query`` and the generated providers' reads against MySQL.

Covers the SQL each building block produces, every typed operator, ordering and
paging, index lookups, ``get_by_ids``, bound parameters (no SQL injection) and
soft deletes.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest

from fluxa_django import Context, EntityNotFound, IntegrityError, Pager, Query, Where
from fluxa_django.runtime.query import Condition
from fluxa_django.testing.plugin import QueryCounter
from tests.generated import (
    CategoryEntity,
    CategoryEntityProvider,
    EveryTypeEntityProvider,
    ProductEntity,
    ProductEntityProvider,
    Status,
    Tag,
)

AssertQueries = Callable[..., AbstractContextManager[QueryCounter]]
F = ProductEntityProvider.fields


def names(entities: Iterable[ProductEntity | CategoryEntity]) -> list[str]:
    return [e.name for e in entities]


def raw_count(ctx: Context, table: str) -> int:
    row = ctx.engine.mysql().query_row(f"SELECT COUNT(*) FROM `{table}`")
    assert row is not None
    return int(row[0])


# -- Where ----------------------------------------------------------------------------------


def test_where_uses_question_mark_placeholders() -> None:
    where = Where("`name` = ? AND `price` > ?", "a", 5)
    assert where.compile() == ("`name` = %s AND `price` > %s", ("a", 5))
    assert where.parameters == ("a", 5)
    assert where.sql == "`name` = ? AND `price` > ?"


def test_where_expands_a_list_after_in() -> None:
    where = Where("`id` IN ? AND `name` = ?", [1, 2, 3], "x")
    assert where.compile() == ("`id` IN (%s,%s,%s) AND `name` = %s", (1, 2, 3, "x"))


def test_where_binds_enum_members_as_their_values() -> None:
    where = Where("`status` = ? AND `status` IN ?", Status.ACTIVE, [Status.DRAFT, Status.ARCHIVED])
    assert where.compile() == (
        "`status` = %s AND `status` IN (%s,%s)",
        ("active", "draft", "archived"),
    )


def test_where_question_mark_inside_a_literal_is_not_a_placeholder() -> None:
    assert Where("`name` = '?' OR `name` = ?", "x").compile() == (
        "`name` = '?' OR `name` = %s",
        ("x",),
    )


def test_where_append_adds_sql_and_parameters() -> None:
    where = Where("`price` > ?", 1)
    assert where.append("AND `name` = ?", "a") is where
    where.append(" OR `id` IN ?", [7, 8])
    assert where.sql == "`price` > ? AND `name` = ? OR `id` IN ?"
    assert where.compile() == (
        "`price` > %s AND `name` = %s OR `id` IN (%s,%s)",
        (1, "a", 7, 8),
    )


def test_where_set_parameter_is_one_based() -> None:
    where = Where("`a` = ? AND `b` = ?", 1, 2)
    assert where.set_parameter(1, 10) is where
    where.set_parameter(2, [3, 4])
    assert where.parameters == (10, [3, 4])


@pytest.mark.parametrize("index", [0, 3, -1])
def test_where_set_parameter_out_of_range(index: int) -> None:
    where = Where("`a` = ? AND `b` = ?", 1, 2)
    with pytest.raises(IndexError, match=rf"2 parameter\(s\); index {index} is out of range"):
        where.set_parameter(index, 5)
    assert where.parameters == (1, 2)


def test_where_set_parameters_replaces_all() -> None:
    where = Where("`a` = ? AND `b` IN ?", 1, [2])
    assert where.set_parameters(9, [8, 7]) is where
    assert where.compile() == ("`a` = %s AND `b` IN (%s,%s)", (9, 8, 7))


def test_where_with_fake_deletes_is_opt_in() -> None:
    where = Where("`id` > ?", 0)
    assert not where.includes_fake_deletes
    assert where.with_fake_deletes() is where
    assert where.includes_fake_deletes


@pytest.mark.parametrize(
    ("sql", "params", "pattern"),
    [
        ("`a` = ?", (), r"1 placeholder\(s\) but 0 parameter"),
        ("`a` = ?", (1, 2), r"1 placeholder\(s\) but 2 parameter"),
        ("`a` = 1", (5,), r"0 placeholder\(s\) but 1 parameter"),
        ("`a` IN ? AND `b` = ?", ([1, 2],), r"2 placeholder\(s\) but 1 parameter"),
    ],
)
def test_where_placeholder_count_mismatch(sql: str, params: tuple[Any, ...], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        Where(sql, *params).compile()


def test_where_rejects_non_string_sql() -> None:
    with pytest.raises(TypeError, match="Where sql must be a str"):
        Where(5)  # type: ignore[arg-type]


# -- Pager -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "size", "limit"),
    [(1, 10, " LIMIT 0,10"), (2, 50, " LIMIT 50,50"), (3, 7, " LIMIT 14,7")],
)
def test_pager_is_one_based(page: int, size: int, limit: str) -> None:
    pager = Pager(page, size)
    assert pager.limit_sql() == limit
    assert pager.offset == (page - 1) * size


def test_pager_increment_page_moves_the_window() -> None:
    pager = Pager(1, 20)
    assert pager.increment_page() is pager
    assert pager.limit_sql() == " LIMIT 20,20"


@pytest.mark.parametrize(
    ("page", "size", "pattern"),
    [
        (0, 10, "page must be an int >= 1"),
        (-1, 10, "page must be an int >= 1"),
        (True, 10, "page must be an int >= 1"),
        (1.0, 10, "page must be an int >= 1"),
        (1, 0, "size must be an int >= 1"),
        (1, -5, "size must be an int >= 1"),
        (1, True, "size must be an int >= 1"),
    ],
)
def test_pager_rejects_invalid_values(page: Any, size: Any, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        Pager(page, size)


# -- Query building --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["`name` = 'a'", Where("`id` = ?", 1), None, 5])
def test_query_filter_takes_only_conditions(bad: Any) -> None:
    query = Query()
    with pytest.raises(TypeError, match=r"Query\.filter takes conditions from Provider\.fields"):
        query.filter(bad)
    assert query.conditions == ()


@pytest.mark.parametrize("bad", ["`id` = 1", F.name.eq("a"), None])
def test_query_filter_where_takes_only_a_where(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"Query\.filter_where takes a Where"):
        Query().filter_where(bad)


def test_not_wraps_the_condition() -> None:
    cond = F.name.eq("a").not_()
    assert isinstance(cond, Condition)
    assert (cond.sql, cond.params) == ("NOT (`name` = ?)", ("a",))
    double = F.price.in_([1, 2]).not_()
    assert (double.sql, double.params) == ("NOT (`price` IN (?,?))", (1, 2))


def test_sort_keeps_the_order_of_calls() -> None:
    query = Query().sort_by_desc(F.price).sort_by_asc(F.name).sort_by_asc(F.id)
    assert query.order_clause() == " ORDER BY `price` DESC,`name` ASC,`id` ASC"
    assert Query().order_clause() == ""


def test_conditions_are_anded_with_the_where_and_the_fake_delete_filter() -> None:
    query = (
        Query()
        .filter(F.name.eq("a"), F.status.in_([Status.ACTIVE, Status.DRAFT]))
        .filter_where(Where("`price` > ? OR `id` IN ?", 5, [1, 2]))
    )
    assert query.where_clause("`fake_delete`") == (
        " WHERE `name` = %s AND `status` IN (%s,%s) AND (`price` > %s OR `id` IN (%s,%s))"
        " AND `fake_delete` = 0",
        ("a", "active", "draft", 5, 1, 2),
    )
    # no soft-delete column: no filter; with_fake_deletes(): no filter either
    assert query.where_clause(None)[0].endswith("(`price` > %s OR `id` IN (%s,%s))")
    query.filter_where(Where("`id` > ?", 0).with_fake_deletes())
    assert query.where_clause("`fake_delete`") == (
        " WHERE `name` = %s AND `status` IN (%s,%s) AND (`id` > %s)",
        ("a", "active", "draft", 0),
    )


def test_empty_query_has_no_where_clause() -> None:
    assert Query().where_clause(None) == ("", ())
    assert Query().where_clause("`fake_delete`") == (" WHERE `fake_delete` = 0", ())


# -- against MySQL ----------------------------------------------------------------------------


@dataclass
class Catalog:
    books: CategoryEntity
    games: CategoryEntity
    ids: dict[str, int]


PRODUCTS = [
    # name, price, category, status, weight, released
    ("alpha", 10.0, "books", Status.ACTIVE, 1.5, datetime.date(2024, 1, 1)),
    ("beta", 20.5, "books", Status.DRAFT, None, None),
    ("gamma", 30.0, "games", Status.ACTIVE, 3.0, datetime.date(2024, 6, 1)),
    ("delta", 5.25, "games", Status.ARCHIVED, None, None),
    ("epsilon", 20.5, "books", Status.ACTIVE, 0.0, datetime.date(2023, 12, 31)),
]


@pytest.fixture
def catalog(fluxa_ctx: Context) -> Catalog:
    books = CategoryEntityProvider.new(fluxa_ctx)
    books.name = "Books"
    games = CategoryEntityProvider.new(fluxa_ctx)
    games.name = "Games"
    categories = {"books": books, "games": games}
    ids = {}
    for name, price, category, status, weight, released in PRODUCTS:
        product = ProductEntityProvider.new(fluxa_ctx)
        product.name = name
        product.price = price
        product.category = categories[category]
        product.status = status
        product.weight = weight
        product.released = released
        ids[name] = product.id
    fluxa_ctx.flush()
    return Catalog(books, games, ids)


def search_names(ctx: Context, *conditions: Condition) -> set[str]:
    return set(names(ProductEntityProvider.search_many(ctx, Query().filter(*conditions))))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        pytest.param(F.name.eq("beta"), {"beta"}, id="eq"),
        pytest.param(F.name.eq("BETA"), {"beta"}, id="eq-collation-ci"),
        pytest.param(F.name.eq("zeta"), set(), id="eq-none"),
        pytest.param(F.status.is_(Status.ACTIVE), {"alpha", "gamma", "epsilon"}, id="is_"),
        pytest.param(F.price.gt(20.5), {"gamma"}, id="gt"),
        pytest.param(F.price.gte(20.5), {"beta", "gamma", "epsilon"}, id="gte"),
        pytest.param(F.price.lt(10), {"delta"}, id="lt"),
        pytest.param(F.price.lte(10), {"alpha", "delta"}, id="lte"),
        pytest.param(F.name.in_(["alpha", "delta", "zeta"]), {"alpha", "delta"}, id="in_"),
        pytest.param(
            F.status.in_([Status.DRAFT, Status.ARCHIVED]), {"beta", "delta"}, id="in_-enum"
        ),
        pytest.param(F.name.in_([]), set(), id="in_-empty"),
        pytest.param(F.name.like("%ta"), {"beta", "delta"}, id="like"),
        pytest.param(F.name.like("_amma"), {"gamma"}, id="like-underscore"),
        pytest.param(F.weight.is_null(), {"beta", "delta"}, id="is_null"),
        pytest.param(F.weight.is_not_null(), {"alpha", "gamma", "epsilon"}, id="is_not_null"),
        pytest.param(F.weight.eq(0.0), {"epsilon"}, id="eq-zero-is-not-null"),
        pytest.param(F.released.gte(datetime.date(2024, 1, 1)), {"alpha", "gamma"}, id="gte-date"),
        pytest.param(F.status.eq(Status.ACTIVE).not_(), {"beta", "delta"}, id="not_"),
        pytest.param(
            F.name.in_([]).not_(),
            {"alpha", "beta", "gamma", "delta", "epsilon"},
            id="not_-in_-empty",
        ),
    ],
)
def test_operator_returns_exactly_the_matching_rows(
    fluxa_ctx: Context, catalog: Catalog, condition: Condition, expected: set[str]
) -> None:
    assert search_names(fluxa_ctx, condition) == expected


def test_conditions_are_anded(fluxa_ctx: Context, catalog: Catalog) -> None:
    found = search_names(
        fluxa_ctx, F.category.eq(catalog.books.id), F.status.eq(Status.ACTIVE), F.price.gt(15)
    )
    assert found == {"epsilon"}


def test_filter_where_is_anded_with_conditions(fluxa_ctx: Context, catalog: Catalog) -> None:
    query = (
        Query()
        .filter(F.status.eq(Status.ACTIVE))
        .filter_where(Where("`price` < ? OR `name` = ?", 15, "gamma"))
    )
    assert set(names(ProductEntityProvider.search_many(fluxa_ctx, query))) == {"alpha", "gamma"}


def test_search_many_sorts_by_several_columns(fluxa_ctx: Context, catalog: Catalog) -> None:
    query = Query().sort_by_asc(F.price).sort_by_desc(F.name)
    found = ProductEntityProvider.search_many(fluxa_ctx, query)
    assert names(found) == ["delta", "alpha", "epsilon", "beta", "gamma"]
    query = Query().sort_by_desc(F.price).sort_by_asc(F.name)
    assert names(ProductEntityProvider.search_many(fluxa_ctx, query)) == [
        "gamma",
        "beta",
        "epsilon",
        "alpha",
        "delta",
    ]


@pytest.mark.parametrize(
    ("page", "expected"),
    [(1, ["alpha", "beta"]), (2, ["delta", "epsilon"]), (3, ["gamma"]), (4, [])],
)
def test_search_many_pages(
    fluxa_ctx: Context, catalog: Catalog, page: int, expected: list[str]
) -> None:
    query = Query().sort_by_asc(F.name).pager(Pager(page, 2))
    assert names(ProductEntityProvider.search_many(fluxa_ctx, query)) == expected


def test_search_many_returns_typed_loaded_entities(fluxa_ctx: Context, catalog: Catalog) -> None:
    ctx = fluxa_ctx.engine.new_context()
    found = ProductEntityProvider.search_many(ctx, Query().filter(F.name.eq("alpha")))
    assert len(found) == 1
    alpha = found[0]
    assert isinstance(alpha, ProductEntity)
    assert (alpha.id, alpha.price, alpha.status, alpha.weight) == (
        catalog.ids["alpha"],
        10.0,
        Status.ACTIVE,
        1.5,
    )
    assert alpha.released == datetime.date(2024, 1, 1)
    assert not alpha.is_dirty
    assert not alpha.fake_delete
    # the same row found again in this context is the same object
    assert ProductEntityProvider.get_by_id(ctx, alpha.id) is alpha


def test_search_many_with_total(fluxa_ctx: Context, catalog: Catalog) -> None:
    query = Query().filter(F.status.eq(Status.ACTIVE)).sort_by_asc(F.name).pager(Pager(1, 2))
    found, total = ProductEntityProvider.search_many_with_total(fluxa_ctx, query)
    assert (names(found), total) == (["alpha", "epsilon"], 3)
    query.pager(Pager(2, 2))
    found, total = ProductEntityProvider.search_many_with_total(fluxa_ctx, query)
    assert (names(found), total) == (["gamma"], 3)
    none = Query().filter(F.name.eq("zeta"))
    assert ProductEntityProvider.search_many_with_total(fluxa_ctx, none) == ([], 0)


def test_count(fluxa_ctx: Context, catalog: Catalog) -> None:
    assert ProductEntityProvider.count(fluxa_ctx) == 5
    assert ProductEntityProvider.count(fluxa_ctx, Query()) == 5
    assert ProductEntityProvider.count(fluxa_ctx, Query().filter(F.price.gte(20.5))) == 3
    paged = Query().filter(F.price.gte(20.5)).pager(Pager(1, 1))
    assert ProductEntityProvider.count(fluxa_ctx, paged) == 3, "count ignores the pager"
    assert CategoryEntityProvider.count(fluxa_ctx) == 2


def test_search_one_with_query_and_with_where(fluxa_ctx: Context, catalog: Catalog) -> None:
    most_expensive = ProductEntityProvider.search_one(fluxa_ctx, Query().sort_by_desc(F.price))
    assert most_expensive is not None
    assert most_expensive.name == "gamma"
    cheapest_active = ProductEntityProvider.search_one(
        fluxa_ctx, Query().filter(F.status.eq(Status.ACTIVE)).sort_by_asc(F.price)
    )
    assert cheapest_active is not None
    assert cheapest_active.name == "alpha"
    beta = ProductEntityProvider.search_one(fluxa_ctx, Where("`name` = ?", "beta"))
    assert beta is not None
    assert beta.id == catalog.ids["beta"]
    assert ProductEntityProvider.search_one(fluxa_ctx, Where("`name` = ?", "zeta")) is None


def test_search_one_does_not_change_the_callers_query(fluxa_ctx: Context, catalog: Catalog) -> None:
    query = Query().sort_by_asc(F.name).pager(Pager(1, 3))
    ProductEntityProvider.search_one(fluxa_ctx, query)
    assert names(ProductEntityProvider.search_many(fluxa_ctx, query)) == [
        "alpha",
        "beta",
        "delta",
    ]


def test_search_and_search_with_count(fluxa_ctx: Context, catalog: Catalog) -> None:
    where = Where("`price` >= ? AND `category` = ?", 10, catalog.books.id)
    assert set(names(ProductEntityProvider.search(fluxa_ctx, where))) == {
        "alpha",
        "beta",
        "epsilon",
    }
    page = ProductEntityProvider.search(fluxa_ctx, where, Pager(1, 2))
    assert len(page) == 2
    found, total = ProductEntityProvider.search_with_count(fluxa_ctx, where, Pager(2, 2))
    assert total == 3
    assert len(found) == 1
    assert set(names(page + found)) == {"alpha", "beta", "epsilon"}


def test_search_ids_and_search_ids_with_count(fluxa_ctx: Context, catalog: Catalog) -> None:
    ids = catalog.ids
    where = Where("`status` IN ?", [Status.ACTIVE, Status.DRAFT])
    expected = {ids["alpha"], ids["beta"], ids["gamma"], ids["epsilon"]}
    assert set(ProductEntityProvider.search_ids(fluxa_ctx, where)) == expected
    assert len(ProductEntityProvider.search_ids(fluxa_ctx, where, Pager(2, 3))) == 1
    page, total = ProductEntityProvider.search_ids_with_count(fluxa_ctx, where, Pager(1, 3))
    assert total == 4
    assert len(page) == 3
    assert set(page) <= expected
    assert all(type(i) is int for i in page)
    empty = ProductEntityProvider.search_ids_with_count(
        fluxa_ctx, Where("`name` = ?", "zeta"), Pager(1, 3)
    )
    assert empty == ([], 0)


def test_where_placeholder_mismatch_raises_before_querying(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    with fluxa_assert_queries(mysql=0), pytest.raises(ValueError, match="placeholder"):
        ProductEntityProvider.search(fluxa_ctx, Where("`name` = ? AND `price` > ?", "a"))


def test_where_with_a_literal_percent_sign_and_no_parameters(
    fluxa_ctx: Context, catalog: Catalog
) -> None:
    """A `%` written in the SQL text is not a driver placeholder."""
    found = ProductEntityProvider.search(fluxa_ctx, Where("`name` LIKE 'al%'"))
    assert names(found) == ["alpha"]
    assert names(CategoryEntityProvider.search(fluxa_ctx, Where("`name` LIKE 'Ga%'"))) == ["Games"]
    assert (
        CategoryEntityProvider.count(fluxa_ctx, Query().filter_where(Where("`name` LIKE '%'"))) == 2
    )


def test_where_with_a_literal_percent_sign_and_parameters(
    fluxa_ctx: Context, catalog: Catalog
) -> None:
    found = ProductEntityProvider.search(fluxa_ctx, Where("`name` LIKE 'al%' AND `price` > ?", 1))
    assert names(found) == ["alpha"]


def test_get_by_unique_index(fluxa_ctx: Context, catalog: Catalog) -> None:
    beta = ProductEntityProvider.get_by_unique_index_name(fluxa_ctx, "beta")
    assert beta is not None
    assert (beta.id, beta.name) == (catalog.ids["beta"], "beta")
    assert ProductEntityProvider.get_by_unique_index_name(fluxa_ctx, "zeta") is None
    games = CategoryEntityProvider.get_by_unique_index_name(fluxa_ctx, "Games")
    assert games is not None
    assert games.id == catalog.games.id


def test_get_by_index(fluxa_ctx: Context, catalog: Catalog) -> None:
    books_active = ProductEntityProvider.get_by_index_category_status(
        fluxa_ctx, catalog.books.id, Status.ACTIVE
    )
    assert names(books_active) == ["alpha", "epsilon"], "index lookups return rows in id order"
    second = ProductEntityProvider.get_by_index_category_status(
        fluxa_ctx, catalog.books.id, Status.ACTIVE, pager=Pager(2, 1)
    )
    assert names(second) == ["epsilon"]
    assert (
        ProductEntityProvider.get_by_index_category_status(
            fluxa_ctx, catalog.games.id, Status.DRAFT
        )
        == []
    )


def test_get_all_in_id_order(fluxa_ctx: Context, catalog: Catalog) -> None:
    everything = ProductEntityProvider.get_all(fluxa_ctx)
    assert [p.id for p in everything] == sorted(catalog.ids.values())
    assert set(names(everything)) == set(catalog.ids)
    assert names(CategoryEntityProvider.get_all(fluxa_ctx)) == ["Books", "Games"]


def test_get_by_ids_keeps_input_order_once_and_skips_missing(
    fluxa_ctx: Context, catalog: Catalog
) -> None:
    ids = catalog.ids
    ctx = fluxa_ctx.engine.new_context()
    wanted = [ids["gamma"], ids["alpha"], 999_999, ids["gamma"], ids["beta"], ids["alpha"]]
    assert names(ProductEntityProvider.get_by_ids(ctx, wanted)) == ["gamma", "alpha", "beta"]
    assert ProductEntityProvider.get_by_ids(ctx, []) == []
    assert ProductEntityProvider.get_by_ids(ctx, [999_998]) == []
    assert ProductEntityProvider.get_by_id(ctx, 999_999) is None
    with pytest.raises(EntityNotFound, match=r"ProductEntity with id 999999 not found"):
        ProductEntityProvider.must_get_by_id(ctx, 999_999)


def test_get_by_ids_of_100_entities_is_one_query(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    ids = []
    for i in range(100):
        category = CategoryEntityProvider.new(fluxa_ctx)
        category.name = f"category {i:03}"
        ids.append(category.id)
    fluxa_ctx.flush()

    ctx = fluxa_ctx.engine.new_context()
    wanted = list(reversed(ids))
    with fluxa_assert_queries(mysql=1, redis=0):
        found = CategoryEntityProvider.get_by_ids(ctx, wanted)
    assert [c.id for c in found] == wanted
    assert found[0].name == "category 099"
    # now in the context cache: no round trip at all
    with fluxa_assert_queries(mysql=0, redis=0):
        assert len(CategoryEntityProvider.get_by_ids(ctx, wanted)) == 100


def test_get_by_ids_of_100_products_is_at_most_one_mysql_query(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    """ProductEntity has cache tiers: a read may be served by them, but MySQL is asked once at most."""
    books = CategoryEntityProvider.new(fluxa_ctx)
    books.name = "Books"
    ids = []
    for i in range(100):
        product = ProductEntityProvider.new(fluxa_ctx)
        product.name = f"product {i:03}"
        product.category = books
        ids.append(product.id)
    fluxa_ctx.flush()

    ctx = fluxa_ctx.engine.new_context()
    with fluxa_assert_queries() as counter:
        found = ProductEntityProvider.get_by_ids(ctx, ids)
    assert counter.counts["mysql"] <= 1, counter.operations
    assert names(found) == [f"product {i:03}" for i in range(100)]


def test_search_without_caches_is_one_mysql_round_trip(
    fluxa_ctx: Context, catalog: Catalog, fluxa_assert_queries: AssertQueries
) -> None:
    ctx = fluxa_ctx.engine.new_context()
    with fluxa_assert_queries(mysql=1, redis=0):
        found = CategoryEntityProvider.search_many(
            ctx, Query().filter(CategoryEntityProvider.fields.name.like("%s")).pager(Pager(1, 10))
        )
    assert names(found) == ["Books", "Games"]
    with fluxa_assert_queries(mysql=1, redis=0):
        assert EveryTypeEntityProvider.search(ctx, Where("`u8` > ?", 1)) == []
    with fluxa_assert_queries(mysql=1, redis=0):
        assert CategoryEntityProvider.count(ctx) == 2


# -- bound parameters: no SQL injection -------------------------------------------------------

NASTY = [
    "x' OR '1'='1",
    "'; DROP TABLE ProductEntity; --",
    "\\'",
    "\\",
    "%",
    "?",
    "%s",
    '" OR ""="',
    "a`b",
    "'?'",
]


@pytest.fixture
def nasty_catalog(fluxa_ctx: Context) -> dict[str, int]:
    category = CategoryEntityProvider.new(fluxa_ctx)
    category.name = "nasty"
    ids = {}
    for value in [*NASTY, "plain"]:
        product = ProductEntityProvider.new(fluxa_ctx)
        product.name = value
        product.description = value
        product.category = category
        ids[value] = product.id
    fluxa_ctx.flush()
    return ids


def assert_products_table_intact(ctx: Context) -> None:
    assert ctx.engine.mysql().query_row("SHOW TABLES LIKE 'ProductEntity'") is not None
    assert raw_count(ctx, "ProductEntity") == len(NASTY) + 1


@pytest.mark.parametrize("value", NASTY)
def test_field_values_are_stored_literally(
    fluxa_ctx: Context, nasty_catalog: dict[str, int], value: str
) -> None:
    row = fluxa_ctx.engine.mysql().query_row(
        "SELECT name, description FROM ProductEntity WHERE id=?", nasty_catalog[value]
    )
    assert row is not None
    assert tuple(row) == (value, value)
    loaded = ProductEntityProvider.get_by_id(fluxa_ctx.engine.new_context(), nasty_catalog[value])
    assert loaded is not None
    assert (loaded.name, loaded.description) == (value, value)
    assert_products_table_intact(fluxa_ctx)


@pytest.mark.parametrize("value", NASTY)
def test_filter_values_match_literally(
    fluxa_ctx: Context, nasty_catalog: dict[str, int], value: str
) -> None:
    expected = [nasty_catalog[value]]
    ctx = fluxa_ctx
    P = ProductEntityProvider
    assert [p.id for p in P.search_many(ctx, Query().filter(F.name.eq(value)))] == expected
    assert [p.id for p in P.search_many(ctx, Query().filter(F.description.eq(value)))] == expected
    assert [p.id for p in P.search_many(ctx, Query().filter(F.name.in_([value, "zz"])))] == expected
    not_value = P.search_many(ctx, Query().filter(F.name.eq(value).not_()))
    assert len(not_value) == len(NASTY)
    found = P.get_by_unique_index_name(ctx, value)
    assert found is not None
    assert found.id == nasty_catalog[value]
    assert_products_table_intact(ctx)


@pytest.mark.parametrize("value", NASTY)
def test_where_parameters_match_literally(
    fluxa_ctx: Context, nasty_catalog: dict[str, int], value: str
) -> None:
    expected = [nasty_catalog[value]]
    ctx = fluxa_ctx
    assert ProductEntityProvider.search_ids(ctx, Where("`name` = ?", value)) == expected
    assert ProductEntityProvider.search_ids(ctx, Where("`name` IN ?", [value])) == expected
    where = Where("`name` = ? AND `description` = ?", "?", "?")
    where.set_parameters(value, value)
    assert ProductEntityProvider.search_ids(ctx, where) == expected
    assert ProductEntityProvider.count(ctx, Query().filter_where(Where("`name` = ?", value))) == 1
    assert_products_table_intact(ctx)


def test_question_mark_values_in_where_do_not_shift_placeholders(
    fluxa_ctx: Context, nasty_catalog: dict[str, int]
) -> None:
    where = Where("`name` = ? OR `name` = ?", "?", "plain")
    found = ProductEntityProvider.search_ids(fluxa_ctx, where)
    assert sorted(found) == sorted([nasty_catalog["?"], nasty_catalog["plain"]])


def test_like_pattern_is_a_bound_parameter(
    fluxa_ctx: Context, nasty_catalog: dict[str, int]
) -> None:
    found = ProductEntityProvider.search_many(fluxa_ctx, Query().filter(F.name.like("x' OR%")))
    assert names(found) == ["x' OR '1'='1"]
    assert_products_table_intact(fluxa_ctx)


# -- soft delete ------------------------------------------------------------------------------


def fake_delete_column(ctx: Context, id_: int) -> int:
    row = ctx.engine.mysql().query_row("SELECT fake_delete FROM ProductEntity WHERE id=?", id_)
    assert row is not None
    return int(row[0])


def soft_delete(ctx: Context, name: str) -> int:
    product = ProductEntityProvider.get_by_unique_index_name(ctx, name)
    assert product is not None
    product.delete()
    ctx.flush()
    return product.id


def test_soft_delete_stores_the_id_and_keeps_the_row(fluxa_ctx: Context, catalog: Catalog) -> None:
    beta_id = soft_delete(fluxa_ctx, "beta")
    assert fake_delete_column(fluxa_ctx, beta_id) == beta_id
    assert fake_delete_column(fluxa_ctx, catalog.ids["alpha"]) == 0
    assert raw_count(fluxa_ctx, "ProductEntity") == 5

    ctx = fluxa_ctx.engine.new_context()
    beta = ProductEntityProvider.get_by_id(ctx, beta_id)
    assert beta is not None
    assert beta.fake_delete is True
    assert beta.name == "beta"
    by_ids = ProductEntityProvider.get_by_ids(ctx, [catalog.ids["alpha"], beta_id])
    assert [(p.name, p.fake_delete) for p in by_ids] == [("alpha", False), ("beta", True)]


def test_searches_exclude_soft_deleted_rows(fluxa_ctx: Context, catalog: Catalog) -> None:
    beta_id = soft_delete(fluxa_ctx, "beta")
    ctx = fluxa_ctx.engine.new_context()
    P = ProductEntityProvider
    assert "beta" not in names(P.search_many(ctx, Query()))
    assert P.search_many(ctx, Query().filter(F.name.eq("beta"))) == []
    assert P.count(ctx) == 4
    assert P.search_many_with_total(ctx, Query().filter(F.price.eq(20.5)))[1] == 1
    assert P.search_one(ctx, Where("`name` = ?", "beta")) is None
    assert P.search(ctx, Where("`id` = ?", beta_id)) == []
    live_ids = {i for n, i in catalog.ids.items() if n != "beta"}
    assert set(P.search_ids(ctx, Where("`price` > ?", 0))) == live_ids
    assert P.search_ids_with_count(ctx, Where("`id` = ?", beta_id), Pager(1, 5)) == ([], 0)
    assert P.get_by_unique_index_name(ctx, "beta") is None
    assert "beta" not in names(P.get_by_index_category_status(ctx, catalog.books.id, Status.DRAFT))
    assert "beta" not in names(P.get_all(ctx))


def test_with_fake_deletes_includes_soft_deleted_rows(fluxa_ctx: Context, catalog: Catalog) -> None:
    beta_id = soft_delete(fluxa_ctx, "beta")
    ctx = fluxa_ctx.engine.new_context()
    P = ProductEntityProvider
    where = Where("`price` >= ?", 20).with_fake_deletes()
    assert set(names(P.search(ctx, where))) == {"beta", "gamma", "epsilon"}
    assert P.search_ids(ctx, Where("`id` = ?", beta_id).with_fake_deletes()) == [beta_id]
    found = P.search_one(ctx, Where("`name` = ?", "beta").with_fake_deletes())
    assert found is not None
    assert found.fake_delete
    assert P.count(ctx, Query().filter_where(Where("1 = 1").with_fake_deletes())) == 5
    total = P.search_with_count(ctx, Where("`id` > ?", 0).with_fake_deletes(), Pager(1, 2))[1]
    assert total == 5


def test_soft_deleted_names_do_not_collide_on_the_unique_index(
    fluxa_ctx: Context, catalog: Catalog
) -> None:
    first = soft_delete(fluxa_ctx, "beta")
    ctx = fluxa_ctx.engine.new_context()
    second = ProductEntityProvider.new(ctx)
    second.name = "beta"  # the name is free again among live rows
    second.category = catalog.games
    ctx.flush()
    assert fake_delete_column(fluxa_ctx, second.id) == 0
    second.delete()
    ctx.flush()
    assert fake_delete_column(fluxa_ctx, second.id) == second.id

    third = ProductEntityProvider.new(ctx)
    third.name = "beta"
    third.category = catalog.books
    ctx.flush()

    rows = fluxa_ctx.engine.mysql().query(
        "SELECT id, fake_delete FROM ProductEntity WHERE name=? ORDER BY id", "beta"
    )
    assert [tuple(r) for r in rows] == [(first, first), (second.id, second.id), (third.id, 0)]
    live = ProductEntityProvider.get_by_unique_index_name(fluxa_ctx.engine.new_context(), "beta")
    assert live is not None
    assert live.id == third.id


def test_unique_index_still_holds_among_live_rows(fluxa_ctx: Context, catalog: Catalog) -> None:
    ctx = fluxa_ctx.engine.new_context()
    duplicate = ProductEntityProvider.new(ctx)
    duplicate.name = "alpha"
    duplicate.category = catalog.books
    with pytest.raises(IntegrityError, match="Duplicate entry"):
        ctx.flush()
    assert raw_count(fluxa_ctx, "ProductEntity") == 5


def test_set_field_values_are_not_injectable(fluxa_ctx: Context, catalog: Catalog) -> None:
    product = ProductEntityProvider.must_get_by_id(fluxa_ctx, catalog.ids["alpha"])
    product.tags = {Tag.SALE}
    product.description = "'); DELETE FROM ProductEntity; --"
    fluxa_ctx.flush()
    assert raw_count(fluxa_ctx, "ProductEntity") == 5
    again = ProductEntityProvider.must_get_by_id(fluxa_ctx.engine.new_context(), product.id)
    assert again.description == "'); DELETE FROM ProductEntity; --"
    assert again.tags == {Tag.SALE}


def test_force_delete_removes_the_row(fluxa_ctx: Context, catalog: Catalog) -> None:
    beta = ProductEntityProvider.must_get_by_id(fluxa_ctx, catalog.ids["beta"])
    beta.force_delete()
    fluxa_ctx.flush()
    assert raw_count(fluxa_ctx, "ProductEntity") == 4
    ctx = fluxa_ctx.engine.new_context()
    assert ProductEntityProvider.get_by_id(ctx, beta.id) is None
    assert (
        ProductEntityProvider.search_ids(ctx, Where("`id` = ?", beta.id).with_fake_deletes()) == []
    )


def test_force_delete_of_a_soft_deleted_row(fluxa_ctx: Context, catalog: Catalog) -> None:
    beta_id = soft_delete(fluxa_ctx, "beta")
    ctx = fluxa_ctx.engine.new_context()
    beta = ProductEntityProvider.must_get_by_id(ctx, beta_id)
    assert beta.fake_delete
    beta.force_delete()
    ctx.flush()
    assert raw_count(fluxa_ctx, "ProductEntity") == 4


def test_query_clone_is_independent() -> None:
    from fluxa_django.runtime.query import StrColumn

    base = Query().filter(StrColumn("name").eq("a")).sort_by_asc(StrColumn("name"))
    page2 = base.clone().pager(Pager(2, 10)).filter(StrColumn("name").like("b%"))
    assert base.page is None and len(base.conditions) == 1
    assert page2.page is not None and page2.page.offset == 10 and len(page2.conditions) == 2
    assert base.order_clause() == page2.order_clause() == " ORDER BY `name` ASC"


# -- conditions belong to their entity, values to their column ----------------------------


def test_a_condition_of_another_entity_is_refused_naming_both(fluxa_ctx: Context) -> None:
    from tests.generated import ProductEntityProvider, UserEntityProvider

    # mypy flags these (tests/typing); the run-time check covers untyped callers
    other = Query().filter(ProductEntityProvider.fields.name.eq("Dune"))
    for read in (
        lambda: UserEntityProvider.search_many(fluxa_ctx, other),  # type: ignore[arg-type]
        lambda: UserEntityProvider.count(fluxa_ctx, other),  # type: ignore[arg-type]
        lambda: UserEntityProvider.search_one(fluxa_ctx, other),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match=r"UserEntityProvider: a condition on ProductEntity"):
            read()
    sorted_by_other = Query().sort_by_desc(ProductEntityProvider.fields.name)
    with pytest.raises(
        TypeError, match=r"UserEntityProvider: a column of ProductEntity cannot sort"
    ):
        UserEntityProvider.search_many(fluxa_ctx, sorted_by_other)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"sort_by_\* takes a column from Provider.fields, got str"):
        Query().sort_by_asc("name")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"UserEntityProvider: expected a Query, got Where"):
        UserEntityProvider.search_many(fluxa_ctx, Where("1"))  # type: ignore[arg-type]
    # a query of the right entity, bound or not, is accepted
    from tests.generated import UserEntity

    bound = Query[UserEntity]().filter(UserEntityProvider.fields.name.eq("nobody"))
    assert UserEntityProvider.search_many(fluxa_ctx, bound) == []


def test_values_are_checked_against_the_column_type() -> None:
    from tests.generated import ProductEntityProvider, Status, UserEntityProvider

    with pytest.raises(TypeError, match=r"UserEntity\.age: expected int, got str"):
        UserEntityProvider.fields.age.eq("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"UserEntity\.age: expected an int, got bool"):
        UserEntityProvider.fields.age.gt(True)
    with pytest.raises(TypeError, match=r"ProductEntity\.status: expected a Status"):
        ProductEntityProvider.fields.status.eq("nope")  # type: ignore[arg-type]
    assert ProductEntityProvider.fields.status.eq("active").params == ("active",)  # type: ignore[arg-type]
    assert ProductEntityProvider.fields.status.eq(Status.ACTIVE).params == ("active",)
    assert ProductEntityProvider.fields.price.lt(5).params == (5,)
