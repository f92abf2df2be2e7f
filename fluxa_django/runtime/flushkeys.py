"""What a flush must invalidate, per Redis pool: planned beside the write path.

Before the SQL a flush overwrites every affected row key with a write marker
(readers never fill over it), deletes the affected cached unique-index keys and
tells every process to evict its local copies and not refill them until the
commit is announced, one pipeline per Redis pool; with Redis unreachable the
flush is refused (``PoolError``) and nothing is written. After the commit it
deletes them again, evicts its own local copies and publishes the
invalidation to other processes (``runtime/invalidation.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import redis

from fluxa_django import metrics
from fluxa_django.errors import PoolError
from fluxa_django.runtime import codec, namespace
from fluxa_django.runtime.invalidation import Invalidation, InvalidationBus
from fluxa_django.runtime.observe import OBSERVERS, notify

if TYPE_CHECKING:
    from fluxa_django.backends.redis import RedisPool
    from fluxa_django.runtime.tiers import Tiers

log = logging.getLogger("fluxa_django.cache")

WRITE_MARKER_MS = 30_000  # a flush's marker; outlives any sane transaction

# A cached unique index as generated: (name, row positions, column names).
UniqueIndex = tuple[str, tuple[int, ...], tuple[str, ...]]


class FlushKeys:
    """What a flush must invalidate on one Redis pool."""

    __slots__ = ("bus", "generation", "keys", "local", "pool", "tables", "unique")

    def __init__(self, pool: RedisPool, bus: InvalidationBus | None) -> None:
        self.pool = pool
        self.bus = bus
        # per entity type: its tiers, the ids of its rows with a Redis entry, and the
        # (index, token) of its cached unique-index values; keys are built from them
        self.tables: list[tuple[Tiers, list[int], list[tuple[str, str]]]] = []
        self.keys: list[str] = []  # row keys: marked before the SQL, deleted after
        self.unique: list[str] = []  # unique-index keys: deleted before and after
        self.local: dict[tuple[str, str], list[int]] = {}
        self.generation = -1  # the Redis epoch generation the keys were marked under

    def _build_keys(self) -> None:
        self.keys = [t.key(i) for t, ids, _ in self.tables for i in ids]
        self.unique = [
            t.unique_key(n, token) for t, _, tokens in self.tables for n, token in tokens
        ]

    def mark(self) -> None:
        """Before the SQL: write markers on the rows, drop the unique keys.

        Built under the Redis server's current epoch; when the server changes while
        marking (a restart: the keys now have another epoch), they are built and
        marked again, so the markers are always on the keys readers use.
        """
        for _ in range(3):
            generation = self.pool.generation
            self._build_keys()
            self._mark_once()
            if self.pool.generation == generation:
                self.generation = generation
                return

    def _items(self) -> list[Invalidation]:
        return [(code, prefix, ids) for (code, prefix), ids in self.local.items()]

    def _mark_once(self) -> None:
        items = self._items()
        bus = self.bus
        if items and bus is not None:
            # Local copies go before the SQL, everywhere, and are not filled again until
            # the commit is announced (release) or the marker's time runs out: a writer
            # that dies between COMMIT and release leaves no process serving the old row.
            bus.evict_here(items, WRITE_MARKER_MS)
        pipe = self.pool.client.pipeline(transaction=False)
        if items and bus is not None:
            pipe.publish(bus.channel, bus.payload(items, WRITE_MARKER_MS))
        for key in self.keys:
            pipe.set(key, codec.WRITING, px=WRITE_MARKER_MS)
        for group in _by_slot(self.unique):
            pipe.delete(*group)
        if not self.keys and not self.unique and not (items and bus is not None):
            pipe.ping()  # the commit must be publishable
        if OBSERVERS:
            notify("redis", "mark")
        try:
            _pipeline(self.pool.code, "mark", pipe)
        except (redis.RedisError, OSError) as exc:
            self.pool.failed(exc)
            raise PoolError(
                f"flush refused: redis pool {self.pool.code!r} is unreachable "
                f"({type(exc).__name__}); nothing was written",
                pool=self.pool.code,
            ) from exc
        self.pool.breaker.ok()  # it answers again: reads use it at once

    def release(self, committed: bool, rows: dict[str, bytes] | None = None, ttl: int = 0) -> None:
        """After the commit (or a failed write): delete the keys, evict local rows everywhere
        and lift the refill block of ``mark``. ``committed`` only chooses what is logged
        when Redis fails here (``False``: the flush wrote nothing).

        ``rows`` (``flush_async(update_cache=True)``, once its records are published):
        key -> encoded row or the not-found marker, put in place of the markers with
        ``ttl`` — readers see the write before the consumer applies it; a marked key
        without a row (its record failed) is deleted."""
        items = self._items()
        bus = self.bus
        if items and bus is not None:
            bus.evict_here(items)  # also lifts the block of mark()
        placed = [(key, rows[key]) for key in self.keys if rows and key in rows]
        doomed = [key for key in self.keys if not rows or key not in rows] + self.unique
        if self.generation >= 0 and self.pool.generation != self.generation:
            # The server changed between the mark and now (a failover): readers use keys
            # of the new epoch, which may hold a fill of the old row; drop those too
            # (and place nothing: the rows were keyed under the old epoch).
            doomed += [key for key, _ in placed]
            placed = []
            self._build_keys()
            doomed += self.keys + self.unique
        if not doomed and not placed and not (items and bus is not None):
            return
        pipe = self.pool.client.pipeline(transaction=False)
        for group in _by_slot(doomed):
            pipe.delete(*group)
        for key, value in placed:
            pipe.set(key, value, ex=ttl)
        if items and bus is not None:
            pipe.publish(bus.channel, bus.payload(items))
        operation = "release" if rows is None else "publish_rows"
        if OBSERVERS:
            notify("redis", operation)
        try:
            _pipeline(self.pool.code, operation, pipe)
        except (redis.RedisError, OSError) as exc:
            self.pool.failed(exc)
            if rows is not None:
                log.error(
                    "fluxa: redis pool %r failed after an async flush was published (%s): "
                    "its rows are read from MySQL (not yet changed there) until the write "
                    "markers expire (%d s) or the consumer applies it",
                    self.pool.code,
                    type(exc).__name__,
                    WRITE_MARKER_MS // 1000,
                )
            elif not committed:  # a flush that wrote nothing: only the markers stay a while
                log.warning(
                    "fluxa: redis pool %r: could not drop the write markers of a failed "
                    "flush (%s); those rows bypass the cache until they expire (%d s)",
                    self.pool.code,
                    type(exc).__name__,
                    WRITE_MARKER_MS // 1000,
                )
            else:
                log.error(
                    "fluxa: redis pool %r failed after a flush (%s): cached rows stay "
                    "bypassed, and other processes do not cache them locally, until the "
                    "write markers expire (%d s)",
                    self.pool.code,
                    type(exc).__name__,
                    WRITE_MARKER_MS // 1000,
                )


def _by_slot(keys: list[str]) -> list[list[str]]:
    """Keys grouped by hash tag (one table each): a multi-key command stays in one
    Redis Cluster slot."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(namespace.hash_tag(key), []).append(key)
    return list(groups.values())


def _pipeline(pool: str, operation: str, pipe: Any) -> None:
    sink = metrics.METRICS
    if sink is None:
        pipe.execute()
        return
    clock = time.perf_counter()
    try:
        pipe.execute()
    except Exception:
        sink.error("redis", pool)
        raise
    sink.observe("redis", pool, operation, time.perf_counter() - clock)


def collect_keys(
    entries: Iterable[tuple[Tiers, Sequence[UniqueIndex], Iterable[Any]]],
) -> dict[str, FlushKeys]:
    """Group by Redis pool the cache keys of the rows a flush changes.

    ``entries`` gives per entity type its tiers, its cached unique indexes and
    the rows (old and new forms) of its changed entities.
    """
    out: dict[str, FlushKeys] = {}
    for tiers, cached_uniques, rows in entries:
        flush_keys = out.get(tiers.redis_pool.code)
        if flush_keys is None:
            flush_keys = out[tiers.redis_pool.code] = FlushKeys(tiers.redis_pool, tiers.bus)
        elif flush_keys.bus is None:
            flush_keys.bus = tiers.bus
        ids: set[int] = set()
        uniques: set[tuple[str, str]] = set()
        for row in rows:
            ids.add(row[0])
            for name, positions, _ in cached_uniques:
                uniques.add((name, codec.unique_token(tuple(row[p] for p in positions))))
        flush_keys.tables.append((tiers, sorted(ids) if tiers.row_cache else [], sorted(uniques)))
        if tiers.local is not None:
            flush_keys.local.setdefault((tiers.local.code, tiers.prefix), []).extend(sorted(ids))
    return out
