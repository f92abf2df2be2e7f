"""MySQL pool over mysqlclient: a bounded connection pool plus raw SQL helpers.

``engine.mysql(code)`` returns a ``MySQLPool``. SQL uses ``?`` placeholders
(see ``fluxa_django.sql``); values are always bound parameters.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import MySQLdb

from fluxa_django._fork import reset_in_child
from fluxa_django.backends.breaker import Breaker
from fluxa_django.config import MySQLOptions, MySQLURI
from fluxa_django.errors import IntegrityError, OperationalError, PoolError
from fluxa_django.sql import bind

Row = tuple[Any, ...]


DriverError = MySQLdb.Error  # what mysqlclient raises; never leaves fluxa_django
T = TypeVar("T")

# The connection is dead: the server restarted or went away, or killed it (idle too long).
_GONE = frozenset({2006, 2013, 2055, 1927, 4031})


class _DeadConnection(MySQLdb.OperationalError):  # type: ignore[misc]
    """A pooled connection failed its first statement: retried on a fresh one."""


def connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` says the connection itself is dead (not the statement wrong)."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    return isinstance(exc, MySQLdb.OperationalError) and bool(args) and args[0] in _GONE


def database_error(
    exc: BaseException, pool: str, entity: str = "", table: str = ""
) -> IntegrityError | OperationalError:
    """Our exception for a driver error (raise it ``from exc``), naming entity, table and pool."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    code = args[0] if args and isinstance(args[0], int) else 0
    where = f"{entity} (table `{table}`) on " if entity else ""
    message = f"{where}mysql pool {pool!r}: {_describe(exc)}"
    kind = IntegrityError if isinstance(exc, MySQLdb.IntegrityError) else OperationalError
    return kind(message, pool=pool, entity=entity, table=table, code=code)


@dataclass(frozen=True, slots=True)
class ExecResult:
    last_insert_id: int
    rows_affected: int


@dataclass(frozen=True, slots=True)
class MySQLLimits:
    """Pool limits derived in ``validate()`` from the options and the server."""

    max_open: int
    max_idle: int
    max_lifetime: int  # seconds


@dataclass(frozen=True, slots=True)
class ServerFeatures:
    """Capabilities read once from the server (MariaDB and MySQL differ)."""

    version: str
    mariadb: bool


class _Conn:
    __slots__ = ("born", "raw")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.born = time.monotonic()


# Connections inherited through fork(): never used nor closed by the child.
_INHERITED: list[Any] = []


class MySQLPool:
    """A bounded pool of mysqlclient connections to one database."""

    def __init__(
        self, code: str, uri: MySQLURI, options: MySQLOptions, django_alias: str | None = None
    ) -> None:
        self.code = code
        self.django_alias = django_alias
        self.uri = uri
        self.options = options
        self.limits = MySQLLimits(options.max_open_connections or 100, 0, 300)
        self.features = ServerFeatures("", True)
        self.identity: str | None = None  # the database's own token (runtime/namespace.py)
        self.breaker = Breaker("mysql", code)
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.limits.max_open)
        self._closed = False
        reset_in_child(self._forked)

    def _forked(self) -> None:
        # A forked child must not use (or close: mysql_close would end the
        # parent's session) the sockets it inherited: keep them out of reach.
        _INHERITED.extend(self._idle)
        self._idle = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.limits.max_open)

    def __repr__(self) -> str:
        return f"<MySQLPool {self.code!r} {self.uri.safe}>"

    @property
    def database(self) -> str:
        return self.uri.database

    # -- lifecycle ------------------------------------------------------------

    def _new_raw(self) -> Any:
        self.breaker.check()
        kwargs = self.uri.connect_kwargs()
        opts = self.options
        kwargs.update(
            charset=opts.default_encoding or "utf8mb4",
            autocommit=True,
            connect_timeout=opts.connect_timeout,
            read_timeout=opts.read_timeout,
            write_timeout=opts.write_timeout,
        )
        started = time.monotonic()
        try:
            raw = MySQLdb.connect(**kwargs)
        except MySQLdb.Error as exc:
            waited = time.monotonic() - started
            self.breaker.failed(f"cannot connect: {_describe(exc)}", waited, opts.connect_timeout)
            raise PoolError(
                f"mysql pool {self.code!r} ({self.uri.safe}): cannot connect: {_describe(exc)}",
                pool=self.code,
            ) from None
        self.breaker.ok()
        return raw

    def connect(self) -> None:
        """Open a first connection, read server limits and derive the pool limits."""
        raw = self._new_raw()
        try:
            cur = raw.cursor()
            cur.execute(
                "SHOW VARIABLES WHERE Variable_name IN ('max_connections','wait_timeout','version')"
            )
            variables = dict(cur.fetchall())
            cur.close()
        except MySQLdb.Error as exc:
            raw.close()
            raise PoolError(f"mysql pool {self.code!r}: {_describe(exc)}", pool=self.code) from None
        max_connections = int(variables.get("max_connections", 151))
        wait_timeout = int(variables.get("wait_timeout", 28800))
        version = str(variables.get("version", ""))
        opts = self.options
        max_open = min(opts.max_open_connections or 100, max_connections)
        max_idle = min(opts.max_idle_connections or max_open, max_open)
        lifetime = min(opts.conn_max_lifetime or 300, wait_timeout)
        self.limits = MySQLLimits(max_open, max_idle, lifetime)
        self.features = ServerFeatures(version, "mariadb" in version.lower())
        self._slots = threading.BoundedSemaphore(max_open)
        self._idle = [_Conn(raw)]

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self._closed = True
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.raw.close()

    # -- connections ----------------------------------------------------------

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """Borrow a raw mysqlclient connection (autocommit on) for the block."""
        if not self._slots.acquire(timeout=30):
            raise PoolError(
                f"mysql pool {self.code!r}: no free connection after 30s (max {self.limits.max_open})",
                pool=self.code,
            )
        conn: _Conn | None = None
        try:
            conn = self._take()
            yield conn.raw
        except (MySQLdb.OperationalError, OperationalError) as exc:
            if conn is not None:  # the connection may be broken: never reuse it
                with contextlib.suppress(Exception):
                    conn.raw.close()
                conn = None
            cause = exc if isinstance(exc, MySQLdb.OperationalError) else exc.__cause__
            if cause is not None and connection_lost(cause):
                self._drop_idle()  # they date from before the server went away too
            raise
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.raw.close()

    def read(self, work: Callable[[Any], T]) -> T:
        """``work(raw connection)`` for a statement that only reads.

        A pooled connection found dead (the server restarted, or closed it while
        idle) is dropped with the other idle ones, and the read runs once more on a
        fresh connection. Writes never get this retry (``begin`` retries only a
        failed ``BEGIN``, before anything was sent).
        """
        try:
            with self.connection() as raw:
                return work(raw)
        except MySQLdb.OperationalError as exc:
            if not connection_lost(exc):
                raise
        with self.connection() as raw:
            return work(raw)

    def _take(self) -> _Conn:
        now = time.monotonic()
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return _Conn(self._new_raw())
            if now - conn.born < self.limits.max_lifetime:
                return conn
            with contextlib.suppress(Exception):
                conn.raw.close()

    def _give_back(self, conn: _Conn) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.limits.max_idle:
                self._idle.append(conn)
                return
        with contextlib.suppress(Exception):
            conn.raw.close()

    # -- raw SQL ---------------------------------------------------------------

    def exec(self, sql: str, *params: Any) -> ExecResult:
        """Run a statement; returns the last insert id and the affected row count."""
        try:
            with self.connection() as raw:
                return _exec(raw, sql, params)
        except DriverError as exc:
            raise database_error(exc, self.code) from exc

    def query(self, sql: str, *params: Any) -> list[Row]:
        """Run a query and return every row as a tuple."""
        try:
            return self.read(lambda raw: _query(raw, sql, params))
        except DriverError as exc:
            raise database_error(exc, self.code) from exc

    def query_row(self, sql: str, *params: Any) -> Row | None:
        """Run a query and return its first row, or ``None``."""
        rows = self.query(sql, *params)
        return rows[0] if rows else None

    @contextlib.contextmanager
    def begin(self) -> Iterator[MySQLTransaction]:
        """A transaction: commits when the block ends, rolls back on an exception.

        Driver errors inside the block (from ``tx`` methods) and of the commit
        surface as ``IntegrityError``/``OperationalError``.
        """
        for attempt in (1, 2):
            try:
                with self.connection() as raw:
                    try:
                        raw.begin()
                    except DriverError as exc:
                        if attempt == 1 and connection_lost(exc):
                            # A dead pooled connection, nothing sent yet: discard it
                            # (and the other idle ones) and begin on a fresh one.
                            raise _DeadConnection(*exc.args) from exc
                        raise database_error(exc, self.code) from exc
                    tx = MySQLTransaction(raw, self.code)
                    try:
                        yield tx
                    except BaseException:
                        with contextlib.suppress(Exception):
                            raw.rollback()
                        raise
                    if not tx.finished:
                        tx.commit()
                    return
            except _DeadConnection:
                continue


class MySQLTransaction:
    """One open transaction on a borrowed connection (see ``MySQLPool.begin``)."""

    def __init__(self, raw: Any, pool: str) -> None:
        self.raw = raw
        self.pool = pool
        self.finished = False

    def exec(self, sql: str, *params: Any) -> ExecResult:
        try:
            return _exec(self.raw, sql, params)
        except DriverError as exc:
            raise database_error(exc, self.pool) from exc

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        query, _ = bind(sql, rows[0]) if rows else (sql, ())
        cur = self.raw.cursor()
        try:
            cur.executemany(query, rows)
            return int(cur.rowcount)
        except DriverError as exc:
            raise database_error(exc, self.pool) from exc
        finally:
            cur.close()

    def query(self, sql: str, *params: Any) -> list[Row]:
        try:
            return _query(self.raw, sql, params)
        except DriverError as exc:
            raise database_error(exc, self.pool) from exc

    def commit(self) -> None:
        if not self.finished:
            self.finished = True
            try:
                self.raw.commit()
            except DriverError as exc:
                raise database_error(exc, self.pool) from exc

    def rollback(self) -> None:
        if not self.finished:
            self.finished = True
            try:
                self.raw.rollback()
            except DriverError as exc:
                raise database_error(exc, self.pool) from exc


def _exec(raw: Any, sql: str, params: Sequence[Any]) -> ExecResult:
    query, args = bind(sql, params)
    cur = raw.cursor()
    try:
        cur.execute(query, args)
        return ExecResult(int(cur.lastrowid or 0), int(cur.rowcount))
    finally:
        cur.close()


def _query(raw: Any, sql: str, params: Sequence[Any]) -> list[Row]:
    query, args = bind(sql, params)
    cur = raw.cursor()
    try:
        cur.execute(query, args)
        return [tuple(row) for row in cur.fetchall()]
    finally:
        cur.close()


# -- literal rows for multi-row INSERTs ----------------------------------------------------
#
# mysqlclient formats every bound value in Python (``Connection.literal``: an
# encoder lookup, a Python converter, an encode per value); for the thousands of
# values of an insert flush that is most of the client's time. ``row_literals``
# formats whole rows with the same rules, per type, and hands the statement to
# the driver once. Strings still get the driver's escaping
# (``mysql_real_escape_string``) whenever they hold a character it would change;
# a string without one is its own literal (true of utf8 text: the function is
# used on utf8/utf8mb4 connections only); bytes are sent as hex literals. A
# value of any other type, or a float the server cannot store, makes it return
# ``None``: the caller binds the rows through the driver instead.

_ESCAPED = re.compile(r"[\x00\n\r\x1a'\"\\]")  # what mysql_real_escape_string changes
_UTF8 = frozenset({"utf8", "utf8mb3", "utf8mb4"})


class _NoLiteral(Exception):
    """A value ``row_literals`` leaves to the driver."""


def _float_sql(value: float) -> str:
    text = repr(value)  # what mysqlclient's Float2Str sends, "e0" making it a double
    if "e" in text:
        return text
    if "n" in text:  # inf, -inf, nan: the driver raises for these
        raise _NoLiteral
    return text + "e0"


def _bool_sql(value: bool) -> str:
    return "1" if value else "0"


def _datetime_sql(value: datetime.datetime) -> str:
    if value.tzinfo is not None:
        raise _NoLiteral
    return "'" + value.isoformat(" ") + "'"


def _date_sql(value: datetime.date) -> str:
    return "'" + value.isoformat() + "'"


def _bytes_sql(value: bytes) -> str:
    return "X'" + value.hex() + "'"


def _decimal_sql(value: Decimal) -> str:
    if not value.is_finite():
        raise _NoLiteral
    return format(value, "f")


_LITERALS: dict[type, Callable[[Any], str]] = {
    int: int.__repr__,
    bool: _bool_sql,
    float: _float_sql,
    bytes: _bytes_sql,
    Decimal: _decimal_sql,
    datetime.datetime: _datetime_sql,
    datetime.date: _date_sql,
    type(None): lambda _: "NULL",
}


def row_literals(raw: Any, rows: Sequence[Sequence[Any]]) -> list[str] | None:
    """``["(v,...)", ...]``: each row as SQL literals for ``INSERT ... VALUES``, or ``None``.

    ``None`` when the connection's character set is not utf8 or a value is not of
    a type formatted here: bind those rows through the driver.
    """
    if raw.character_set_name() not in _UTF8:
        return None
    escape = raw.string_literal
    escaped = _ESCAPED.search
    literals = _LITERALS
    out: list[str] = []
    try:
        for row in rows:
            items: list[str] = []
            for value in row:
                if type(value) is str:
                    if escaped(value) is None:
                        items.append("'" + value + "'")
                    else:
                        items.append(escape(value.encode()).decode())
                else:
                    items.append(literals[type(value)](value))
            out.append("(" + ",".join(items) + ")")
    except (KeyError, _NoLiteral):
        return None
    return out


def _describe(exc: BaseException) -> str:
    """A driver error as text (mysqlclient errors carry no password)."""
    args: tuple[object, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2:
        return f"({args[0]}) {args[1]}"
    return str(exc)
