"""Every field type of the generated entity classes: round trips through MySQL,
validation at assignment, and dirty tracking (what a flush writes).

Values are read back through a NEW context so that the context cache cannot
hide what the database really holds.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluxa_django import Context
from fluxa_django.testing.plugin import QueryCounter
from tests.generated import (
    CategoryEntity,
    CategoryEntityProvider,
    EveryTypeEntity,
    EveryTypeEntityProvider,
    Status,
    Tag,
)

AssertQueries = Callable[..., AbstractContextManager[QueryCounter]]


# -- helpers --------------------------------------------------------------------------------


def new_every(ctx: Context) -> EveryTypeEntity:
    """A new EveryTypeEntity with its required reference set (references have no FK)."""
    entity = EveryTypeEntityProvider.new(ctx)
    entity.category_id = 1
    return entity


def reload(ctx: Context, entity: EveryTypeEntity) -> EveryTypeEntity:
    """The row of ``entity`` read back through a fresh context."""
    found = EveryTypeEntityProvider.get_by_id(ctx.engine.new_context(), entity.id)
    assert found is not None, f"EveryTypeEntity {entity.id} was not written"
    return found


def new_category(ctx: Context, name: str) -> CategoryEntity:
    category = CategoryEntityProvider.new(ctx)
    category.name = name
    return category


def populate(entity: EveryTypeEntity) -> None:
    """Non-default values in every column (only the required reference is left alone)."""
    entity.u8 = 200
    entity.u16 = 60000
    entity.u32 = 4_000_000_000
    entity.u32m = 16_000_000
    entity.u64 = 2**64 - 1
    entity.i8 = -100
    entity.i16 = -30000
    entity.i32 = -2_000_000_000
    entity.i32m = -8_000_000
    entity.i64 = -(2**63)
    entity.plain_int = 2**63 - 1
    entity.n_u8 = 9
    entity.n_i64 = -9
    entity.flag = True
    entity.n_flag = False
    entity.ratio = 1234.5678
    entity.n_ratio = -0.125
    entity.money = 12.3456
    entity.rounded = 1.23456
    entity.positive = 2.5
    entity.text = "héllo wörld ✓ 😀"
    entity.n_text = "n"
    entity.short = "short-value"
    entity.long_text = "long " * 10
    entity.n_long_text = "n long"
    entity.data = b"\x00\x01\xff"
    entity.n_data = b"nd"
    entity.medium_data = b"md"
    entity.long_data = b"ld"
    entity.day = datetime.date(2024, 2, 29)
    entity.n_day = datetime.date(1999, 12, 31)
    entity.moment = datetime.datetime(2024, 5, 6, 7, 8, 9)
    entity.n_moment = datetime.datetime(2001, 2, 3, 4, 5, 6)
    entity.status = Status.ARCHIVED
    entity.n_status = Status.ACTIVE
    entity.color = "green"
    entity.tags = {Tag.NEW, Tag.SALE}
    entity.n_tags = {Tag.SALE}
    entity.sizes = {"s", "l"}
    entity.n_category_id = 2
    entity.categories_ids = [3, 1]
    entity.n_categories_ids = [2]
    entity.title = "A title"


def assign_current_values(entity: EveryTypeEntity) -> None:
    """Assign every field the value its getter returns (must be a no-op)."""
    entity.u8 = entity.u8
    entity.u16 = entity.u16
    entity.u32 = entity.u32
    entity.u32m = entity.u32m
    entity.u64 = entity.u64
    entity.i8 = entity.i8
    entity.i16 = entity.i16
    entity.i32 = entity.i32
    entity.i32m = entity.i32m
    entity.i64 = entity.i64
    entity.plain_int = entity.plain_int
    entity.n_u8 = entity.n_u8
    entity.n_i64 = entity.n_i64
    entity.flag = entity.flag
    entity.n_flag = entity.n_flag
    entity.ratio = entity.ratio
    entity.n_ratio = entity.n_ratio
    entity.money = entity.money
    entity.rounded = entity.rounded
    entity.positive = entity.positive
    entity.text = entity.text
    entity.n_text = entity.n_text
    entity.short = entity.short
    entity.long_text = entity.long_text
    entity.n_long_text = entity.n_long_text
    entity.data = entity.data
    entity.n_data = entity.n_data
    entity.medium_data = entity.medium_data
    entity.long_data = entity.long_data
    entity.day = entity.day
    entity.n_day = entity.n_day
    entity.moment = entity.moment
    entity.n_moment = entity.n_moment
    entity.status = entity.status
    entity.n_status = entity.n_status
    entity.color = entity.color
    entity.tags = entity.tags
    entity.n_tags = entity.n_tags
    entity.sizes = entity.sizes
    entity.category_id = entity.category_id
    entity.n_category_id = entity.n_category_id
    entity.categories_ids = entity.categories_ids
    entity.n_categories_ids = entity.n_categories_ids
    entity.title = entity.title
    entity.updated_at = entity.updated_at


def set_columns(sql: str) -> set[str]:
    """The column names of an ``UPDATE ... SET `a`=%s,`b`=%s WHERE ...`` statement."""
    match = re.search(r"\bSET (.*?) WHERE\b", sql)
    assert match is not None, sql
    return set(re.findall(r"`(\w+)`=", match.group(1)))


# -- round trips ----------------------------------------------------------------------------

UTC_PLUS_2 = datetime.timezone(datetime.timedelta(hours=2))

ROUND_TRIPS = [
    # (field, value assigned, value read back)
    ("u8", 255, 255),
    ("u16", 65535, 65535),
    ("u32", 4294967295, 4294967295),
    ("u32m", 16777215, 16777215),
    ("u64", 18446744073709551615, 18446744073709551615),
    ("i8", -128, -128),
    ("i16", -32768, -32768),
    ("i32", -2147483648, -2147483648),
    ("i32m", -8388608, -8388608),
    ("i64", -9223372036854775808, -9223372036854775808),
    ("plain_int", 9223372036854775807, 9223372036854775807),
    ("n_u8", 0, 0),
    ("n_i64", -1, -1),
    ("flag", True, True),
    ("n_flag", False, False),
    ("ratio", 1234.5678, 1234.5678),
    ("n_ratio", -0.125, -0.125),
    ("money", 12.3456, 12.346),
    ("money", 999999999.999, 999999999.999),
    ("money", 7, 7.0),
    ("rounded", 1.23456, 1.23),
    ("positive", 2.5, 2.5),
    ("text", "héllo wörld ✓ 😀", "héllo wörld ✓ 😀"),
    ("n_text", "", ""),
    ("short", "x" * 20, "x" * 20),
    ("long_text", "é" * 70000, "é" * 70000),
    ("n_long_text", "line 1\nline 2", "line 1\nline 2"),
    ("data", bytes(range(256)), bytes(range(256))),
    ("data", bytearray(b"ba"), b"ba"),
    ("n_data", b"", b""),
    ("medium_data", b"\x00" * 70000, b"\x00" * 70000),
    ("long_data", b"\xff\x00", b"\xff\x00"),
    ("day", datetime.date(2024, 2, 29), datetime.date(2024, 2, 29)),
    ("n_day", datetime.date(9999, 12, 31), datetime.date(9999, 12, 31)),
    (
        "moment",
        datetime.datetime(2024, 5, 6, 7, 8, 9, 999999),
        datetime.datetime(2024, 5, 6, 7, 8, 9),
    ),
    (
        "moment",
        datetime.datetime(2024, 5, 6, 1, 8, 9, tzinfo=UTC_PLUS_2),
        datetime.datetime(2024, 5, 5, 23, 8, 9),
    ),
    (
        "n_moment",
        datetime.datetime(9999, 12, 31, 23, 59, 59),
        datetime.datetime(9999, 12, 31, 23, 59, 59),
    ),
    ("status", Status.ARCHIVED, Status.ARCHIVED),
    ("n_status", Status.ACTIVE, Status.ACTIVE),
    ("color", "green", "green"),
    ("tags", [Tag.SALE, Tag.NEW, Tag.SALE], {Tag.NEW, Tag.SALE}),
    ("tags", frozenset({Tag.SALE}), {Tag.SALE}),
    ("n_tags", set(), set()),
    ("sizes", ["l", "s", "l"], {"s", "l"}),
    ("sizes", set(), set()),
    ("title", "Searchable title", "Searchable title"),
    (
        "updated_at",
        datetime.datetime(2020, 1, 2, 3, 4, 5),
        datetime.datetime(2020, 1, 2, 3, 4, 5),
    ),
]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [pytest.param(*case, id=f"{case[0]}-{i}") for i, case in enumerate(ROUND_TRIPS)],
)
def test_field_round_trips(fluxa_ctx: Context, name: str, value: Any, expected: Any) -> None:
    entity = new_every(fluxa_ctx)
    setattr(entity, name, value)
    assert getattr(entity, name) == expected, "the getter must show the converted value at once"
    fluxa_ctx.flush()

    loaded = getattr(reload(fluxa_ctx, entity), name)
    assert loaded == expected
    assert type(loaded) is type(expected)
    if isinstance(expected, set):
        assert all(
            type(a) is type(b) for a, b in zip(sorted(loaded), sorted(expected), strict=True)
        )


def test_all_fields_round_trip_together(fluxa_ctx: Context) -> None:
    """Every column written in one row lands in its own column (no positional mix-up)."""
    entity = new_every(fluxa_ctx)
    populate(entity)
    fluxa_ctx.flush()

    loaded = reload(fluxa_ctx, entity)
    assert (loaded.u8, loaded.u16, loaded.u32, loaded.u32m, loaded.u64) == (
        200,
        60000,
        4_000_000_000,
        16_000_000,
        2**64 - 1,
    )
    assert (loaded.i8, loaded.i16, loaded.i32, loaded.i32m, loaded.i64, loaded.plain_int) == (
        -100,
        -30000,
        -2_000_000_000,
        -8_000_000,
        -(2**63),
        2**63 - 1,
    )
    assert (loaded.n_u8, loaded.n_i64, loaded.flag, loaded.n_flag) == (9, -9, True, False)
    assert (loaded.ratio, loaded.n_ratio, loaded.money, loaded.rounded, loaded.positive) == (
        1234.5678,
        -0.125,
        12.346,
        1.23,
        2.5,
    )
    assert (loaded.text, loaded.n_text, loaded.short, loaded.long_text, loaded.n_long_text) == (
        "héllo wörld ✓ 😀",
        "n",
        "short-value",
        "long " * 10,
        "n long",
    )
    assert (loaded.data, loaded.n_data, loaded.medium_data, loaded.long_data) == (
        b"\x00\x01\xff",
        b"nd",
        b"md",
        b"ld",
    )
    assert (loaded.day, loaded.n_day, loaded.moment, loaded.n_moment) == (
        datetime.date(2024, 2, 29),
        datetime.date(1999, 12, 31),
        datetime.datetime(2024, 5, 6, 7, 8, 9),
        datetime.datetime(2001, 2, 3, 4, 5, 6),
    )
    assert (loaded.status, loaded.n_status, loaded.color) == (
        Status.ARCHIVED,
        Status.ACTIVE,
        "green",
    )
    assert (loaded.tags, loaded.n_tags, loaded.sizes) == (
        {Tag.NEW, Tag.SALE},
        {Tag.SALE},
        {"s", "l"},
    )
    assert (loaded.category_id, loaded.n_category_id) == (1, 2)
    assert (loaded.categories_ids, loaded.n_categories_ids) == ([3, 1], [2])
    assert loaded.title == "A title"


def test_nullable_fields_round_trip_none(fluxa_ctx: Context) -> None:
    entity = new_every(fluxa_ctx)
    populate(entity)
    fluxa_ctx.flush()

    ctx = fluxa_ctx.engine.new_context()
    loaded = EveryTypeEntityProvider.must_get_by_id(ctx, entity.id)
    loaded.n_u8 = None
    loaded.n_i64 = None
    loaded.n_flag = None
    loaded.n_ratio = None
    loaded.n_text = None
    loaded.n_long_text = None
    loaded.n_data = None
    loaded.medium_data = None
    loaded.long_data = None
    loaded.n_day = None
    loaded.n_moment = None
    loaded.n_status = None
    loaded.n_tags = None
    loaded.sizes = None
    loaded.n_category_id = None
    loaded.n_categories_ids = None
    ctx.flush()

    again = reload(fluxa_ctx, entity)
    nullable = {
        "n_u8": again.n_u8,
        "n_i64": again.n_i64,
        "n_flag": again.n_flag,
        "n_ratio": again.n_ratio,
        "n_text": again.n_text,
        "n_long_text": again.n_long_text,
        "n_data": again.n_data,
        "medium_data": again.medium_data,
        "long_data": again.long_data,
        "n_day": again.n_day,
        "n_moment": again.n_moment,
        "n_status": again.n_status,
        "n_tags": again.n_tags,
        "sizes": again.sizes,
        "n_category_id": again.n_category_id,
        "n_category": again.n_category,
        "n_categories_ids": again.n_categories_ids,
    }
    assert {k: v for k, v in nullable.items() if v is not None} == {}
    raw = fluxa_ctx.engine.mysql().query_row(
        "SELECT n_u8, n_tags, n_category, n_categories FROM every_type WHERE id=?", entity.id
    )
    assert raw is not None
    assert tuple(raw) == (None, None, None, None), "None must be stored as SQL NULL"
    assert again.u8 == 200, "non-null columns keep their values"


def test_single_reference_round_trip_loads_the_entity(fluxa_ctx: Context) -> None:
    books = new_category(fluxa_ctx, "Books")
    games = new_category(fluxa_ctx, "Games")
    entity = EveryTypeEntityProvider.new(fluxa_ctx)
    entity.category = books  # before any flush: ids are allocated in new()
    entity.n_category_id = games.id
    assert entity.category_id == books.id
    fluxa_ctx.flush()

    loaded = reload(fluxa_ctx, entity)
    assert loaded.category_id == books.id
    assert type(loaded.category_id) is int
    category = loaded.category
    assert isinstance(category, CategoryEntity)
    assert (category.id, category.name) == (books.id, "Books")
    n_category = loaded.n_category
    assert n_category is not None
    assert n_category.name == "Games"


def test_references_list_round_trip_keeps_order(fluxa_ctx: Context) -> None:
    a = new_category(fluxa_ctx, "A")
    b = new_category(fluxa_ctx, "B")
    c = new_category(fluxa_ctx, "C")
    entity = new_every(fluxa_ctx)
    entity.categories_ids = [c.id, a.id, b.id]
    entity.n_categories_ids = []
    fluxa_ctx.flush()

    loaded = reload(fluxa_ctx, entity)
    assert loaded.categories_ids == [c.id, a.id, b.id]
    assert [x.name for x in loaded.load_categories()] == ["C", "A", "B"]
    assert loaded.n_categories_ids == [], "an empty list is not NULL"
    assert loaded.load_n_categories() == []


def test_references_list_can_be_emptied(fluxa_ctx: Context) -> None:
    entity = new_every(fluxa_ctx)
    entity.categories_ids = [4, 5]
    fluxa_ctx.flush()

    ctx = fluxa_ctx.engine.new_context()
    loaded = EveryTypeEntityProvider.must_get_by_id(ctx, entity.id)
    loaded.categories_ids = []
    assert loaded.is_dirty
    ctx.flush()
    assert reload(fluxa_ctx, entity).categories_ids == []


def test_load_categories_skips_missing_ids(fluxa_ctx: Context) -> None:
    a = new_category(fluxa_ctx, "A")
    entity = new_every(fluxa_ctx)
    entity.categories_ids = [999, a.id]
    fluxa_ctx.flush()

    assert [x.name for x in reload(fluxa_ctx, entity).load_categories()] == ["A"]


def test_fresh_entity_defaults_read_back_after_flush(fluxa_ctx: Context) -> None:
    before = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
    entity = new_every(fluxa_ctx)
    fluxa_ctx.flush()

    loaded = reload(fluxa_ctx, entity)
    assert loaded.id == entity.id
    ints = (
        loaded.u8,
        loaded.u16,
        loaded.u32,
        loaded.u32m,
        loaded.u64,
        loaded.i8,
        loaded.i16,
        loaded.i32,
        loaded.i32m,
        loaded.i64,
        loaded.plain_int,
    )
    assert ints == (0,) * 11
    assert loaded.flag is False
    assert (loaded.ratio, loaded.money, loaded.rounded, loaded.positive) == (0.0, 0.0, 0.0, 0.0)
    assert type(loaded.money) is float
    assert (loaded.text, loaded.short, loaded.long_text, loaded.title) == ("", "", "", "")
    assert loaded.data == b""
    assert loaded.day == datetime.date(1, 1, 1)
    assert loaded.moment == datetime.datetime(1000, 1, 1)
    assert loaded.status is Status.DRAFT
    assert loaded.color == "red"
    assert loaded.tags == set()
    assert loaded.categories_ids == []
    assert loaded.load_categories() == []
    assert loaded.category_id == 1
    nullable = (
        loaded.n_u8,
        loaded.n_i64,
        loaded.n_flag,
        loaded.n_ratio,
        loaded.n_text,
        loaded.n_long_text,
        loaded.n_data,
        loaded.medium_data,
        loaded.long_data,
        loaded.n_day,
        loaded.n_moment,
        loaded.n_status,
        loaded.n_tags,
        loaded.sizes,
        loaded.n_category_id,
        loaded.n_category,
        loaded.n_categories_ids,
    )
    assert nullable == (None,) * len(nullable)
    # updated_at is filled on insert when left empty
    assert before <= loaded.updated_at <= before + datetime.timedelta(minutes=1)


def test_new_entity_getters_show_the_defaults_before_flush(fluxa_ctx: Context) -> None:
    entity = EveryTypeEntityProvider.new(fluxa_ctx)
    assert entity.is_new
    assert entity.id >= 1
    assert (entity.u8, entity.flag, entity.text, entity.data) == (0, False, "", b"")
    assert (entity.day, entity.moment) == (datetime.date(1, 1, 1), datetime.datetime(1000, 1, 1))
    assert (entity.status, entity.color, entity.tags) == (Status.DRAFT, "red", set())
    assert (entity.categories_ids, entity.category_id, entity.category) == ([], None, None)
    assert entity.n_text is None


def test_ignored_field_is_not_generated() -> None:
    assert "skipped" not in EveryTypeEntityProvider.attribute_names
    assert not hasattr(EveryTypeEntity, "skipped")


def test_required_reference_must_be_set_before_flush(fluxa_ctx: Context) -> None:
    entity = EveryTypeEntityProvider.new(fluxa_ctx)
    entity.u8 = 5
    with pytest.raises(ValueError, match=r"EveryTypeEntity\.category\b.*required"):
        fluxa_ctx.flush()
    count = fluxa_ctx.engine.mysql().query_row("SELECT COUNT(*) FROM every_type")
    assert count is not None
    assert count[0] == 0, "a rejected flush writes nothing"

    # the entity is still pending: setting the reference lets the same flush succeed
    assert entity.is_dirty
    entity.category_id = 7
    fluxa_ctx.flush()
    loaded = reload(fluxa_ctx, entity)
    assert (loaded.u8, loaded.category_id) == (5, 7)


def _unset_required_reference_and_flush(ctx: Context, entity: EveryTypeEntity) -> None:
    entity.category_id = None
    ctx.flush()


def test_required_reference_cannot_be_unset_on_a_loaded_entity(fluxa_ctx: Context) -> None:
    """A required reference may not be cleared later: the setter or the flush must refuse."""
    entity = new_every(fluxa_ctx)
    fluxa_ctx.flush()

    ctx = fluxa_ctx.engine.new_context()
    loaded = EveryTypeEntityProvider.must_get_by_id(ctx, entity.id)
    with pytest.raises(ValueError, match=r"EveryTypeEntity\.category\b"):
        _unset_required_reference_and_flush(ctx, loaded)
    assert reload(fluxa_ctx, entity).category_id == 1


# -- validation at assignment ----------------------------------------------------------------

BAD_VALUES = [
    # (field, bad value, exception, what the message must say besides Entity.field)
    ("u8", 256, ValueError, r"256"),
    ("u8", -1, ValueError, r"-1"),
    ("i8", -129, ValueError, r"-129"),
    ("i8", 128, ValueError, r"128"),
    ("u16", 65536, ValueError, r"65536"),
    ("u32m", 16777216, ValueError, r"16777216"),
    ("i32m", -8388609, ValueError, r"-8388609"),
    ("u64", -1, ValueError, r"-1"),
    ("u64", 2**64, ValueError, r"18446744073709551616"),
    ("i64", 2**63, ValueError, r"9223372036854775808"),
    ("n_u8", 300, ValueError, r"300"),
    ("u8", "1", TypeError, r"int"),
    ("u8", True, TypeError, r"int"),
    ("u8", 1.0, TypeError, r"int"),
    ("flag", 1, TypeError, r"bool"),
    ("n_flag", "yes", TypeError, r"bool"),
    ("ratio", "x", TypeError, r"float"),
    ("ratio", True, TypeError, r"float"),
    ("ratio", math.nan, ValueError, r"nan"),
    ("ratio", math.inf, ValueError, r"inf"),
    ("money", 1e9, ValueError, r"decimal\(12,3\)"),
    ("money", -1.0, ValueError, r"unsigned"),
    ("positive", -0.5, ValueError, r"unsigned"),
    ("text", 5, TypeError, r"str"),
    ("text", b"bytes", TypeError, r"str"),
    ("text", "t" * 256, ValueError, r"255"),
    ("short", "s" * 21, ValueError, r"20"),
    ("data", "str", TypeError, r"bytes"),
    ("day", datetime.datetime(2024, 1, 2, 3, 4, 5), TypeError, r"date"),
    ("day", "2024-01-02", TypeError, r"date"),
    ("moment", datetime.date(2024, 1, 2), TypeError, r"datetime"),
    ("moment", datetime.datetime(999, 12, 31), ValueError, r"1000"),
    ("status", "nope", ValueError, r"nope"),
    ("status", 1, TypeError, r"str"),
    ("status", Tag.NEW, ValueError, r"new"),
    ("color", "blue", ValueError, r"blue"),
    ("tags", {"bad"}, ValueError, r"bad"),
    ("tags", {Tag.NEW, "bad"}, ValueError, r"bad"),
    ("tags", "new", TypeError, r"set"),
    ("sizes", {"xl"}, ValueError, r"xl"),
    ("category_id", 0, ValueError, r"\b0\b"),
    ("category_id", 70000, ValueError, r"70000"),
    ("category_id", "1", TypeError, r"id"),
    ("categories_ids", [1, 0], ValueError, r"\b0\b"),
    ("categories_ids", "1,2", TypeError, r"list"),
]


def _field_of(name: str) -> str:
    """The schema field named in errors (``category_id`` is field ``category``)."""
    return name.removesuffix("_ids").removesuffix("_id")


@pytest.mark.parametrize(
    ("name", "value", "error", "detail"),
    [pytest.param(*case, id=f"{case[0]}={case[1]!r:.20}") for case in BAD_VALUES],
)
def test_bad_assignment_raises_naming_entity_and_field(
    fluxa_ctx: Context, name: str, value: Any, error: type[Exception], detail: str
) -> None:
    entity = new_every(fluxa_ctx)
    populate(entity)
    fluxa_ctx.flush()
    loaded = EveryTypeEntityProvider.must_get_by_id(fluxa_ctx.engine.new_context(), entity.id)
    before = getattr(loaded, name)

    pattern = rf"EveryTypeEntity\.{_field_of(name)}\b.*{detail}"
    with pytest.raises(error, match=pattern):
        setattr(loaded, name, value)

    assert getattr(loaded, name) == before, "a rejected value must not be stored"
    assert not loaded.is_dirty


def test_bad_assignment_on_a_new_entity_keeps_the_previous_value(fluxa_ctx: Context) -> None:
    entity = new_every(fluxa_ctx)
    entity.u8 = 42
    with pytest.raises(ValueError, match=r"EveryTypeEntity\.u8\b"):
        entity.u8 = 1000
    assert entity.u8 == 42
    fluxa_ctx.flush()
    assert reload(fluxa_ctx, entity).u8 == 42


def test_id_is_read_only(fluxa_ctx: Context) -> None:
    entity = new_every(fluxa_ctx)
    with pytest.raises(AttributeError):
        entity.id = 5  # type: ignore[misc]


def test_unknown_attribute_cannot_be_set(fluxa_ctx: Context) -> None:
    entity = new_every(fluxa_ctx)
    with pytest.raises(AttributeError):
        entity.nmae = "typo"  # type: ignore[attr-defined]


# -- dirty tracking ---------------------------------------------------------------------------


@pytest.mark.parametrize("populated", [False, True], ids=["defaults", "populated"])
def test_assigning_current_values_writes_nothing(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries, populated: bool
) -> None:
    entity = new_every(fluxa_ctx)
    if populated:
        populate(entity)
    fluxa_ctx.flush()

    ctx = fluxa_ctx.engine.new_context()
    loaded = EveryTypeEntityProvider.must_get_by_id(ctx, entity.id)
    assign_current_values(loaded)
    assert loaded.changed_columns() == []
    assert not loaded.is_dirty
    with fluxa_assert_queries(mysql=0):
        ctx.flush()


def test_setting_a_value_back_undoes_the_change(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    entity = new_every(fluxa_ctx)
    populate(entity)
    fluxa_ctx.flush()

    ctx = fluxa_ctx.engine.new_context()
    loaded = EveryTypeEntityProvider.must_get_by_id(ctx, entity.id)
    loaded.u8 = 1
    loaded.money = 99.5
    loaded.tags = set()
    loaded.text = "changed"
    loaded.moment = datetime.datetime(2030, 1, 1)
    assert loaded.is_dirty
    loaded.u8 = 200
    loaded.money = 12.346
    loaded.tags = [Tag.SALE, Tag.NEW]
    loaded.text = "héllo wörld ✓ 😀"
    loaded.moment = datetime.datetime(2024, 5, 6, 7, 8, 9, 500000)  # truncated to the same second
    assert not loaded.is_dirty
    with fluxa_assert_queries(mysql=0):
        ctx.flush()
    assert reload(fluxa_ctx, entity).updated_at == entity.updated_at, "nothing was updated"


def test_changing_one_field_updates_only_that_column(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    entity = new_every(fluxa_ctx)
    populate(entity)
    entity.updated_at = datetime.datetime(2020, 1, 1)
    fluxa_ctx.flush()

    ctx = fluxa_ctx.engine.new_context()
    loaded = EveryTypeEntityProvider.must_get_by_id(ctx, entity.id)
    statements: list[str] = []
    ctx.register_query_logger(lambda entry: statements.append(entry["query"]), redis=False)
    loaded.u8 = 7
    assert loaded.is_dirty
    with fluxa_assert_queries(mysql=1) as counter:
        ctx.flush()
    assert counter.operations == [("mysql", "update")]
    assert len(statements) == 1
    assert statements[0].startswith("UPDATE `every_type` SET ")
    assert set_columns(statements[0]) == {"u8", "updated_at"}
    assert not loaded.is_dirty

    again = reload(fluxa_ctx, entity)
    assert again.u8 == 7
    assert again.updated_at > datetime.datetime(2020, 1, 1), "updated_at is refreshed on update"
    assert (again.u16, again.text, again.tags) == (60000, "héllo wörld ✓ 😀", {Tag.NEW, Tag.SALE})


def test_flush_without_changes_makes_no_round_trip(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    entity = new_every(fluxa_ctx)
    fluxa_ctx.flush()
    with fluxa_assert_queries(mysql=0, redis=0):
        fluxa_ctx.flush()
    assert not entity.is_dirty


# -- property tests ------------------------------------------------------------------------------


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=st.text(max_size=25))
def test_short_accepts_up_to_20_characters_and_round_trips(fluxa_ctx: Context, text: str) -> None:
    ctx = fluxa_ctx.engine.new_context()
    entity = new_every(ctx)
    if len(text) > 20:
        with pytest.raises(ValueError, match=r"EveryTypeEntity\.short\b.*20"):
            entity.short = text
        assert entity.short == ""
        return
    entity.short = text
    ctx.flush()
    try:
        assert reload(ctx, entity).short == text
    finally:
        entity.delete()  # `short` has a unique index: keep examples independent
        ctx.flush()


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(number=st.one_of(st.integers(), st.integers(min_value=-5, max_value=260)))
def test_u8_accepts_exactly_0_to_255(fluxa_ctx: Context, number: int) -> None:
    entity = new_every(fluxa_ctx.engine.new_context())
    entity.u8 = 3
    if 0 <= number <= 255:
        entity.u8 = number
        assert entity.u8 == number
    else:
        with pytest.raises(ValueError, match=r"EveryTypeEntity\.u8\b.*out of range"):
            entity.u8 = number
        assert entity.u8 == 3


def test_decimal_is_stored_rounded_to_its_scale(fluxa_ctx: Context) -> None:
    entity = new_every(fluxa_ctx)
    entity.money = 12.3456
    fluxa_ctx.flush()
    raw = fluxa_ctx.engine.mysql().query_row("SELECT money FROM every_type WHERE id=?", entity.id)
    assert raw is not None
    assert raw[0] == Decimal("12.346")
