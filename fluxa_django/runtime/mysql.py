"""Running the ORM's SQL: on the pool, or on an outer framework's transaction.

When a MySQL pool is tied to a framework connection (``{"database": alias}``
in Django) and a transaction is open on it (``atomic()``), fluxa's reads and
writes use that connection and so join the transaction; the question is asked
through the seam in ``runtime/outer.py``, never to Django directly.

Driver errors surface as ``IntegrityError``/``OperationalError`` naming the
entity, table and pool, with the driver's exception as ``__cause__``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from fluxa_django import metrics
from fluxa_django.backends.mysql import DriverError, database_error
from fluxa_django.runtime import outer
from fluxa_django.runtime.observe import OBSERVERS, notify

T = TypeVar("T")

if TYPE_CHECKING:
    from fluxa_django.backends.mysql import MySQLPool
    from fluxa_django.runtime.context import Context


def outer_connection(pool: MySQLPool) -> Any | None:
    """The outer transaction's raw connection when one is open on the pool's alias, else ``None``."""
    alias = pool.django_alias
    if alias is None:
        return None
    return outer.active().connection(alias)


def in_outer_transaction(pool: MySQLPool) -> bool:
    """True when an outer transaction is open (on the pool's alias, or the default connection)."""
    return outer.active().in_transaction(pool.django_alias)


def fetch(
    ctx: Context,
    pool: MySQLPool,
    sql: str,
    args: Any,
    entity: str,
    table: str,
    operation: str = "select",
) -> list[Any]:
    """Run a query and return all rows (one round trip), logging it on the context."""
    if OBSERVERS:
        notify("mysql", operation)
    try:
        if ctx._loggers or metrics.METRICS is not None:
            return _logged(ctx, pool.code, operation, sql, args, lambda: _fetch(pool, sql, args))
        return _fetch(pool, sql, args)
    except DriverError as exc:
        raise database_error(exc, pool.code, entity, table) from exc


def _fetch(pool: MySQLPool, sql: str, args: Any) -> list[Any]:
    alias = pool.django_alias
    raw = None if alias is None else outer.active().connection(alias)
    if raw is not None:  # inside the outer transaction: its connection, no retry
        return _rows(raw, sql, args)
    return pool.read(lambda raw: _rows(raw, sql, args))


def _rows(raw: Any, sql: str, args: Any) -> list[Any]:
    cur = raw.cursor()
    try:
        cur.execute(sql, args)
        return list(cur.fetchall())
    finally:
        cur.close()


def execute(
    ctx: Context,
    cursor: Any,
    pool: str,
    sql: str,
    args: Any,
    operation: str,
    literal: str | None = None,
) -> int:
    """Run one statement on an open cursor (inside a flush transaction).

    ``literal``, when given, is the statement with its values already formatted
    (``backends.mysql.row_literals``): it is what runs, while the loggers see ``sql``
    (placeholders) and the number of ``args``. Driver errors propagate unchanged: the flush wraps
    them, naming the table.
    """
    if OBSERVERS:
        notify("mysql", operation)
    statement, bound = (sql, args) if literal is None else (literal, None)
    if ctx._loggers or metrics.METRICS is not None:
        _logged(ctx, pool, operation, sql, args, lambda: cursor.execute(statement, bound))
    else:
        cursor.execute(statement, bound)
    return int(cursor.rowcount)


def _logged(
    ctx: Context, pool: str, operation: str, sql: str, args: Any, call: Callable[[], T]
) -> T:
    return timed(ctx, "mysql", pool, operation, lambda: _shown(sql, args), call)


def timed(
    ctx: Context,
    source: str,
    pool: str,
    operation: str,
    shown: Callable[[], str],
    call: Callable[[], T],
    miss: Callable[[T], bool] | None = None,
) -> T:
    """Run one round trip for the query loggers and the metrics."""
    started = time.time()
    clock = time.perf_counter()
    sink = metrics.METRICS
    try:
        result = call()
    except Exception as exc:
        if sink is not None:
            sink.error(source, pool)
        if ctx._loggers:
            ctx._log(source, pool, operation, shown(), started, exc)
        raise
    if sink is not None:
        sink.observe(source, pool, operation, time.perf_counter() - clock)
    if ctx._loggers:
        ctx._log(source, pool, operation, shown(), started, miss=miss(result) if miss else False)
    return result


def _shown(sql: str, args: Any) -> str:
    """The statement for logs: SQL text with placeholders, never the bound values."""
    count = len(args) if args else 0
    return f"{sql} -- {count} parameter(s)" if count else sql


class RowSource:
    """Rows of one table by id, read from its MySQL pool.

    The lowest step of the read path: providers read through it directly, and
    the cache tiers are given one as their loader (they never call back into
    the provider).
    """

    __slots__ = ("by_id_sql", "entity", "pool", "select_sql", "table")

    def __init__(
        self, pool: MySQLPool, entity: str, table: str, select_sql: str, by_id_sql: str
    ) -> None:
        self.pool = pool
        self.entity = entity
        self.table = table
        self.select_sql = select_sql
        self.by_id_sql = by_id_sql

    def __repr__(self) -> str:
        return f"<RowSource {self.entity} on {self.pool.code!r}>"

    def one(self, ctx: Context, id_: int) -> tuple[Any, ...] | None:
        rows = fetch(ctx, self.pool, self.by_id_sql, (id_,), self.entity, self.table)
        return rows[0] if rows else None

    def many(self, ctx: Context, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        """``{id: row}`` of the ids that exist (one round trip)."""
        if len(ids) == 1:
            rows = fetch(ctx, self.pool, self.by_id_sql, (ids[0],), self.entity, self.table)
        else:
            sql = f"{self.select_sql} WHERE `id` IN ({','.join(['%s'] * len(ids))})"
            rows = fetch(ctx, self.pool, sql, tuple(ids), self.entity, self.table)
        return {row[0]: row for row in rows}

    def query(self, ctx: Context, sql: str, args: Any, operation: str = "select") -> list[Any]:
        """Any query on this table's pool, errors naming this entity."""
        return fetch(ctx, self.pool, sql, args, self.entity, self.table, operation)
