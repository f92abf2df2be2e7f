"""ClickHouse pool over clickhouse-driver (native protocol): raw queries only."""

from __future__ import annotations

import contextlib
import queue
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

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

    def __repr__(self) -> str:
        return f"<ClickhousePool {self.code!r} {self.describe}>"

    @contextlib.contextmanager
    def _client(self) -> Iterator[Client]:
        try:
            client = self._idle.get_nowait()
        except queue.Empty:
            client = Client.from_url(self._uri)
        try:
            yield client
        except (ch_errors.NetworkError, EOFError, OSError):
            client.disconnect()
            raise
        else:
            if self._idle.qsize() < max(self.options.max_idle_connections, 4):
                self._idle.put(client)
            else:
                client.disconnect()

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
