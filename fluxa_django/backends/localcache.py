"""Per-process local cache pool: an LRU (cachetools) or an unbounded dict."""

from __future__ import annotations

import threading
from collections.abc import MutableMapping
from typing import Any

from cachetools import LRUCache

_MISSING = object()


class LocalCache:
    """A named in-process cache holding at most ``limit`` keys (0 = no limit)."""

    def __init__(self, code: str, limit: int) -> None:
        self.code = code
        self.limit = limit
        self._data: MutableMapping[Any, Any] = LRUCache(maxsize=limit) if limit > 0 else {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<LocalCache {self.code!r} limit={self.limit}>"

    def get(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            return self._data.get(key, default)

    def set(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value

    def remove(self, *keys: Any) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def usage(self) -> int:
        """Number of keys held."""
        return len(self._data)
