"""``Where``, ``Pager``, ``Query`` and typed column conditions.

Column names come only from generated code (entity definitions); values always
travel as bound parameters (``?`` here, ``%s`` for the driver).
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from fluxa_django.schema.model import quote_name
from fluxa_django.sql import bind

T = TypeVar("T")


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
        sql, args = bind(self._sql, [_param(p) for p in self._params])
        return sql, args or ()


class Pager:
    """A 1-based page: ``Pager(2, 50)`` is ``LIMIT 50,50``."""

    __slots__ = ("page", "size")

    def __init__(self, page: int = 1, size: int = 100) -> None:
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise ValueError(f"Pager page must be an int >= 1, got {page!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"Pager size must be an int >= 1, got {size!r}")
        self.page = page
        self.size = size

    def __repr__(self) -> str:
        return f"Pager({self.page}, {self.size})"

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    def limit_sql(self) -> str:
        return f" LIMIT {self.offset},{self.size}"

    def increment_page(self) -> Pager:
        self.page += 1
        return self


class Condition:
    """One typed condition on one column, produced by a column reference."""

    __slots__ = ("column", "eq_value", "params", "sql")

    def __init__(
        self, sql: str, params: tuple[Any, ...], column: str = "", eq_value: Any = None
    ) -> None:
        self.sql = sql
        self.params = params
        self.column = column  # set only for equality (cached unique index detection)
        self.eq_value = eq_value

    def __repr__(self) -> str:
        return f"Condition({self.sql!r})"

    def not_(self) -> Condition:
        """``NOT (<condition>)``."""
        return Condition(f"NOT ({self.sql})", self.params)


def _param(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple | set | frozenset):
        return [_param(v) for v in value]
    return value


class Column(Generic[T]):
    """A typed column reference: ``Provider.fields.age.gte(18)``."""

    __slots__ = ("name", "quoted")

    def __init__(self, name: str) -> None:
        self.name = name
        self.quoted = quote_name(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _cmp(self, op: str, value: T) -> Condition:
        return Condition(f"{self.quoted} {op} ?", (_param(value),))

    def eq(self, value: T) -> Condition:
        v = _param(value)
        return Condition(f"{self.quoted} = ?", (v,), self.name, v)

    def is_(self, value: T) -> Condition:
        """Same as ``eq`` (the seeds' name for strings, enums and bools)."""
        return self.eq(value)

    def in_(self, values: Iterable[T]) -> Condition:
        items = [_param(v) for v in values]
        if not items:
            return Condition("1 = 0", ())
        return Condition(f"{self.quoted} IN ({','.join('?' * len(items))})", tuple(items))

    def gt(self, value: T) -> Condition:
        return self._cmp(">", value)

    def gte(self, value: T) -> Condition:
        return self._cmp(">=", value)

    def lt(self, value: T) -> Condition:
        return self._cmp("<", value)

    def lte(self, value: T) -> Condition:
        return self._cmp("<=", value)


class NullableColumn(Column[T]):
    """A column that may hold NULL."""

    __slots__ = ()

    def is_null(self) -> Condition:
        return Condition(f"{self.quoted} IS NULL", ())

    def is_not_null(self) -> Condition:
        return Condition(f"{self.quoted} IS NOT NULL", ())


class StrColumn(Column[str]):
    """A text column: adds ``like`` (the caller supplies ``%``)."""

    __slots__ = ()

    def like(self, pattern: str) -> Condition:
        return Condition(f"{self.quoted} LIKE ?", (pattern,))


class NullableStrColumn(NullableColumn[str]):
    __slots__ = ()

    def like(self, pattern: str) -> Condition:
        return Condition(f"{self.quoted} LIKE ?", (pattern,))


Sortable = (
    Column[int] | Column[float] | Column[str] | Column[bool] | Column[datetime.date] | Column[Any]
)


class Query:
    """A typed search: conditions AND-ed, an optional raw ``Where``, ordering and a page."""

    __slots__ = ("_conditions", "_order", "_pager", "_where")

    def __init__(self) -> None:
        self._conditions: list[Condition] = []
        self._where: Where | None = None
        self._order: list[tuple[str, bool]] = []
        self._pager: Pager | None = None

    def __repr__(self) -> str:
        return f"Query({len(self._conditions)} condition(s), where={self._where!r}, pager={self._pager!r})"

    def clone(self) -> Query:
        """An independent copy (conditions, raw where, order and page)."""
        other = Query()
        other._conditions = list(self._conditions)
        other._where = self._where
        other._order = list(self._order)
        other._pager = self._pager
        return other

    def filter(self, *conditions: Condition) -> Query:
        for cond in conditions:
            if not isinstance(cond, Condition):
                raise TypeError(
                    f"Query.filter takes conditions from Provider.fields, got {type(cond).__name__}"
                )
            self._conditions.append(cond)
        return self

    def filter_where(self, where: Where) -> Query:
        """Set the raw SQL part (a later call replaces it); AND-ed with the conditions."""
        if not isinstance(where, Where):
            raise TypeError(f"Query.filter_where takes a Where, got {type(where).__name__}")
        self._where = where
        return self

    def sort_by_asc(self, column: Column[Any]) -> Query:
        self._order.append((column.quoted, True))
        return self

    def sort_by_desc(self, column: Column[Any]) -> Query:
        self._order.append((column.quoted, False))
        return self

    def pager(self, pager: Pager | None) -> Query:
        self._pager = pager
        return self

    @property
    def conditions(self) -> tuple[Condition, ...]:
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
            f"{col} {'ASC' if asc else 'DESC'}" for col, asc in self._order
        )


def build_where(
    conditions: Iterable[Condition], where: Where | None, fake_delete: str | None
) -> tuple[str, tuple[Any, ...]]:
    """Join typed conditions, a raw Where and the soft-delete filter with AND."""
    parts: list[str] = []
    params: list[Any] = []
    for cond in conditions:
        parts.append(cond.sql)
        params.extend(cond.params)
    if where is not None and where.sql.strip():
        parts.append(f"({where.sql})")
        params.extend(_param(p) for p in where.parameters)
    if fake_delete is not None and (where is None or not where.includes_fake_deletes):
        parts.append(f"{fake_delete} = 0")
    if not parts:
        return "", ()
    sql, args = bind(" WHERE " + " AND ".join(parts), params)
    return sql, args or ()
