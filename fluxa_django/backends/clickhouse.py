"""ClickHouse pools, raw queries only: ``clickhouse://`` (a server, native protocol, through
clickhouse-driver) and ``chdb://path`` (ClickHouse embedded in this process, through chDB).

Both have the same API: ``exec``, ``query``, ``query_row``, ``insert``. Parameters use
ClickHouse's own typed placeholders, ``{name:Type}``, and are bound, never formatted into the
SQL by fluxa_django:

- chDB and servers that speak query parameters on the native protocol (revision 54459,
  ClickHouse 22.x and later) receive the SQL and the values apart (server-side binding);
- older servers (the 18.16 of the development machine) have no parameters in their
  protocol: each ``{name:Type}`` becomes ``CAST(%(name)s AS Type)`` and clickhouse-driver
  substitutes the value with its own escaping (its documented client-side binding).

Rows come back as tuples of Python values (ints, floats, ``Decimal``, ``str``, ``date``,
naive ``datetime``, ``UUID``, lists, tuples, dicts) on both kinds of pool.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import json
import os
import queue
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from fluxa_django import metrics
from fluxa_django.backends.breaker import Breaker
from fluxa_django.config import ClickhouseOptions
from fluxa_django.errors import ConfigError, OperationalError, PoolError
from fluxa_django.observe import OBSERVERS, QueryLog, notify

Params = dict[str, Any] | None

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
# Quoted literals and identifiers, comments, then the placeholders we bind.
_TOKENS = re.compile(
    r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`|--[^\n]*|/\*.*?\*/"
    r"|\{(\w+):([^{}]+)\}",
    re.S,
)
# The protocol revision from which the native protocol carries query parameters.
_PARAMETERS_REVISION = 54459


def safe_clickhouse_uri(uri: str) -> str:
    """The URI without credentials (for errors, logs and reprs)."""
    if uri.startswith("chdb://"):
        return f"chdb:{chdb_path(uri)}"
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("clickhouse", "clickhouses"):
        raise ConfigError("uri must start with clickhouse:// or chdb://")
    return f"{parts.hostname}:{parts.port or 9000}{parts.path}"


def chdb_path(uri: str) -> str:
    """The data path of a ``chdb://`` URI, absolute (``:memory:`` stays as it is)."""
    path = uri[len("chdb://") :].split("?", 1)[0]
    if not path:
        raise ConfigError(
            "chdb:// needs a data path (chdb:///abs/path, chdb://rel/path or chdb://:memory:)"
        )
    return path if path == ":memory:" else os.path.abspath(path)


def quote_identifier(name: str) -> str:
    """``table`` or ``db.table`` in backquotes; anything else is refused."""
    if not _IDENT.match(name):
        raise ConfigError(f"{name!r} is not a plain ClickHouse identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return ".".join(f"`{part}`" for part in name.split("."))


def open_clickhouse_pool(code: str, uri: str, options: ClickhouseOptions) -> ClickhousePool:
    if uri.startswith("chdb://"):
        return ChdbPool(code, uri, options)
    return ClickhouseServerPool(code, uri, options)


class ClickhousePool:
    """What both kinds of ClickHouse pool offer. ``ctx`` (a context) logs the call on
    its query loggers (source ``clickhouse``, operations ``EXEC``, ``SELECT``, ``INSERT``)."""

    kind = "clickhouse"

    def __init__(self, code: str, uri: str, options: ClickhouseOptions) -> None:
        self.code = code
        self._uri = uri
        self.describe = safe_clickhouse_uri(uri)
        self.options = options
        self.breaker = Breaker("clickhouse", code)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.code!r} {self.describe}>"

    # -- the API ---------------------------------------------------------------------

    def exec(self, sql: str, params: Params = None, *, ctx: QueryLog | None = None) -> None:
        """Run a statement that returns no rows (DDL, ``INSERT ... SELECT``, ...)."""
        self._observed(ctx, "EXEC", sql, lambda: self._run(sql, params, want_rows=False))

    def query(
        self, sql: str, params: Params = None, *, ctx: QueryLog | None = None
    ) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._observed(
            ctx, "SELECT", sql, lambda: self._run(sql, params, want_rows=True)
        )
        return rows

    def query_row(
        self, sql: str, params: Params = None, *, ctx: QueryLog | None = None
    ) -> tuple[Any, ...] | None:
        """The first row, or ``None`` when there is none."""
        rows = self.query(sql, params, ctx=ctx)
        return rows[0] if rows else None

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str] = (),
        *,
        columnar: bool = False,
        ctx: QueryLog | None = None,
    ) -> int:
        """Insert ``rows`` (a sequence of rows, or of columns with ``columnar=True``) into
        ``table`` in one bulk insert; returns the number of rows. The values travel as
        data (native blocks, or JSON rows on chDB), never as SQL text."""
        target = quote_identifier(table)
        names = [quote_identifier(c) for c in columns]
        data = [list(r) for r in rows]
        if columnar:
            if names and len(data) != len(names):
                raise ConfigError(
                    f"insert into {table}: {len(data)} columns for {len(names)} names"
                )
            data = [list(r) for r in zip(*data, strict=True)]
        shown = f"INSERT INTO {target}{' (' + ', '.join(names) + ')' if names else ''} ({len(data)} rows)"
        count: int = self._observed(ctx, "INSERT", shown, lambda: self._insert(target, names, data))
        return count

    def connect(self) -> None:
        try:
            self.query_row("SELECT 1")
        except (PoolError, OperationalError) as exc:
            raise PoolError(
                f"clickhouse pool {self.code!r} ({self.describe}): cannot connect: {exc}",
                pool=self.code,
            ) from None

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- for the subclasses ------------------------------------------------------------

    def _run(self, sql: str, params: Params, want_rows: bool) -> Any:
        raise NotImplementedError

    def _insert(self, target: str, names: list[str], rows: list[list[Any]]) -> int:
        raise NotImplementedError

    def _failed(self, exc: BaseException) -> OperationalError:
        code = int(getattr(exc, "code", 0) or 0)
        if not code and (found := re.search(r"Code: (\d+)", str(exc))):
            code = int(found.group(1))
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        message = " ".join(lines[:2]).split(" Stack trace:")[0] or type(exc).__name__
        return OperationalError(
            f"clickhouse pool {self.code!r}: {message}", pool=self.code, code=code
        )

    def _observed(self, ctx: QueryLog | None, operation: str, shown: str, call: Any) -> Any:
        started = time.time()
        clock = time.monotonic()
        error: BaseException | None = None
        try:
            return call()
        except BaseException as exc:
            error = exc
            raise
        finally:
            if OBSERVERS:
                notify("clickhouse", operation)
            sink = metrics.METRICS
            if sink is not None:
                if error is None:
                    sink.observe("clickhouse", self.code, operation, time.monotonic() - clock)
                else:
                    sink.error("clickhouse", self.code)
            if ctx is not None and ctx._loggers:
                ctx._log("clickhouse", self.code, operation, shown, started, error)


# -- a server, through clickhouse-driver ------------------------------------------------


def _driver_sql(sql: str) -> str:
    """For a server without protocol parameters: ``{name:Type}`` outside quotes becomes
    ``CAST(%(name)s AS Type)`` for clickhouse-driver's substitution, and every other ``%``
    is doubled (the driver %-formats the whole text)."""

    def sub(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(0).replace("%", "%%")
        return f"CAST(%({match.group(1)})s AS {match.group(2)})"

    out, last = [], 0
    for match in _TOKENS.finditer(sql):
        out.append(sql[last : match.start()].replace("%", "%%"))
        out.append(sub(match))
        last = match.end()
    out.append(sql[last:].replace("%", "%%"))
    return "".join(out)


class ClickhouseServerPool(ClickhousePool):
    """Clients are not thread-safe: each call borrows one from a small pool.

    Bounded waits: ``connect_timeout`` (URI ``?connect_timeout=``, else the option, 2 s)
    bounds the TCP connect and the handshake; ``read_timeout`` (option, 30 s; URI
    ``?send_receive_timeout=`` overrides) bounds each reply.
    """

    def __init__(self, code: str, uri: str, options: ClickhouseOptions) -> None:
        super().__init__(code, uri, options)
        self._idle: queue.LifoQueue[Client] = queue.LifoQueue()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
        self.connect_timeout = float(query.get("connect_timeout", [options.connect_timeout])[0])
        self.read_timeout = float(query.get("send_receive_timeout", [options.read_timeout])[0])

    @contextlib.contextmanager
    def _client(self) -> Iterator[Client]:
        self.breaker.check()
        try:
            client = self._idle.get_nowait()
        except queue.Empty:
            client = None
        started = time.monotonic()
        try:
            if client is None:
                client = self._connected_client()
            yield client
        except (ch_errors.NetworkError, ch_errors.SocketTimeoutError, EOFError, OSError) as exc:
            if client is not None:
                client.disconnect()
            waited = time.monotonic() - started
            self.breaker.failed(type(exc).__name__, waited, self.connect_timeout)
            raise PoolError(
                f"clickhouse pool {self.code!r} ({self.describe}): {type(exc).__name__}",
                pool=self.code,
            ) from exc
        except ch_errors.Error as exc:
            self.breaker.ok()
            self._idle.put(client)
            raise self._failed(exc) from exc
        else:
            self.breaker.ok()
            if self._idle.qsize() < max(self.options.max_idle_connections, 4):
                self._idle.put(client)
            else:
                client.disconnect()

    def _connected_client(self) -> Client:
        """A new client, connected: the TCP connect *and* the protocol handshake are
        bounded by ``connect_timeout`` (the driver would wait ``send_receive_timeout``,
        300 s by default, for the handshake of a hung server)."""
        client = Client.from_url(self._uri)
        connection = client.connection
        connection.connect_timeout = self.connect_timeout
        connection.send_receive_timeout = self.connect_timeout
        try:
            connection.connect()
        finally:
            connection.send_receive_timeout = self.read_timeout
        if connection.socket is not None:
            connection.socket.settimeout(self.read_timeout)
        server = connection.server_info
        if server is not None and server.revision >= _PARAMETERS_REVISION:
            client.client_settings["server_side_params"] = True
        return client

    def server_version(self) -> tuple[int, ...]:
        row = self.query_row("SELECT version()")
        return tuple(int(p) for p in str(row[0] if row else "0").split(".") if p.isdigit())

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().disconnect()

    def _run(self, sql: str, params: Params, want_rows: bool) -> Any:
        with self._client() as client:
            if params is not None and not client.client_settings["server_side_params"]:
                sql = _driver_sql(sql)
            result = client.execute(sql, params)
        return [tuple(r) for r in result] if want_rows else None

    def _insert(self, target: str, names: list[str], rows: list[list[Any]]) -> int:
        cols = f" ({', '.join(names)})" if names else ""
        with self._client() as client:
            return int(client.execute(f"INSERT INTO {target}{cols} VALUES", rows))


# -- embedded, through chDB -------------------------------------------------------------

# chDB runs one embedded server per process, on one data path: (path, open pools).
_CHDB_LOCK = threading.Lock()
_CHDB_OPEN: dict[str, int] = {}

# Session settings of every chDB connection: exact decimals and 64-bit integers in JSON.
_CHDB_SETTINGS = "output_format_json_quote_decimals=1&output_format_json_quote_64bit_integers=0"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot send a {type(value).__name__} to ClickHouse")


def _param_text(value: Any) -> str:
    """A value as ClickHouse reads a query parameter: the escaped text of its type."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\0", "\\0")
        )
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (list, tuple, set, frozenset)):
        inner = ",".join(_literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, (list, set, frozenset)) else f"({inner})"
    return str(value)


def _literal(value: Any) -> str:
    """A value inside a composite parameter (quoted text form)."""
    if value is None:
        return "NULL"
    if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return _param_text(value)
    text = _param_text(value) if not isinstance(value, str) else value
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _split_args(inner: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i].strip())
            start = i + 1
    parts.append(inner[start:].strip())
    return parts


def _converter(type_name: str) -> Any:
    """A function turning a JSON value of ClickHouse type ``type_name`` into what
    clickhouse-driver returns for it."""
    t = type_name.strip()
    head, _, rest = t.partition("(")
    inner = rest[:-1] if rest.endswith(")") else ""
    if head in ("Nullable", "LowCardinality"):
        conv = _converter(inner)
        return lambda v: None if v is None else conv(v)
    if head == "Array":
        conv = _converter(inner)
        return lambda v: [conv(x) for x in v]
    if head == "Tuple":
        convs = [
            _converter(
                a.split(" ", 1)[-1] if " " in a and not a.startswith(("Nullable", "Array")) else a
            )
            for a in _split_args(inner)
        ]
        return lambda v: tuple(
            c(x) for c, x in zip(convs, v.values() if isinstance(v, dict) else v, strict=False)
        )
    if head == "Map":
        key_t, value_t = _split_args(inner)
        kc, vc = _converter(key_t), _converter(value_t)
        return lambda v: {kc(k): vc(x) for k, x in v.items()}
    if head.startswith(("Int", "UInt")):
        return int
    if head.startswith("Float"):
        return float
    if head.startswith("Decimal"):
        return lambda v: decimal.Decimal(str(v))
    if head == "Bool":
        return bool
    if head in ("Date", "Date32"):
        return datetime.date.fromisoformat
    if head in ("DateTime", "DateTime64"):
        return datetime.datetime.fromisoformat
    if head == "UUID":
        return uuid.UUID
    return lambda v: v


class ChdbPool(ClickhousePool):
    """ClickHouse embedded in this process (chDB), on the data path of ``chdb://path``.

    chDB runs one embedded server per process with one data path: a pool on another path
    while one is open raises ``ConfigError``. One connection, calls serialized: a call
    waits at most ``read_timeout`` for the one before it (then ``PoolError``), and the
    session setting ``max_execution_time`` (the same bound) stops a query running longer.
    """

    kind = "chdb"

    def __init__(self, code: str, uri: str, options: ClickhouseOptions) -> None:
        super().__init__(code, uri, options)
        self.path = chdb_path(uri)
        self.read_timeout = options.read_timeout
        self._conn: Any = None
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        if self._conn is not None:
            return self._conn
        try:
            import chdb
        except ImportError:
            raise ConfigError(
                f"clickhouse pool {self.code!r}: chdb:// needs chDB: pip install 'fluxa-django[chdb]'"
            ) from None
        with _CHDB_LOCK:
            other = [p for p, n in _CHDB_OPEN.items() if n and p != self.path]
            if other:
                raise ConfigError(
                    f"clickhouse pool {self.code!r}: chDB already runs on {other[0]!r} in this "
                    f"process and allows one data path per process, not also {self.path!r}"
                )
            if self.path != ":memory:":
                os.makedirs(self.path, exist_ok=True)
            extra = urllib.parse.urlsplit(self._uri).query
            settings = f"{_CHDB_SETTINGS}&max_execution_time={max(int(self.read_timeout), 1)}"
            target = self.path if self.path == ":memory:" else f"file:{self.path}"
            try:
                self._conn = chdb.connect(  # type: ignore[no-untyped-call]
                    f"{target}?{settings}{'&' + extra if extra else ''}"
                )
            except Exception as exc:
                raise PoolError(
                    f"clickhouse pool {self.code!r} ({self.describe}): {exc}", pool=self.code
                ) from exc
            _CHDB_OPEN[self.path] = _CHDB_OPEN.get(self.path, 0) + 1
        return self._conn

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        if not self._lock.acquire(timeout=self.read_timeout):
            raise PoolError(
                f"clickhouse pool {self.code!r} ({self.describe}): busy for {self.read_timeout}s",
                pool=self.code,
            )
        try:
            yield self._connection()
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            with _CHDB_LOCK:
                _CHDB_OPEN[self.path] -= 1
            with contextlib.suppress(Exception):
                conn.close()

    def _run(self, sql: str, params: Params, want_rows: bool) -> Any:
        bound = {k: _param_text(v) for k, v in (params or {}).items()}
        with self._session() as conn:
            try:
                if not want_rows:
                    conn.query(sql, "Null", params=bound)
                    return None
                raw = conn.query(sql, "JSONCompactEachRowWithNamesAndTypes", params=bound)
            except Exception as exc:
                raise self._failed(exc) from exc
        text = raw.bytes().decode("utf-8", "replace") if hasattr(raw, "bytes") else str(raw)
        lines = text.splitlines()
        if len(lines) < 2:
            return []
        convs = [_converter(t) for t in json.loads(lines[1])]
        rows = []
        for line in lines[2:]:
            if line:
                rows.append(tuple(c(v) for c, v in zip(convs, json.loads(line), strict=True)))
        return rows

    def _insert(self, target: str, names: list[str], rows: list[list[Any]]) -> int:
        if not rows:
            return 0
        cols = f" ({', '.join(names)})" if names else ""
        body = "".join(json.dumps(r, default=_json_value) + "\n" for r in rows)
        sql = f"INSERT INTO {target}{cols} SETTINGS date_time_input_format='best_effort'"
        with self._session() as conn:
            try:
                inserter = conn.send_insert(sql, "JSONCompactEachRow")
                inserter.append(body)
                return int(inserter.finish().rows_written)
            except Exception as exc:
                raise self._failed(exc) from exc
