"""Per-process local cache pool: an LRU (cachetools) or an unbounded dict.

Besides the key/value API (``get``/``set``/``remove``/``clear``/``usage``) a
pool is the local tier of the entities that name it (``Meta.local_cache``).
Their rows are stored under ``(prefix, id)`` keys with a deadline, and a fill
is guarded by an invalidation sequence: a reader notes ``sequence`` before it
reads Redis or MySQL and stores only when no invalidation of that key (or a
full clear) happened since. So a row read before a writer's commit can never
be put back after the invalidation of that commit reached this process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

from cachetools import LRUCache

MISSING: Any = object()  # get_row(): nothing cached for the key
# Invalidated keys remembered for the fill guard; past this many the memory is
# dropped and every fill that started before is refused instead.
_GUARD_LIMIT = 20_000


class LocalCache:
    """A named in-process cache holding at most ``limit`` keys (0 = no limit)."""

    def __init__(self, code: str, limit: int) -> None:
        self.code = code
        self.limit = limit
        self._data: MutableMapping[Any, Any] = LRUCache(maxsize=limit) if limit > 0 else {}
        self._lock = threading.Lock()
        self.sequence = 0  # bumped by every invalidation
        self._floor = 0  # fills that started before this are refused
        self._invalidated: dict[Any, int] = {}
        # rows a flush is writing: no fill until its commit is announced or the deadline
        self._blocked: dict[Any, float] = {}
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"<LocalCache {self.code!r} limit={self.limit}>"

    # -- key/value API ---------------------------------------------------------------

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
        """Drop every key, and refuse the entity fills that are in flight."""
        with self._lock:
            self._data.clear()
            self.sequence += 1
            self._floor = self.sequence
            self._invalidated.clear()

    def usage(self) -> int:
        """Number of keys held."""
        return len(self._data)

    # -- entity rows ---------------------------------------------------------------------

    def get_row(self, key: tuple[str, int], now: float) -> Any:
        """The cached row (``None`` = known missing) or ``MISSING``."""
        with self._lock:
            try:
                entry = self._data[key]
            except KeyError:
                entry = None
        if entry is None or entry[0] < now:
            self.misses += 1
            return MISSING
        self.hits += 1
        return entry[1]

    def fill_rows(
        self, items: Iterable[tuple[tuple[str, int], Any]], started: int, ttl: float
    ) -> int:
        """Store rows read since ``started`` (a ``sequence`` value) unless invalidated meanwhile."""
        deadline = time.monotonic() + ttl
        stored = 0
        with self._lock:
            if started < self._floor:
                return 0
            invalidated = self._invalidated
            data = self._data
            blocked = self._blocked
            now = deadline - ttl
            for key, row in items:
                if invalidated.get(key, -1) > started:
                    continue
                if blocked:
                    until = blocked.get(key)
                    if until is not None:
                        if until > now:
                            continue  # a flush is writing this row
                        del blocked[key]
                data[key] = (deadline, row)
                stored += 1
        return stored

    def block(self, keys: Iterable[tuple[str, int]], seconds: float) -> None:
        """Evict rows a flush is about to write and refuse to store them again until
        ``invalidate`` announces its commit (or ``seconds`` pass: a writer that died
        after its commit leaves no old row behind, only rows read from below)."""
        until = time.monotonic() + seconds
        keys = list(keys)
        self.invalidate(keys)
        with self._lock:
            for key in keys:
                self._blocked[key] = until

    def invalidate(self, keys: Iterable[tuple[str, int]]) -> None:
        """Evict rows (a write committed) and refuse fills that started before."""
        with self._lock:
            self.sequence += 1
            seq = self.sequence
            invalidated = self._invalidated
            data = self._data
            blocked = self._blocked
            for key in keys:
                data.pop(key, None)
                invalidated[key] = seq
                if blocked:
                    blocked.pop(key, None)
            if len(invalidated) > _GUARD_LIMIT:
                invalidated.clear()
                self._floor = seq + 1
                self.sequence = seq + 1

    def invalidate_prefix(self, prefix: str) -> int:
        """Evict every row of one entity type (``clear_redis_cache``)."""
        with self._lock:
            doomed = [k for k in self._data if type(k) is tuple and len(k) == 2 and k[0] == prefix]
            for key in doomed:
                del self._data[key]
            self.sequence += 1
            self._floor = self.sequence
            self._invalidated.clear()
        return len(doomed)
