"""ClickHouse pool over clickhouse-driver (native protocol): raw queries only."""

from __future__ import annotations

import contextlib
import queue
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from fluxa_django.backends.breaker import Breaker
from fluxa_django.config import ClickhouseOptions
from fluxa_django.errors import ConfigError, PoolError


def safe_clickhouse_uri(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("clickhouse", "clickhouses"):
        raise ConfigError("uri must start with clickhouse://")
    return f"{parts.hostname}:{parts.port or 9000}{parts.path}"


class ClickhousePool:
    """Clients are not thread-safe: each call borrows one from a small pool."""

    def __init__(self, code: str, uri: str, options: ClickhouseOptions) -> None:
        self.code = code
        self._uri = uri
        self.describe = safe_clickhouse_uri(uri)
        self.options = options
        self._idle: queue.LifoQueue[Client] = queue.LifoQueue()
        self.breaker = Breaker("clickhouse", code)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
        # clickhouse-driver waits 10 s to connect by default; the URI may say otherwise.
        self.connect_timeout = float(query.get("connect_timeout", ["2"])[0])

    def __repr__(self) -> str:
        return f"<ClickhousePool {self.code!r} {self.describe}>"

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
        reply_timeout = connection.send_receive_timeout
        connection.connect_timeout = self.connect_timeout
        connection.send_receive_timeout = self.connect_timeout
        try:
            connection.connect()
        finally:
            connection.send_receive_timeout = reply_timeout
        if connection.socket is not None:
            connection.socket.settimeout(reply_timeout)
        return client

    def connect(self) -> None:
        try:
            self.query_row("SELECT 1")
        except Exception as exc:
            raise PoolError(
                f"clickhouse pool {self.code!r} ({self.describe}): cannot connect: {exc}",
                pool=self.code,
            ) from None

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().disconnect()

    def exec(self, sql: str, params: dict[str, Any] | None = None) -> None:
        with self._client() as client:
            client.execute(sql, params)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._client() as client:
            return list(client.execute(sql, params))

    def query_row(self, sql: str, params: dict[str, Any] | None = None) -> tuple[Any, ...] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str] = ()) -> int:
        cols = f" ({', '.join(columns)})" if columns else ""
        with self._client() as client:
            return int(client.execute(f"INSERT INTO {table}{cols} VALUES", list(rows)))
