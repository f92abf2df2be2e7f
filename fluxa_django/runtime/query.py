"""``Where``, ``Pager``, ``Query`` and typed column conditions.

Column names come only from generated code (entity definitions); values always
travel as bound parameters (``?`` here, ``%s`` for the driver).
"""

from __future__ import annotations

import datetime
import enum
import math
import operator
import typing
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Generic, overload

from typing_extensions import TypeVar

from fluxa_django.runtime.values import utc_naive, utf8_size
from fluxa_django.schema.model import quote_name
from fluxa_django.sql import bind

T = TypeVar("T")


class Unfiltered:
    """Type marker: the entity of a ``Query`` that no condition has tied to one yet.

    ``Query()`` is a ``Query[Unfiltered]``; ``filter`` with conditions of
    ``ProductEntity`` makes it a ``Query[ProductEntity]``, which only
    ``ProductEntityProvider`` accepts (mypy flags the others; at run time they
    raise ``TypeError``). ``Query[ProductEntity]()`` starts bound.
    """

    __slots__ = ()


# The entity a column, condition or query belongs to (``Any``: not known statically).
E = TypeVar("E", default=Any)
E2 = TypeVar("E2")
QE = TypeVar("QE", default=Unfiltered)


class Where:
    """A raw SQL condition with ``?`` placeholders: ``Where("`age` > ? AND `id` IN ?", 18, [1, 2])``.

    A list/tuple/set parameter after ``IN ?`` expands to ``IN (?,?,...)``.
    """

    __slots__ = ("_fake_deletes", "_params", "_sql")

    def __init__(self, sql: str, *params: Any) -> None:
        if not isinstance(sql, str):
            raise TypeError(f"Where sql must be a str, got {type(sql).__name__}")
        self._sql = sql
        self._params: list[Any] = list(params)
        self._fake_deletes = False

    def __repr__(self) -> str:
        return f"Where({self._sql!r}, {len(self._params)} parameter(s))"

    def __str__(self) -> str:
        return self._sql

    @property
    def sql(self) -> str:
        return self._sql

    @property
    def parameters(self) -> tuple[Any, ...]:
        return tuple(self._params)

    @property
    def includes_fake_deletes(self) -> bool:
        return self._fake_deletes

    def append(self, sql: str, *params: Any) -> Where:
        """Append SQL (a space is added when missing) and its parameters."""
        if sql and not sql.startswith(" ") and self._sql:
            sql = " " + sql
        self._sql += sql
        self._params.extend(params)
        return self

    def set_parameter(self, index: int, value: Any) -> Where:
        """Replace the parameter at 1-based ``index``."""
        if not 1 <= index <= len(self._params):
            raise IndexError(
                f"Where has {len(self._params)} parameter(s); index {index} is out of range (1-based)"
            )
        self._params[index - 1] = value
        return self

    def set_parameters(self, *params: Any) -> Where:
        self._params = list(params)
        return self

    def with_fake_deletes(self) -> Where:
        """Include soft-deleted rows in the search this Where is used for."""
        self._fake_deletes = True
        return self

    def compile(self) -> tuple[str, tuple[Any, ...]]:
        """``(sql with %s placeholders, flat parameters)``; raises ``ValueError`` on a count mismatch."""
        params = [_param(p, f"Where parameter {i}") for i, p in enumerate(self._params, 1)]
        sql, args = bind(self._sql, params)
        return sql, args or ()


class Pager:
    """A 1-based page: ``Pager(2, 50)`` is ``LIMIT 50,50``."""

    __slots__ = ("page", "size")

    def __init__(self, page: int = 1, size: int = 100) -> None:
        self.page = _page_number("page", page)
        self.size = _page_number("size", size)
        if self.offset + self.size > _PAGE_LIMIT:
            raise ValueError(
                f"Pager({self.page}, {self.size}) reaches beyond the last row MySQL can page to"
            )

    def __repr__(self) -> str:
        return f"Pager({self.page}, {self.size})"

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    def limit_sql(self) -> str:
        return f" LIMIT {self.offset},{self.size}"

    def increment_page(self) -> Pager:
        if self.offset + 2 * self.size > _PAGE_LIMIT:
            raise ValueError(f"Pager({self.page}, {self.size}): no page after this one")
        self.page += 1
        return self


def _page_number(name: str, value: Any) -> int:
    """A plain int >= 1 (an int subclass becomes its value: nothing of it reaches the SQL)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Pager {name} must be an int >= 1, got {value!r}")
    number = int.__index__(operator.index(value))
    if number < 1:
        raise ValueError(f"Pager {name} must be an int >= 1, got {number}")
    if number > _PAGE_LIMIT:
        raise ValueError(f"Pager {name} {number} is beyond the last row MySQL can page to")
    return number


class Condition(Generic[E]):
    """One typed condition on one column of entity ``E``, produced by a column reference."""

    __slots__ = ("column", "entity", "eq_value", "params", "sql")

    def __init__(
        self,
        sql: str,
        params: tuple[Any, ...],
        column: str = "",
        eq_value: Any = None,
        entity: str = "",
    ) -> None:
        self.sql = sql
        self.params = params
        self.column = column  # set only for equality (cached unique index detection)
        self.eq_value = eq_value
        self.entity = entity  # the entity whose column it tests ("" when not known)

    def __repr__(self) -> str:
        return f"Condition({self.sql!r})"

    def not_(self) -> Condition[E]:
        """``NOT (<condition>)``."""
        return Condition(f"NOT ({self.sql})", self.params, entity=self.entity)


_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what MySQL integer columns hold
_DECIMAL_DIGITS = 65  # DECIMAL(65, 30) is the widest MySQL column
_PAGE_LIMIT = 2**63 - 1  # LIMIT offset,size must stay below it


def check_param(value: Any, where: str) -> Any:
    """``value`` as one bound SQL parameter, or ``TypeError``/``ValueError`` naming ``where``.

    Accepted: ``None``, ``bool``, ``int`` (64-bit range), finite ``float``, finite
    ``Decimal`` (at most 65 digits before the point), ``str`` (valid Unicode),
    ``bytes``, dates, times and enums (their value). Subclasses become the plain
    type, so no ``__str__`` or ``__format__`` of the caller's reaches the SQL.
    """
    kind = type(value)
    if kind is str:
        if not value.isascii():
            utf8_size(value, where)
        return value
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise ValueError(f"{where}: {value} is outside the 64-bit integer range")
        return value
    if value is None or kind is bool:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} cannot be compared in SQL (not finite)")
        return value
    if isinstance(value, enum.Enum):
        return check_param(value.value, where)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{where}: Decimal {value} cannot be compared in SQL (not finite)")
        digits = value.as_tuple()
        if value and (
            value.adjusted() >= _DECIMAL_DIGITS
            or -int(digits.exponent) > 2 * _DECIMAL_DIGITS
            or len(digits.digits) > 2 * _DECIMAL_DIGITS
        ):
            raise ValueError(f"{where}: Decimal {value:.6g} is out of the DECIMAL range")
        return Decimal(value)  # a plain Decimal
    if isinstance(value, datetime.datetime):
        moment = utc_naive(value, where)  # datetimes are stored as naive UTC
        return datetime.datetime(*moment.timetuple()[:6], moment.microsecond)
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return check_param(value[:], where)  # a str subclass: its plain text
    if isinstance(value, int):
        return check_param(int.__index__(value), where)
    if isinstance(value, float):
        return check_param(float.__float__(value), where)
    raise TypeError(f"{where}: a {type(value).__name__} cannot be a SQL parameter")


def _param(value: Any, where: str = "parameter") -> Any:
    """A bound parameter; a list (``IN ?``) is checked item by item."""
    if isinstance(value, list | tuple | set | frozenset):
        return [check_param(v, where) for v in value]
    return check_param(value, where)


class Column(Generic[T, E]):
    """A typed column reference of entity ``E`` holding ``T``: ``Provider.fields.age.gte(18)``.

    Values are checked when the condition is made (``check_param``): a value that
    is not one SQL scalar (a list to ``eq``, ``nan``, a 300-digit Decimal) raises
    ``TypeError``/``ValueError`` naming the entity and field, before any SQL.
    """

    __slots__ = ("__orig_class__", "entity", "name", "quoted", "where")

    def __init__(self, name: str, entity: str = "") -> None:
        self.name = name
        self.quoted = quote_name(name)
        self.entity = entity
        self.where = f"{entity}.{name}" if entity else name

    def __set_name__(self, owner: type, attribute: str) -> None:
        # Generated code puts the columns of ``XEntity`` on ``_XEntityFields``:
        # errors then name ``XEntity.field``, and providers refuse its conditions.
        entity = owner.__name__.removeprefix("_").removesuffix("Fields")
        if entity and not self.entity:
            self.entity = entity
            self.where = f"{entity}.{self.name}"

    def _condition(self, sql: str, params: tuple[Any, ...], eq: bool = False) -> Condition[E]:
        if eq:
            return Condition(sql, params, self.name, params[0], self.entity)
        return Condition(sql, params, entity=self.entity)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _value(self, value: Any) -> Any:
        if isinstance(value, list | tuple | set | frozenset | dict):
            raise TypeError(
                f"{self.where}: expected one value, got a {type(value).__name__} (use in_())"
            )
        _check_kind(self, value)
        return check_param(value, self.where)

    def _cmp(self, op: str, value: T) -> Condition[E]:
        return self._condition(f"{self.quoted} {op} ?", (self._value(value),))

    def eq(self, value: T) -> Condition[E]:
        return self._condition(f"{self.quoted} = ?", (self._value(value),), eq=True)

    def is_(self, value: T) -> Condition[E]:
        """Same as ``eq`` (the seeds' name for strings, enums and bools)."""
        return self.eq(value)

    def in_(self, values: Iterable[T]) -> Condition[E]:
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise TypeError(
                f"{self.where}: in_() takes a list of values, got {type(values).__name__}"
            )
        items = [self._value(v) for v in values]
        if not items:
            return self._condition("1 = 0", ())
        return self._condition(f"{self.quoted} IN ({','.join('?' * len(items))})", tuple(items))

    def gt(self, value: T) -> Condition[E]:
        return self._cmp(">", value)

    def gte(self, value: T) -> Condition[E]:
        return self._cmp(">=", value)

    def lt(self, value: T) -> Condition[E]:
        return self._cmp("<", value)

    def lte(self, value: T) -> Condition[E]:
        return self._cmp("<=", value)


class NullableColumn(Column[T, E]):
    """A column that may hold NULL."""

    __slots__ = ()

    def is_null(self) -> Condition[E]:
        return self._condition(f"{self.quoted} IS NULL", ())

    def is_not_null(self) -> Condition[E]:
        return self._condition(f"{self.quoted} IS NOT NULL", ())


class StrColumn(Column[str, E]):
    """A text column: adds ``like`` (the caller supplies ``%``)."""

    __slots__ = ()

    def like(self, pattern: str) -> Condition[E]:
        return _like(self, pattern)


class NullableStrColumn(NullableColumn[str, E]):
    __slots__ = ()

    def like(self, pattern: str) -> Condition[E]:
        return _like(self, pattern)


def _like(column: Column[Any, E], pattern: Any) -> Condition[E]:
    if not isinstance(pattern, str):
        raise TypeError(f"{column.where}: like() takes a str pattern, got {type(pattern).__name__}")
    return column._condition(f"{column.quoted} LIKE ?", (check_param(pattern, column.where),))


_ACCEPTED: dict[Any, tuple[type, ...]] = {
    int: (int,),
    float: (int, float, Decimal),
    str: (str,),
    bool: (bool, int),
    bytes: (bytes, bytearray, memoryview),
    datetime.datetime: (datetime.datetime,),
    datetime.date: (datetime.date,),
}


def _check_kind(column: Column[Any], value: Any) -> None:
    """``value`` fits the column's Python type (``Column[int]``: an int, not ``"abc"``)."""
    if value is None:
        return
    if isinstance(column, StrColumn | NullableStrColumn):
        kind: Any = str
    else:
        alias = getattr(column, "__orig_class__", None)
        args = typing.get_args(alias) if alias is not None else ()
        if not args:
            return
        kind = args[0]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        if isinstance(value, kind) or (isinstance(value, str) and value in {m.value for m in kind}):
            return
        raise TypeError(f"{column.where}: expected a {kind.__name__}, got {value!r}")
    accepted = _ACCEPTED.get(kind)
    if accepted is None:
        return
    if kind is int and isinstance(value, bool):
        raise TypeError(f"{column.where}: expected an int, got bool")
    if not isinstance(value, accepted):
        raise TypeError(f"{column.where}: expected {kind.__name__}, got {type(value).__name__}")


class Query(Generic[QE]):
    """A typed search: conditions AND-ed, an optional raw ``Where``, ordering and a page.

    ``QE`` is the entity its conditions and sort columns belong to: ``Query()`` is
    unbound (any provider takes it); the first ``filter``/``sort_by_*`` with a
    column of ``ProductEntity`` makes it a ``Query[ProductEntity]`` for mypy.
    """

    __slots__ = ("_conditions", "_order", "_pager", "_where")

    def __init__(self) -> None:
        self._conditions: list[Condition[Any]] = []
        self._where: Where | None = None
        self._order: list[tuple[str, bool, str]] = []  # (quoted column, ascending, entity)
        self._pager: Pager | None = None

    def __repr__(self) -> str:
        return f"Query({len(self._conditions)} condition(s), where={self._where!r}, pager={self._pager!r})"

    def clone(self) -> Query[QE]:
        """An independent copy (conditions, raw where, order and page)."""
        other: Query[QE] = Query()
        other._conditions = list(self._conditions)
        other._where = self._where
        other._order = list(self._order)
        other._pager = self._pager
        return other

    @overload
    def filter(self: Query[Unfiltered], *conditions: Condition[E2]) -> Query[E2]: ...
    @overload
    def filter(self, *conditions: Condition[QE]) -> Query[QE]: ...
    def filter(self, *conditions: Condition[Any]) -> Query[Any]:
        for cond in conditions:
            if not isinstance(cond, Condition):
                raise TypeError(
                    f"Query.filter takes conditions from Provider.fields, got {type(cond).__name__}"
                )
            self._conditions.append(cond)
        return self

    def filter_where(self, where: Where) -> Query[QE]:
        """Set the raw SQL part (a later call replaces it); AND-ed with the conditions."""
        if not isinstance(where, Where):
            raise TypeError(f"Query.filter_where takes a Where, got {type(where).__name__}")
        self._where = where
        return self

    @overload
    def sort_by_asc(self: Query[Unfiltered], column: Column[Any, E2]) -> Query[E2]: ...
    @overload
    def sort_by_asc(self, column: Column[Any, QE]) -> Query[QE]: ...
    def sort_by_asc(self, column: Column[Any, Any]) -> Query[Any]:
        self._order.append((_sort_column(column), True, column.entity))
        return self

    @overload
    def sort_by_desc(self: Query[Unfiltered], column: Column[Any, E2]) -> Query[E2]: ...
    @overload
    def sort_by_desc(self, column: Column[Any, QE]) -> Query[QE]: ...
    def sort_by_desc(self, column: Column[Any, Any]) -> Query[Any]:
        self._order.append((_sort_column(column), False, column.entity))
        return self

    def pager(self, pager: Pager | None) -> Query[QE]:
        self._pager = pager
        return self

    @property
    def conditions(self) -> tuple[Condition[Any], ...]:
        return tuple(self._conditions)

    @property
    def page(self) -> Pager | None:
        return self._pager

    @property
    def has_order(self) -> bool:
        return bool(self._order)

    @property
    def where(self) -> Where | None:
        return self._where

    def where_clause(self, fake_delete: str | None) -> tuple[str, tuple[Any, ...]]:
        """`` WHERE ...`` (with ``%s`` placeholders) and its parameters; ``""`` when empty."""
        return build_where(self._conditions, self._where, fake_delete)

    def order_clause(self) -> str:
        if not self._order:
            return ""
        return " ORDER BY " + ",".join(
            f"{col} {'ASC' if asc else 'DESC'}" for col, asc, _ in self._order
        )


def _sort_column(column: Any) -> str:
    if not isinstance(column, Column):
        raise TypeError(
            f"Query sort_by_* takes a column from Provider.fields, got {type(column).__name__}"
        )
    return column.quoted


def build_where(
    conditions: Iterable[Condition[Any]], where: Where | None, fake_delete: str | None
) -> tuple[str, tuple[Any, ...]]:
    """Join typed conditions, a raw Where and the soft-delete filter with AND."""
    parts: list[str] = []
    params: list[Any] = []
    for cond in conditions:
        parts.append(cond.sql)
        params.extend(cond.params)
    if where is not None and where.sql.strip():
        parts.append(f"({where.sql})")
        params.extend(_param(p, f"Where parameter {i}") for i, p in enumerate(where.parameters, 1))
    if fake_delete is not None and (where is None or not where.includes_fake_deletes):
        parts.append(f"{fake_delete} = 0")
    if not parts:
        return "", ()
    sql, args = bind(" WHERE " + " AND ".join(parts), params)
    return sql, args or ()
