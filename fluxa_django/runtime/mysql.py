"""Running the ORM's SQL: on the pool, or on Django's connection inside ``atomic()``.

When a MySQL pool is configured with ``{"database": alias}`` and that Django
connection is inside an ``atomic()`` block, fluxa's reads and writes use the
same connection, so they join Django's transaction.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from fluxa_django import metrics
from fluxa_django.runtime.observe import OBSERVERS, notify

T = TypeVar("T")

if TYPE_CHECKING:
    from fluxa_django.backends.mysql import MySQLPool
    from fluxa_django.runtime.context import Context


def django_atomic_connection(pool: MySQLPool) -> Any | None:
    """Django's raw connection when the pool's alias is inside ``atomic()``, else ``None``."""
    alias = pool.django_alias
    if alias is None:
        return None
    wrapper = _django_connection(alias)
    if wrapper is None or not wrapper.in_atomic_block:
        return None
    wrapper.ensure_connection()
    return wrapper.connection


def in_django_atomic(pool: MySQLPool) -> bool:
    """True when a Django ``atomic()`` block is open (on the pool's alias or ``default``)."""
    wrapper = _django_connection(pool.django_alias or "default")
    return wrapper is not None and bool(wrapper.in_atomic_block)


_threads = threading.local()


def _django_connection(alias: str) -> Any | None:
    """Django's connection wrapper of ``alias`` in this thread (``None`` if not configured).

    Django keeps one wrapper per thread; looking it up goes through asgiref's
    ``Local`` (about a microsecond), so the read path keeps its own per-thread
    reference, renewed when Django replaces its connection storage.
    """
    from django.db import connections

    storage = connections._connections  # type: ignore[attr-defined]
    cache: dict[str, Any] | None = getattr(_threads, "wrappers", None)
    if cache is None or _threads.storage is not storage:
        cache = _threads.wrappers = {}
        _threads.storage = storage
    try:
        return cache[alias]
    except KeyError:
        pass
    wrapper = connections[alias] if alias in connections.settings else None
    cache[alias] = wrapper
    return wrapper


@contextlib.contextmanager
def connection(pool: MySQLPool) -> Iterator[Any]:
    raw = django_atomic_connection(pool)
    if raw is not None:
        yield raw
        return
    with pool.connection() as conn:
        yield conn


def fetch(
    ctx: Context, pool: MySQLPool, sql: str, args: Any, operation: str = "select"
) -> list[Any]:
    """Run a query and return all rows (one round trip), logging it on the context."""
    if OBSERVERS:
        notify("mysql", operation)
    if ctx._loggers or metrics.METRICS is not None:
        return _logged(ctx, pool.code, operation, sql, args, lambda: _fetch(pool, sql, args))
    return _fetch(pool, sql, args)


def _fetch(pool: MySQLPool, sql: str, args: Any) -> list[Any]:
    with connection(pool) as raw:
        cur = raw.cursor()
        try:
            cur.execute(sql, args)
            return list(cur.fetchall())
        finally:
            cur.close()


def execute(ctx: Context, cursor: Any, pool: str, sql: str, args: Any, operation: str) -> int:
    """Run one statement on an open cursor (inside a flush transaction)."""
    if OBSERVERS:
        notify("mysql", operation)
    if ctx._loggers or metrics.METRICS is not None:
        _logged(ctx, pool, operation, sql, args, lambda: cursor.execute(sql, args))
    else:
        cursor.execute(sql, args)
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
