"""The shared cache tiers of one entity type: local LRU, then the Redis row cache.

Read path (``row``/``rows``): local tier (when the entity has one and the
invalidation listener is connected) → Redis (one ``GET``/``MGET``) → MySQL,
filling on the way back. Fills never put back a row older than a commit:

- Redis: a miss installs a lease in the key itself (``\\x00L<token>``, only if
  the key is empty); the reader fills with a compare-and-set on its token. A
  flush overwrites the key with a write marker before its SQL and deletes it
  after the commit, so a reader that read the old row finds its lease gone.
- Local: a fill is refused when an invalidation of the key arrived after the
  reader started (``LocalCache.fill_rows``); commits reach other processes via
  ``InvalidationBus``.

Inside a Django ``atomic()`` block on the entity's MySQL alias the tiers are
bypassed (reads see the transaction's own writes, and nothing uncommitted is
ever cached). With Redis unreachable reads fall back to MySQL with a warning.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import redis

from fluxa_django import metrics
from fluxa_django.backends.localcache import MISSING as _MISSING
from fluxa_django.backends.redis import quick_command
from fluxa_django.runtime import codec
from fluxa_django.runtime import mysql as sql_runner
from fluxa_django.runtime.invalidation import Invalidation, InvalidationBus
from fluxa_django.runtime.observe import OBSERVERS, notify

if TYPE_CHECKING:
    from fluxa_django.backends.localcache import LocalCache
    from fluxa_django.backends.mysql import MySQLPool
    from fluxa_django.backends.redis import RedisPool
    from fluxa_django.runtime.context import Context
    from fluxa_django.runtime.mysql import RowSource

log = logging.getLogger("fluxa_django.cache")

REDIS_TTL = 3600  # seconds a cached row lives in Redis without being written
LOCAL_TTL = 60.0  # seconds a local row lives at most (a last resort; invalidation is the rule)
LEASE_MS = 5000  # a reader's fill lease

# KEYS: cache keys. ARGV[1]: lease value, ARGV[2]: lease ms, ARGV[3]: the
# prefix of current entries (schema stamp); ARGV[3 + i]: the value the reader
# found unusable in key i ("" when the key was empty). Per key: the current
# value, or "" when this call took the lease: the key was empty, held a row
# written under another definition, or still holds the unusable value (a
# corrupt or forged entry: replaced rather than left in the way until its TTL).
_LEASE = """
local out = {}
local n = string.len(ARGV[3])
for i, key in ipairs(KEYS) do
    local v = redis.call('GET', key)
    if v and v ~= ARGV[3 + i] and (string.byte(v, 1) == 0 or string.sub(v, 1, n) == ARGV[3]) then
        out[i] = v
    else
        redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
        out[i] = ''
    end
end
return out
"""

# KEYS: cache keys. ARGV[1]: lease value, ARGV[2]: ttl s, ARGV[3..]: values.
_FILL = """
local n = 0
for i, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        redis.call('SET', key, ARGV[i + 2], 'EX', ARGV[2])
        n = n + 1
    end
end
return n
"""


def _is_miss(result: Any) -> bool:
    return result is None or (isinstance(result, list) and None in result)


_lease_counter = itertools.count(1)
# Lease tokens must be unique across hosts and forks: a random process tag
# (renewed in forked children) plus a counter.
_process_tag = [secrets.token_hex(6)]
os.register_at_fork(after_in_child=lambda: _process_tag.__setitem__(0, secrets.token_hex(6)))
_warned: dict[str, float] = {}


def _first_in_10s(what: str) -> bool:
    """True at most once every 10 s per ``what``: warnings that could flood the log."""
    now = time.monotonic()
    if now - _warned.get(what, -100.0) < 10.0:
        return False
    _warned[what] = now
    return True


def warn_corrupt(entity: str, id_: int, value: bytes) -> None:
    """Log a cached value that is not a row of this id, at most once every 10 s per entity."""
    if _first_in_10s(f"corrupt:{entity}"):
        log.warning(
            "fluxa: %s %d: the value cached in Redis is not its row (%d bytes: undecodable or "
            "another id); read from MySQL and replaced",
            entity,
            id_,
            len(value),
        )


def warn_redis_down(pool: RedisPool, exc: BaseException, action: str) -> None:
    """Note that Redis failed (``RedisPool.failed``) and log it, at most once every 10 s
    per pool."""
    pool.failed(exc)
    if _first_in_10s(pool.code):
        log.warning(
            "fluxa: redis pool %r unreachable (%s); %s", pool.code, type(exc).__name__, action
        )


class Tiers:
    """The local and Redis tiers of one entity type on one engine.

    Built by the runtime state (``runtime/state.py``) from the entity's
    generated description; rows below the tiers come from ``rows`` (a
    ``RowSource``), never from the provider.
    """

    def __init__(
        self,
        *,
        entity: str,
        prefix: str,
        stamp: str,
        width: int,
        row_cache: bool,
        mysql: MySQLPool,
        rows: RowSource,
        redis_pool: RedisPool,
        local: LocalCache | None,
        bus: InvalidationBus | None,
    ) -> None:
        self.entity = entity
        self.mysql = mysql
        self.rows_below = rows
        self._alias_pool = mysql.django_alias is not None
        self.redis_pool = redis_pool
        self.client: redis.Redis = redis_pool.client
        # The table's namespace (runtime/namespace.py): local-cache keys and invalidations.
        # Redis keys add the Redis server's epoch (its run id): see ``redis_prefix``.
        self.prefix = prefix
        # (generation, text, bytes) of the epoch the prefix is of (see ``_prefixes``)
        self._epoch_prefix: tuple[int, str, bytes] = (-1, prefix, prefix.encode())
        self.stamp = stamp
        self.width = width  # columns of a row: an entry with another count is not a row
        self._stamp_prefix = codec.stamp_prefix(stamp)
        self.row_cache = row_cache
        self.local = local
        self.bus = bus
        self._lease = self.client.register_script(_LEASE)
        self._fill = self.client.register_script(_FILL)

    def __repr__(self) -> str:
        return f"<Tiers {self.entity} prefix={self.prefix!r}>"

    @property
    def redis_prefix(self) -> str:
        """``<namespace><epoch>:``: the prefix of this table's Redis keys.

        The epoch is the run id of the Redis server (``RedisPool.epoch``): a server
        restarted from an older snapshot, or a replica promoted by a failover, has
        another one, so the entries it brought back are never read (they expire).
        """
        return self._prefixes()[0]

    @property
    def redis_prefix_bytes(self) -> bytes:
        """``redis_prefix`` encoded: the keys of a batch read are built as bytes (redis-py
        sends bytes as they are; a str costs it an encode per key)."""
        return self._prefixes()[1]

    def _prefixes(self) -> tuple[str, bytes]:
        """Both forms of the prefix, of one epoch: replaced as one tuple (two threads
        following a change cannot leave the text and the bytes of different epochs)."""
        generation, text, data = self._epoch_prefix
        pool = self.redis_pool
        if pool.generation != generation:
            generation = pool.generation  # before the epoch: a change between is seen next
            text = f"{self.prefix}{pool.epoch[:16]}:"
            data = text.encode()
            self._epoch_prefix = (generation, text, data)
        return text, data

    def key(self, id_: int) -> str:
        return f"{self.redis_prefix}{id_}"

    def unique_key(self, index: str, token: str) -> str:
        return f"{self.redis_prefix}u:{index}:{token}"

    def bypassed(self) -> bool:
        """True inside an outer transaction (Django ``atomic()``) on the entity's MySQL alias."""
        return self._alias_pool and sql_runner.in_outer_transaction(self.mysql)

    def local_ready(self) -> bool:
        bus = self.bus
        return bus is not None and (bus.healthy or bus.ensure_started())

    # -- one row -----------------------------------------------------------------------

    def row(self, ctx: Context, id_: int) -> tuple[Any, ...] | None:
        """The row of ``id_`` (``None`` when it does not exist), through the tiers."""
        if self._alias_pool and sql_runner.in_outer_transaction(self.mysql):
            return self.rows_below.one(ctx, id_)
        local = self.local
        started = -1
        if local is not None and (self.bus.healthy or self.local_ready()):  # type: ignore[union-attr]
            found = local.get_row((self.prefix, id_), time.monotonic())
            if ctx._loggers or metrics.METRICS is not None:
                hit = found is not _MISSING
                self._local_seen(ctx, local, "get", f"{self.entity}:{id_}", int(hit), int(not hit))
            if found is not _MISSING:
                row: tuple[Any, ...] | None = found
                return row
            started = local.sequence
        return self._below_local(ctx, [id_], started)[id_]

    def rows(self, ctx: Context, ids: Sequence[int]) -> dict[int, tuple[Any, ...] | None]:
        """``{id: row or None}`` for every id: one round trip per tier at most."""
        if self.bypassed():
            return self._from_mysql(ctx, ids)
        out: dict[int, tuple[Any, ...] | None] = {}
        local = self.local
        started = -1
        missing: Sequence[int] = ids
        if local is not None and self.local_ready():
            now = time.monotonic()
            prefix = self.prefix
            missing = []
            for id_ in ids:
                value = local.get_row((prefix, id_), now)
                if value is _MISSING:
                    missing.append(id_)
                else:
                    out[id_] = value
            if ctx._loggers or metrics.METRICS is not None:
                shown = f"{self.entity}:{len(ids)} id(s)"
                self._local_seen(ctx, local, "get_many", shown, len(out), len(missing))
            started = local.sequence
        if missing:
            out.update(self._below_local(ctx, missing, started))
        return out

    def _below_local(
        self, ctx: Context, ids: Sequence[int], started: int
    ) -> dict[int, tuple[Any, ...] | None]:
        """Redis (or MySQL) for what the local tier missed; fills the local tier when
        ``started`` (its sequence before the read) is given."""
        loaded = self._redis_rows(ctx, ids) if self.row_cache else self._from_mysql(ctx, ids)
        local = self.local
        if started >= 0 and local is not None:
            prefix = self.prefix
            local.fill_rows((((prefix, i), row) for i, row in loaded.items()), started, LOCAL_TTL)
        return loaded

    def _local_seen(
        self, ctx: Context, local: LocalCache, operation: str, shown: str, hits: int, misses: int
    ) -> None:
        if ctx._loggers:
            ctx._log("local", local.code, operation, shown, time.time(), miss=misses > 0)
        sink = metrics.METRICS
        if sink is not None:
            sink.requests(self.entity, "local", hits, misses)

    # -- Redis -------------------------------------------------------------------------

    def _redis_rows(
        self, ctx: Context, ids: Sequence[int], again: bool = True
    ) -> dict[int, tuple[Any, ...] | None]:
        """Rows from the Redis tier, MySQL for its misses, lease-guarded fills."""
        if self.redis_pool.breaker.is_open():  # failed a moment ago: do not wait for it again
            return self._from_mysql(ctx, ids)
        generation = self.redis_pool.generation
        out = self._redis_rows_once(ctx, ids)
        if self.redis_pool.generation != generation:
            # The server changed under the keys this read used (it restarted, maybe
            # from an older snapshot): read again under the new epoch's keys.
            if again:
                return self._redis_rows(ctx, ids, again=False)
            return self._from_mysql(ctx, ids)
        return out

    def _redis_rows_once(
        self, ctx: Context, ids: Sequence[int]
    ) -> dict[int, tuple[Any, ...] | None]:
        prefix = self.redis_prefix_bytes
        keys = [b"%s%d" % (prefix, i) for i in ids]
        client = self.client
        try:
            if len(keys) == 1:
                key = keys[0]
                get = partial(quick_command, client, "GET", key)
                values = [self._redis_call(ctx, "get", key.decode(), get)]
            else:
                mget = partial(quick_command, client, "MGET", *keys)
                values = self._redis_call(ctx, "mget", f"{len(keys)} key(s)", mget)
        except (redis.RedisError, OSError) as exc:
            warn_redis_down(self.redis_pool, exc, "reading from MySQL")
            return self._from_mysql(ctx, ids)
        stamp = self.stamp
        current, width = self._stamp_prefix, self.width
        if len(values) > 1:  # the usual case of a batch: every entry current, one pass
            rows = codec.decode_rows(stamp, values, ids, width)
            if rows is not None:
                sink = metrics.METRICS
                if sink is not None:
                    sink.requests(self.entity, "redis", len(rows), 0)
                return rows
        out: dict[int, tuple[Any, ...] | None] = {}
        empty: list[int] = []  # nothing current cached: try to take the lease
        seen: list[bytes] = []  # per empty id: the unusable value found ("" for none)
        busy: list[int] = []  # leased or being written: read, don't fill
        decode = codec.decode_row
        for id_, value in zip(ids, values, strict=True):
            if value and value.startswith(current):  # the usual case: a current entry
                row = decode(stamp, value)
                if row is not None and row[0] == id_ and len(row) == width:
                    out[id_] = row
                    continue
            if not value:
                empty.append(id_)
                seen.append(b"")
            elif value == codec.NOT_FOUND:
                out[id_] = None
            elif value[0] == 0:
                busy.append(id_)
            else:
                row = codec.decode_row(stamp, value)
                if row is None or row[0] != id_ or len(row) != self.width:
                    # another definition's entry, or corrupt/forged: the lease replaces it
                    if row is not None or value.startswith(self._stamp_prefix):
                        warn_corrupt(self.entity, id_, value)
                    empty.append(id_)
                    seen.append(value)
                else:
                    out[id_] = row
        sink = metrics.METRICS
        if sink is not None:
            sink.requests(self.entity, "redis", len(out), len(empty) + len(busy))
        if not empty and not busy:
            return out
        token = b""
        leased: list[int] = []
        if empty:
            token = codec.LEASE_PREFIX + f"{_process_tag[0]}:{next(_lease_counter)}".encode()
            empty_keys = [self.key(i) for i in empty]
            try:
                answers = self._redis_call(
                    ctx,
                    "lease",
                    f"{len(empty_keys)} key(s)",
                    lambda: self._lease(
                        keys=empty_keys, args=[token, LEASE_MS, self._stamp_prefix, *seen]
                    ),
                )
            except (redis.RedisError, OSError) as exc:
                warn_redis_down(self.redis_pool, exc, "reading from MySQL")
                answers = [b"\x00"] * len(empty)  # no lease: read without filling
            for id_, answer in zip(empty, answers, strict=True):
                if answer == b"":
                    leased.append(id_)
                elif answer == codec.NOT_FOUND:
                    out[id_] = None
                else:
                    row = codec.decode_row(stamp, answer) if answer and answer[0] != 0 else None
                    if row is None or row[0] != id_ or len(row) != self.width:
                        busy.append(id_)
                    else:
                        out[id_] = row
        wanted = leased + busy
        if not wanted:
            return out
        found = self._mysql_rows(ctx, wanted)
        for id_ in wanted:
            out[id_] = found.get(id_)
        if leased:
            fill_keys = [self.key(i) for i in leased]
            fill_values = [
                codec.NOT_FOUND if found.get(i) is None else codec.encode_row(stamp, found[i])
                for i in leased
            ]
            try:
                self._redis_call(
                    ctx,
                    "fill",
                    f"{len(fill_keys)} key(s)",
                    lambda: self._fill(keys=fill_keys, args=[token, REDIS_TTL, *fill_values]),
                )
            except (redis.RedisError, OSError) as exc:
                warn_redis_down(self.redis_pool, exc, "not caching")
        return out

    def _redis_call(self, ctx: Context, operation: str, shown: str, call: Callable[[], Any]) -> Any:
        if OBSERVERS:
            notify("redis", operation)
        if not ctx._loggers and metrics.METRICS is None:
            return call()
        return sql_runner.timed(
            ctx, "redis", self.redis_pool.code, operation, lambda: shown, call, _is_miss
        )

    def _mysql_rows(self, ctx: Context, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        return self.rows_below.many(ctx, ids)

    def _from_mysql(self, ctx: Context, ids: Sequence[int]) -> dict[int, tuple[Any, ...] | None]:
        """``{id: row or None}`` for every id, from MySQL (nothing cached)."""
        found = self._mysql_rows(ctx, ids)
        return {i: found.get(i) for i in ids}

    # -- unique indexes ----------------------------------------------------------------

    def unique_id(self, ctx: Context, key: str) -> int | None:
        """The id cached for a unique-index value, or ``None`` (miss or Redis down)."""
        if self.bypassed() or self.redis_pool.breaker.is_open():
            return None
        generation = self.redis_pool.generation
        try:
            value = self._redis_call(ctx, "get", key, lambda: self.client.get(key))
        except (redis.RedisError, OSError) as exc:
            warn_redis_down(self.redis_pool, exc, "reading from MySQL")
            return None
        if value is None or not value.isdigit() or self.redis_pool.generation != generation:
            return None  # (another server epoch: the key was built for the old one)
        return int(value)

    def set_unique(self, ctx: Context, key: str, id_: int | None) -> None:
        """Remember (or with ``None`` forget) the id of a unique-index value; best effort."""
        if self.bypassed() or self.redis_pool.breaker.is_open():
            return
        try:
            if id_ is None:
                self._redis_call(ctx, "del", key, lambda: self.client.delete(key))
            else:
                self._redis_call(
                    ctx, "set", key, lambda: self.client.set(key, str(id_), ex=REDIS_TTL)
                )
        except (redis.RedisError, OSError) as exc:
            warn_redis_down(self.redis_pool, exc, "not caching")

    # -- clearing ----------------------------------------------------------------------

    def clear(self, ctx: Context) -> int:
        """Delete every Redis key of this entity type and evict its local rows."""
        removed = 0
        client = self.client
        batch: list[Any] = []
        for key in client.scan_iter(match=f"{self.prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += int(client.unlink(*batch))
                batch.clear()
        if batch:
            removed += int(client.unlink(*batch))
        if self.local is not None and self.bus is not None:
            items: list[Invalidation] = [(self.local.code, self.prefix, None)]
            self.bus.evict_here(items)
            client.publish(self.bus.channel, self.bus.payload(items))
        return removed
