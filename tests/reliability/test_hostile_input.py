"""Hostile input never reaches MySQL unvalidated (hypothesis, real MariaDB).

For every field type's setter, every condition operator of every typed column,
``Where`` parameters and ``Pager``: a value is either refused where it enters
with ``ValueError``/``TypeError`` naming the entity and field (or the Where
parameter / Pager argument), or accepted, and then the flush or the query that
uses it runs without any database error. Nothing else escapes.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from fluxa_django import Context, Pager, Query, Where
from fluxa_django.runtime.query import Column, Condition
from tests.generated import (
    CategoryEntityProvider,
    EveryTypeEntityProvider,
    Status,
    Tag,
    UserEntityProvider,
)

E = EveryTypeEntityProvider


class EvilInt(int):
    """An int whose text is SQL: nothing of it may reach a statement."""

    def __str__(self) -> str:
        return "1; DROP TABLE every_type; --"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return str(self)


class EvilStr(str):
    def __str__(self) -> str:
        return "' OR 1=1 --"


ZONES = [datetime.UTC, datetime.timezone(datetime.timedelta(hours=14))]
ZONES.append(datetime.timezone(-datetime.timedelta(hours=12)))

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-300, max_value=70000),
    st.floats(),
    st.decimals(),
    st.sampled_from([Decimal("1E+100000000"), Decimal("-1E-100000"), Decimal("NaN")]),
    st.text(max_size=30),
    st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3),
    st.binary(max_size=30),
    st.datetimes(timezones=st.none() | st.sampled_from(ZONES)),
    st.sampled_from([datetime.datetime.max.replace(tzinfo=ZONES[2]), datetime.datetime.min]),
    st.dates(),
    st.times(),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.sets(st.sampled_from(list(Tag)), max_size=2),
    st.sampled_from(list(Status)),
    st.builds(EvilInt, st.integers(min_value=0, max_value=3)),
    st.builds(EvilStr, st.text(max_size=5)),
    st.just(object()),
)

SETTABLE = [
    name
    for name in dir(E.entity_class)
    if isinstance(getattr(E.entity_class, name, None), property)
    and getattr(E.entity_class, name).fset is not None
]


def _refused_properly(exc: BaseException, where: str) -> None:
    assert isinstance(exc, ValueError | TypeError), f"{type(exc).__name__}: {exc}"
    assert where in str(exc), f"the error does not name {where}: {exc}"


CHECK = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@CHECK
@given(field=st.sampled_from(SETTABLE), value=VALUES)
@example(field="ratio", value=10**400)
@example(field="text", value="\ud800")
@example(field="long_text", value="\U0001f600" * 5_000_000)
@example(field="category", value=0)
def test_setters_refuse_or_the_flush_writes(fluxa_ctx: Context, field: str, value: Any) -> None:
    ctx = fluxa_ctx.engine.new_context()
    entity = E.new(ctx)
    entity.category_id = 1
    entity.short = f"s{entity.id}"
    before = list(entity._row)
    try:
        setattr(entity, field, value)
    except Exception as exc:
        # a reference's id attribute names the field it was defined as
        _refused_properly(exc, f"EveryTypeEntity.{field.removesuffix('_ids').removesuffix('_id')}")
        assert list(entity._row) == before, "a refused value changes nothing"
    try:
        ctx.flush()  # whatever was accepted is written: no database error
    except ValueError as exc:  # validated before any SQL: a required reference unset
        _refused_properly(exc, "EveryTypeEntity.category")
        return
    assert not entity.is_dirty


def test_references_take_only_their_entity(fluxa_ctx: Context) -> None:
    ctx = fluxa_ctx.engine.new_context()
    entity = E.new(ctx)
    user = UserEntityProvider.new(ctx)
    for wrong in (0, 5, "1", user):
        with pytest.raises(TypeError, match=r"EveryTypeEntity\.category: expected CategoryEntity"):
            entity.category = wrong  # type: ignore[assignment]
    category = CategoryEntityProvider.new(ctx)
    entity.category = category
    assert entity.category_id == category.id


COLUMNS = [
    (name, column) for name, column in vars(type(E.fields)).items() if isinstance(column, Column)
]
OPERATORS = ["eq", "is_", "gt", "gte", "lt", "lte", "in_", "like", "in_list"]


@CHECK
@given(column=st.sampled_from(COLUMNS), operator=st.sampled_from(OPERATORS), value=VALUES)
@example(column=COLUMNS[1], operator="eq", value=[1, 2])
@example(column=COLUMNS[1], operator="lt", value=float("nan"))
@example(column=COLUMNS[1], operator="eq", value=Decimal("1E+100000000"))
def test_conditions_refuse_or_the_query_runs(
    fluxa_ctx: Context, column: tuple[str, Column[Any]], operator: str, value: Any
) -> None:
    name, ref = column
    like = getattr(ref, "like", None)
    assume(operator != "like" or like is not None)  # only text columns have like()
    try:
        if operator == "in_list":
            condition: Condition = ref.in_([value, value])
        elif operator == "like":
            assert like is not None
            condition = like(value)
        else:
            condition = getattr(ref, operator)(value)
    except Exception as exc:
        _refused_properly(exc, f"EveryTypeEntity.{name}")
        return
    ctx = fluxa_ctx.engine.new_context()
    E.search_many(ctx, Query().filter(condition))
    E.search_many(ctx, Query().filter(condition.not_()).pager(Pager(1, 5)))


@CHECK
@given(value=VALUES, in_list=st.booleans())
@example(value=EvilInt(1), in_list=False)
@example(value=[], in_list=True)
def test_where_parameters_refuse_or_the_query_runs(
    fluxa_ctx: Context, value: Any, in_list: bool
) -> None:
    where = Where("`id` IN ?", value) if in_list else Where("`u8` = ? OR `text` = ?", value, value)
    try:
        E.search(fluxa_ctx.engine.new_context(), where)
    except Exception as exc:
        _refused_properly(exc, "parameter")


@CHECK
@given(page=VALUES | st.integers(min_value=2**62, max_value=2**66), size=VALUES)
@example(page=EvilInt(1), size=EvilInt(2))
@example(page=2**63, size=10)
def test_pager_refuses_or_the_query_runs(fluxa_ctx: Context, page: Any, size: Any) -> None:
    try:
        pager = Pager(page, size)
    except Exception as exc:
        _refused_properly(exc, "Pager")
        return
    assert type(pager.page) is int and type(pager.size) is int
    E.search(fluxa_ctx.engine.new_context(), Where("1 = 1"), pager)
