"""Redis pool: the redis-py client of one Redis database, direct or through Sentinel.

``engine.redis(code)`` returns a ``RedisPool``, which *is* a ``redis.Redis``: every
redis-py command, pipeline and script is available on it, measured by the metrics
(``fluxa_queries_seconds{source="redis"}``, when turned on); ``pool.with_context(ctx)``
is the same client reporting every call to the query loggers of ``ctx`` too. On top
of the commands:

- ``get_locker().obtain(key, ttl, wait_timeout)``: a distributed lock (``Lock``:
  ``release``, ``refresh(ttl)``, ``ttl()``) held under a random token, released and
  refreshed only by its owner (Lua compare-and-delete / compare-and-expire);
- ``rate_limiter(key, limit, window)``: a sliding-window limiter (``allow()``,
  ``hit()``), one atomic Lua script over a sorted set, timed by the Redis server's
  clock;
- ``incr_with_expire(key, ttl)``: ``INCR`` and its expiry in one ``MULTI``.

Lock and limiter keys are the tools' own: ``fx:lock:<app>:<key>`` and
``fx:rate:<app>:<key>``, ``<app>`` a hash of ``app_name``, so applications sharing a
Redis database never contend for each other's locks or limits. Commands, and
``incr_with_expire``, use the caller's keys as given. ``pool.client`` is the plain
redis-py client of the same connections (not measured): the cache tiers, flush and
Redis Search use it and do their own logging.

``validate()`` reads the server version and loaded modules once; the pool answers
``has_search`` from that, without further round trips. Every new connection reads
the server's identity (``epoch``: see ``RedisPool._on_connect``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from fluxa_django import metrics
from fluxa_django._fork import reset_in_child
from fluxa_django.backends.breaker import Breaker
from fluxa_django.config import RedisOptions, parse_redis_address
from fluxa_django.errors import PoolError
from fluxa_django.observe import QueryLog

log = logging.getLogger("fluxa_django.redis")

MIN_REDIS_VERSION = (7, 0)
DOWN_PAUSE = 1.0  # seconds cache reads skip a Redis pool whose call timed out
LOCK_POLL = (0.01, 0.1)  # obtain() polls a held lock every 10 ms, backing off to 100 ms

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RedisFeatures:
    version: tuple[int, ...]
    modules: frozenset[str]

    @property
    def has_search(self) -> bool:
        return "search" in self.modules or "ft" in self.modules


def tool_namespace(app_name: str) -> str:
    """The part of the lock and rate-limiter keys that separates applications."""
    return hashlib.sha256(app_name.encode()).hexdigest()[:12]


# -- the measured client -------------------------------------------------------------------


class RedisClient(redis.Redis):
    """A redis-py client whose every command is measured and, bound to a context, logged.

    ``RedisPool`` is one; ``RedisPool.with_context(ctx)`` gives another on the same
    connections. Query log entries: ``source`` ``"redis"``, ``operation`` the lower-case
    command (``"get"``, ``"pipeline"``, ``"multi"``, ``"lock obtain"``, ...), ``query``
    the command and its first argument (usually the key), never the values.
    """

    def __init__(
        self,
        connection_pool: redis.ConnectionPool,
        code: str,
        *,
        raw: redis.Redis,
        app_name: str = "",
        log: QueryLog | None = None,
    ) -> None:
        super().__init__(connection_pool=connection_pool)
        self.code = code
        self.app_name = app_name
        self._fx_raw = raw  # the same connections, nothing measured: what the tools run on
        self._fx_log = log
        self._fx_locker: Locker | None = None

    def __repr__(self) -> str:
        return f"<RedisClient {self.code!r}>"

    def with_context(self, ctx: QueryLog) -> RedisClient:
        """This client on the same connections, reporting every call to ``ctx``'s loggers."""
        return RedisClient(
            self.connection_pool, self.code, raw=self._fx_raw, app_name=self.app_name, log=ctx
        )

    # -- measuring --------------------------------------------------------------------------

    def _fx_timed(
        self,
        operation: str,
        shown: Callable[[], str],
        call: Callable[[], T],
        miss: Callable[[T], bool] | None = None,
    ) -> T:
        sink = metrics.METRICS
        log = self._fx_log
        logging = log is not None and log.logging
        if sink is None and not logging:
            return call()
        started = time.time()
        clock = time.perf_counter()
        try:
            result = call()
        except Exception as exc:
            if sink is not None:
                sink.error("redis", self.code)
            if logging:
                log._log("redis", self.code, operation, shown(), started, exc)  # type: ignore[union-attr]
            raise
        if sink is not None:
            sink.observe("redis", self.code, operation, time.perf_counter() - clock)
        if logging:
            found_miss = miss(result) if miss is not None else False
            log._log("redis", self.code, operation, shown(), started, miss=found_miss)  # type: ignore[union-attr]
        return result

    def execute_command(self, *args: Any, **options: Any) -> Any:
        run = super().execute_command
        log = self._fx_log
        if metrics.METRICS is None and (log is None or not log.logging):
            return run(*args, **options)  # type: ignore[no-untyped-call]
        return self._fx_timed(
            _text(args[0]).lower(),
            lambda: _shown(args),
            lambda: run(*args, **options),  # type: ignore[no-untyped-call]
            _is_none,
        )

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> RedisPipeline:
        """A redis-py pipeline, measured and logged once per ``execute()`` (operation
        ``"multi"`` with ``transaction=True``, else ``"pipeline"``)."""
        return RedisPipeline(self, transaction, shard_hint)

    # -- tools ------------------------------------------------------------------------------

    def get_locker(self) -> Locker:
        """The distributed locks of this pool, in this application's namespace."""
        locker = self._fx_locker
        if locker is None:
            locker = self._fx_locker = Locker(self)
        return locker

    def rate_limiter(self, key: str, limit: int, window: float) -> RateLimiter:
        """A sliding-window limiter: at most ``limit`` hits in any ``window`` seconds."""
        return RateLimiter(self, key, limit, window)

    def incr_with_expire(self, key: str, ttl: float) -> int:
        """``INCR key`` and, when the key has no expiry yet, expire it in ``ttl`` seconds:
        one ``MULTI`` (atomic, one round trip). A fixed-window counter: later calls count
        on without moving the expiry. The key is used as given."""
        ms = _milliseconds("ttl", ttl)

        def run() -> int:
            pipe = self._fx_raw.pipeline(transaction=True)
            pipe.incr(key)
            pipe.pexpire(key, ms, nx=True)
            value, _ = pipe.execute()
            return int(value)

        return self._fx_tool("incr_with_expire", key, run)

    def _fx_tool(
        self,
        operation: str,
        key: str,
        call: Callable[[], T],
        miss: Callable[[T], bool] | None = None,
    ) -> T:
        """A tool's round trip: measured, logged, driver errors as ``PoolError``."""
        try:
            return self._fx_timed(operation, lambda: key, call, miss)
        except (redis.RedisError, OSError) as exc:
            raise PoolError(
                f"redis pool {self.code!r}: {operation} {key!r} failed: {type(exc).__name__}: "
                f"{exc}",
                pool=self.code,
            ) from exc


class RedisPipeline(Pipeline):
    """A redis-py pipeline of a ``RedisClient``: measured and logged once per ``execute()``."""

    def __init__(self, client: RedisClient, transaction: bool, shard_hint: Any) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, transaction, shard_hint)
        self._fx_client = client
        self._fx_multi = transaction

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = self.command_stack
        run = super().execute
        if not stack:
            return run(raise_on_error)
        names = [_text(args[0]).upper() for args, _ in stack]
        shown = " ".join(names[:10]) + (f" ... ({len(names)} commands)" if len(names) > 10 else "")
        operation = "multi" if self._fx_multi or self.explicit_transaction else "pipeline"
        return self._fx_client._fx_timed(operation, lambda: shown, lambda: run(raise_on_error))

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        """A command sent at once (``WATCH`` and the reads after it)."""
        run = super().immediate_execute_command
        return self._fx_client._fx_timed(
            _text(args[0]).lower(),
            lambda: _shown(args),
            lambda: run(*args, **options),  # type: ignore[no-untyped-call]
            _is_none,
        )


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _shown(args: Sequence[Any]) -> str:
    """A command for the logs: its name and first argument (usually the key), never the
    values (``AUTH`` shows nothing)."""
    name = _text(args[0]).upper()
    if len(args) < 2 or name == "AUTH":
        return name
    first = _text(args[1])
    if len(first) > 100:
        first = first[:100] + "..."
    more = len(args) - 2
    return f"{name} {first}" + (f" (+{more} args)" if more else "")


def _is_none(result: Any) -> bool:
    return result is None


def _milliseconds(name: str, seconds: float) -> int:
    """``seconds`` as whole milliseconds, at least 1; ``ValueError`` naming ``name`` else."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {seconds!r}")
    ms = round(seconds * 1000)
    if not ms >= 1:  # also refuses NaN
        raise ValueError(f"{name} must be at least 0.001 s, got {seconds!r}")
    return ms


# -- locks ---------------------------------------------------------------------------------

# KEYS[1]: the lock; ARGV[1]: the owner's token. Only the owner deletes it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
# ARGV[2]: the new time to live, ms (set, not added). Only the owner extends it.
_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# The owner's remaining ms; 0 when the lock is not (or no longer) held with this token.
_TTL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    local ms = redis.call('PTTL', KEYS[1])
    if ms > 0 then return ms end
end
return 0
"""


class Locker:
    """Distributed locks on one Redis pool (``RedisClient.get_locker()``).

    A lock is the key ``fx:lock:<app>:<key>`` holding a random token, with a time to
    live: it is released when the owner releases it or when the ttl runs out (an owner
    that died never blocks the key for longer). Only the token's owner can release or
    refresh it. One server: a failover to a replica that had not received the lock
    yet may let a second owner in (Redis replication is asynchronous).
    """

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        raw = client._fx_raw
        self._release = raw.register_script(_RELEASE)
        self._refresh = raw.register_script(_REFRESH)
        self._ttl = raw.register_script(_TTL)
        self.prefix = f"fx:lock:{tool_namespace(client.app_name)}:"

    def __repr__(self) -> str:
        return f"<Locker {self._client.code!r} {self.prefix!r}>"

    def key(self, key: str) -> str:
        """The Redis key of the lock ``key``."""
        return self.prefix + key

    def obtain(self, key: str, ttl: float, wait_timeout: float = 0.0) -> Lock | None:
        """Take the lock ``key`` for ``ttl`` seconds; ``None`` when another owner holds it.

        ``wait_timeout`` (seconds, default 0: one attempt) is how long to wait for the
        holder to let go: the key is tried again every 10 ms, backing off to every
        100 ms, until then. ``PoolError`` when Redis fails.
        """
        ms = _milliseconds("ttl", ttl)
        if isinstance(wait_timeout, bool) or not isinstance(wait_timeout, int | float):
            raise TypeError(f"wait_timeout must be a number of seconds, got {wait_timeout!r}")
        if not wait_timeout >= 0:
            raise ValueError(f"wait_timeout must be >= 0, got {wait_timeout!r}")
        name = self.key(key)
        token = secrets.token_hex(16).encode()
        raw = self._client._fx_raw
        deadline = time.monotonic() + wait_timeout
        pause = LOCK_POLL[0]
        while True:
            taken = self._client._fx_tool(
                "lock obtain",
                name,
                lambda: bool(raw.set(name, token, px=ms, nx=True)),
                lambda ok: not ok,
            )
            if taken:
                return Lock(self, key, name, token)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(left, pause * (0.5 + secrets.randbelow(500) / 1000)))
            pause = min(pause * 2, LOCK_POLL[1])


class Lock:
    """A held lock (``Locker.obtain``). ``with lock:`` releases it at the end of the block."""

    __slots__ = ("_locker", "_lost", "key", "name", "token")

    def __init__(self, locker: Locker, name: str, key: str, token: bytes) -> None:
        self._locker = locker
        self.name = name  # the caller's key
        self.key = key  # the Redis key
        self.token = token
        self._lost = False  # released, or found lost by refresh(): never held again

    def __repr__(self) -> str:
        return f"<Lock {self.name!r}{' released' if self._lost else ''}>"

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> bool:
        """Let the lock go; True when it was still held. Idempotent: a released or
        expired lock (maybe taken by another owner since) is left alone."""
        if self._lost:
            return False
        self._lost = True
        locker = self._locker
        done = locker._client._fx_tool(
            "lock release",
            self.key,
            lambda: int(locker._release(keys=[self.key], args=[self.token])),
            lambda n: n == 0,
        )
        return done == 1

    def refresh(self, ttl: float) -> bool:
        """Set the remaining time to ``ttl`` seconds (not added); False when the lock was
        lost (expired, maybe taken by another owner): it is then lost for good."""
        ms = _milliseconds("ttl", ttl)
        if self._lost:
            return False
        locker = self._locker
        done = locker._client._fx_tool(
            "lock refresh",
            self.key,
            lambda: int(locker._refresh(keys=[self.key], args=[self.token, ms])),
            lambda n: n == 0,
        )
        if done != 1:
            self._lost = True
        return done == 1

    def ttl(self) -> float:
        """Seconds the lock is still held for; 0.0 when it is not held any more."""
        if self._lost:
            return 0.0
        locker = self._locker
        ms = locker._client._fx_tool(
            "lock ttl",
            self.key,
            lambda: int(locker._ttl(keys=[self.key], args=[self.token])),
            lambda n: n == 0,
        )
        return ms / 1000.0


# -- rate limiter --------------------------------------------------------------------------

# KEYS[1]: the limiter's sorted set (member per hit, score = its time in µs).
# ARGV: limit, window µs, cost, a unique member prefix. Timed by the server's clock.
# Returns {allowed 0/1, remaining, µs until `cost` more hits fit}.
_SLIDING_WINDOW = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used + cost <= limit then
    for i = 1, cost do
        redis.call('ZADD', KEYS[1], now, ARGV[4] .. i)
    end
    redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
    return {1, limit - used - cost, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], used + cost - limit - 1, used + cost - limit - 1, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if wait < 1 then wait = 1 end
return {0, limit - used, wait}
"""
_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return redis.call('ZCOUNT', KEYS[1], '(' .. (now - tonumber(ARGV[1])), '+inf')
"""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """What ``RateLimiter.hit`` decided."""

    allowed: bool
    remaining: int  # hits still allowed in the window after this one
    retry_after: float  # seconds until the refused hit would fit (0.0 when allowed)


class RateLimiter:
    """At most ``limit`` hits in any ``window`` seconds (a sliding window, not buckets).

    Each allowed hit is a member of the sorted set ``fx:rate:<app>:<key>`` scored with
    the Redis server's time; one Lua script drops the hits older than the window,
    counts and adds: atomic, so concurrent processes never exceed the limit together,
    and no client clock is involved. A refused hit is not counted. Memory: one member
    per allowed hit in the window; the key expires one window after the last hit.
    """

    def __init__(self, client: RedisClient, key: str, limit: int, window: float) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        self.window_us = _milliseconds("window", window) * 1000
        self._client = client
        self.name = key
        self.key = f"fx:rate:{tool_namespace(client.app_name)}:{key}"
        self.limit = limit
        self.window = window
        raw = client._fx_raw
        self._hit = raw.register_script(_SLIDING_WINDOW)
        self._count = raw.register_script(_COUNT)

    def __repr__(self) -> str:
        return f"<RateLimiter {self.name!r} {self.limit}/{self.window}s>"

    def hit(self, cost: int = 1) -> RateLimit:
        """Count ``cost`` hits now if they fit in the window; say whether they did."""
        if isinstance(cost, bool) or not isinstance(cost, int) or not 1 <= cost <= self.limit:
            raise ValueError(f"cost must be an int in 1..{self.limit}, got {cost!r}")
        member = secrets.token_hex(8) + ":"
        args: list[Any] = [self.limit, self.window_us, cost, member]
        allowed, remaining, wait_us = self._client._fx_tool(
            "rate limit",
            self.key,
            lambda: self._hit(keys=[self.key], args=args),
            lambda answer: not answer[0],
        )
        return RateLimit(bool(allowed), int(remaining), int(wait_us) / 1_000_000)

    def allow(self, cost: int = 1) -> bool:
        """``hit(cost).allowed``."""
        return self.hit(cost).allowed

    def used(self) -> int:
        """Hits counted in the window now."""
        count = self._client._fx_tool(
            "rate count", self.key, lambda: self._count(keys=[self.key], args=[self.window_us])
        )
        return int(count)

    def reset(self) -> None:
        """Forget every hit."""
        raw = self._client._fx_raw
        self._client._fx_tool("rate reset", self.key, lambda: raw.delete(self.key))


# -- the pool ------------------------------------------------------------------------------


class RedisPool(RedisClient):
    """One Redis database (direct or through Sentinel): ``engine.redis(code)``.

    It is the measured redis-py client of the database (``RedisClient``); ``client``
    is the plain redis-py client of the same connections (the ORM's own calls).
    """

    client: redis.Redis  # type: ignore[assignment]  # redis-py's client() method is shadowed

    def __init__(
        self, code: str, address: str, db: int, options: RedisOptions, app_name: str = ""
    ) -> None:
        self.code = code
        self.address = address
        self.db = db
        self.options = options
        self.features = RedisFeatures((0,), frozenset())
        self.breaker = Breaker("redis", code, pause=DOWN_PAUSE)  # see failed()
        # The identity of the server's data, read on every new connection (see
        # _on_connect); ``generation`` is incremented whenever it changes.
        self.epoch = ""
        self.generation = 0
        self._epoch_lock = threading.Lock()
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()  # every one made
        self._watcher: _SwitchWatcher | None = None
        common: dict[str, Any] = {
            "db": db,
            "username": options.user or None,
            "password": options.password or None,
            "socket_connect_timeout": options.connect_timeout,
            "socket_timeout": options.read_timeout,
            "health_check_interval": 30,
            # One quick retry of a connection that broke (a restarted server, a master
            # that a failover turned into a replica), none after a timeout: a hung
            # server costs a call one timeout, not two.
            "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            # every new connection reads the server's identity (see ``epoch``)
            "redis_connect_func": self._on_connect,
        }
        self.sentinel_manager: Sentinel | None = None  # (``sentinel()`` is a redis-py command)
        if options.sentinels:
            if not options.master:
                raise PoolError(
                    f"redis pool {code!r}: sentinel mode needs a master name", pool=code
                )
            nodes = [_sentinel_node(code, s) for s in options.sentinels]
            sentinel_options = dict(options.sentinel_options)
            # asking the sentinels is bounded like every other call of the pool
            sentinel_options.setdefault(
                "sentinel_kwargs",
                {
                    "socket_connect_timeout": options.connect_timeout,
                    "socket_timeout": options.read_timeout,
                },
            )
            self.sentinel_manager = Sentinel(nodes, **sentinel_options)  # type: ignore[no-untyped-call]
            raw: redis.Redis = self.sentinel_manager.master_for(  # type: ignore[no-untyped-call]
                options.master, connection_pool_class=_SentinelPool, **common
            )
            self.describe = f"sentinel {options.master}/{db}"
        else:
            host, port = parse_redis_address(address)
            if port is None:
                connections = _DirectPool(
                    connection_class=redis.UnixDomainSocketConnection, path=host, **common
                )
            else:
                connections = _DirectPool(host=host, port=port, **common)
            raw = redis.Redis.from_pool(connections)
            self.describe = f"{address}/{db}"
        raw.connection_pool.owner = self  # type: ignore[attr-defined]
        self.client = raw  # owns the connections: close() closes them
        super().__init__(raw.connection_pool, code, raw=raw, app_name=app_name)
        if self.sentinel_manager is not None:
            self._watcher = _SwitchWatcher(self, nodes, options.master)
            self._watcher.start()
            reset_in_child(self._forked)

    def __repr__(self) -> str:
        return f"<RedisPool {self.code!r} {self.describe}>"

    def _on_connect(self, connection: Any) -> None:
        """Every new connection reads the server's ``run_id`` and ``master_replid``.

        ``epoch`` is a digest of both. The run id is new at every start of the server
        (the only way to load an older RDB snapshot); the replication id is new at
        every promotion of a replica (a failover, and a failback to a master that
        was never restarted, whose run id is the same as before). Cache keys include
        the epoch, so entries that an older server state brings back (a snapshot, a
        lagging replica, a failback) are never read.
        """
        connection.on_connect()
        connection.send_command("INFO", "server", "replication")
        info = connection.read_response()
        text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
        run_id = re.search(r"^run_id:(\w+)", text, re.MULTILINE)
        replid = re.search(r"^master_replid:(\w+)", text, re.MULTILINE)
        identity = f"{run_id.group(1) if run_id else ''}:{replid.group(1) if replid else ''}"
        epoch = hashlib.sha256(identity.encode()).hexdigest()[:32]
        connection.fx_epoch = epoch
        with self._epoch_lock:
            self._connections.add(connection)
            if epoch != self.epoch:
                self.epoch = epoch
                self.generation += 1

    # -- Sentinel ---------------------------------------------------------------

    def _forked(self) -> None:
        watcher = self._watcher
        if watcher is not None:  # the child has no watcher threads: start its own
            self._watcher = _SwitchWatcher(self, watcher.nodes, watcher.master)
            self._watcher.start()

    def follow(self, address: tuple[str, int], announced_by: tuple[str, int]) -> None:
        """Move every connection to the master ``address`` that the sentinel at
        ``announced_by`` switched to (``+switch-master``).

        Without this the pool would keep its connections to the old master until the
        sentinels turn it into a replica (they wait about 10 s before they do) and
        close its clients: meanwhile other processes, connecting anew, already use the
        new master, and this process's writes would not invalidate what they cache
        there. The announcing sentinel is asked first from now on; idle connections
        to another server are closed, and those in use are shut down under their
        command, which redis-py retries once on a new connection (the invalidation
        listener subscribes again on the new master and empties the local tier).
        """
        manager = self.sentinel_manager
        if manager is None:
            return
        nodes = manager.sentinels
        for i, node in enumerate(list(nodes)):
            kwargs = node.connection_pool.connection_kwargs
            if (kwargs.get("host"), kwargs.get("port")) == announced_by and i:
                nodes[0], nodes[i] = nodes[i], nodes[0]
                break
        with contextlib.suppress(redis.RedisError, OSError):
            self.connection_pool.get_master_address()  # type: ignore[attr-defined]
        with self._epoch_lock:
            connections = list(self._connections)
        for connection in connections:
            if (connection.host, int(connection.port)) != address:
                sock = getattr(connection, "_sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    # -- a server that just hung ----------------------------------------------

    def failed(self, exc: BaseException) -> None:
        """Note a failed call. A timeout (a hung server) opens ``breaker`` for
        ``DOWN_PAUSE`` s: cache reads skip Redis meanwhile (they go to MySQL at once)
        instead of paying the timeout on every call, then one call tries again. A
        refused or reset connection fails at once and opens nothing. A flush always
        tries (it is refused, bounded by the timeouts, when Redis does not answer)."""
        if isinstance(exc, redis.TimeoutError | TimeoutError):
            self.breaker.open(type(exc).__name__)

    def connect(self) -> None:
        try:
            info = self.client.info("server")
            modules = self.client.execute_command("MODULE", "LIST")  # type: ignore[no-untyped-call]
        except redis.RedisError as exc:
            raise PoolError(
                f"redis pool {self.code!r} ({self.describe}): cannot connect: {exc}", pool=self.code
            ) from None
        version = tuple(
            int(p) for p in str(info.get("redis_version", "0")).split(".") if p.isdigit()
        )
        names = set()
        for module in modules or []:
            entry = (
                module
                if isinstance(module, dict)
                else dict(zip(module[::2], module[1::2], strict=False))
            )
            name = entry.get(b"name", entry.get("name", b""))
            names.add(name.decode() if isinstance(name, bytes) else str(name))
        self.features = RedisFeatures(version, frozenset(n.lower() for n in names))
        if version < MIN_REDIS_VERSION:
            shown = ".".join(map(str, version))
            raise PoolError(
                f"redis pool {self.code!r} version {shown} is not supported, minimum required is 7.0",
                pool=self.code,
            )

    def close(self) -> None:
        """Close every connection of the pool (and those to the sentinels)."""
        client = self.__dict__.get("client")  # None: __del__ of a pool whose __init__ failed
        if client is not None:
            client.close()
        watcher = self.__dict__.get("_watcher")
        if watcher is not None:
            watcher.stop()
        manager = self.__dict__.get("sentinel_manager")
        if manager is not None:
            manager.close()


class _SwitchWatcher:
    """Listens to the ``+switch-master`` announcements of every sentinel of a pool
    (one thread and one connection per sentinel) and makes the pool follow them."""

    def __init__(self, pool: RedisPool, nodes: list[tuple[str, int]], master: str) -> None:
        self._pool = weakref.ref(pool)
        self.code = pool.code
        self.nodes = nodes
        self.master = master
        self._kwargs = dict(pool.sentinel_manager.sentinel_kwargs)  # type: ignore[union-attr]
        self._stop = threading.Event()

    def start(self) -> None:
        for node in self.nodes:
            thread = threading.Thread(
                target=self._run,
                args=(node,),
                name=f"fluxa-sentinel-{self.code}-{node[1]}",
                daemon=True,
            )
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, node: tuple[str, int]) -> None:
        delay = 0.1
        while not self._stop.is_set():
            client = redis.Redis(host=node[0], port=node[1], **self._kwargs)
            pubsub = client.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe("+switch-master")
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message.get("type") == "message":
                        self._announced(node, message["data"])
                        delay = 0.1
            except (redis.RedisError, OSError):
                pass  # the sentinel is away: try it again a little later
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()
                    client.close()
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, 5.0)

    def _announced(self, node: tuple[str, int], data: Any) -> None:
        """``<master name> <old ip> <old port> <new ip> <new port>``."""
        parts = _text(data).split()
        if len(parts) != 5 or parts[0] != self.master or not parts[4].isdigit():
            return
        pool = self._pool()
        if pool is None:
            self._stop.set()
            return
        address = (parts[3], int(parts[4]))
        log.info(
            "fluxa: redis pool %r: sentinel %s:%d announced master %s:%d; following it",
            self.code,
            node[0],
            node[1],
            *address,
        )
        pool.follow(address, node)


def quick_command(client: redis.Redis, *args: Any) -> Any:
    """One command and its raw reply on a pooled connection of ``client``, without
    ``execute_command``'s per-call machinery (its retry object, response callbacks
    and option handling): the hot reads (the row cache's ``GET``/``MGET``, Redis
    Search) call this. The same rules as the pool's ``retry`` setting: a connection
    that broke is dropped and the command sent once more on a new one, a timeout is
    not retried; an error reply leaves the connection in the pool. For commands
    without a response callback (the reply is what the server sent)."""
    pool = client.connection_pool
    for attempt in (0, 1):
        conn: Any = pool.get_connection()
        try:
            conn.send_command(*args)
            return conn.read_response()
        except redis.ResponseError:
            raise  # the whole reply was read: the connection is fine
        except redis.ConnectionError:
            conn.disconnect()
            if attempt:
                raise
        except BaseException:  # a timeout, or interrupted mid-reply: never reused
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
    raise AssertionError("unreachable")  # (the loop returns or raises)


class _DirectPool(redis.ConnectionPool):
    """The connections of a direct pool (see ``_current``)."""

    owner: RedisPool | None = None

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        return _current(self, self.owner, super().get_connection(*args, **kwargs))


class _SentinelPool(SentinelConnectionPool):
    """The connections of a Sentinel pool (see ``_current``)."""

    owner: RedisPool | None = None

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        return _current(self, self.owner, super().get_connection(*args, **kwargs))


def _current(connections: redis.ConnectionPool, owner: RedisPool | None, connection: Any) -> Any:
    """``connection``, connected again first when it was made to another server state than
    the pool's current ``epoch``.

    The pool's keys are built under ``epoch``, the identity of the server its latest new
    connection reached. During a failover the connections may reach two servers (the
    old master keeps answering until the sentinels turn it into a replica), so an idle
    connection may belong to another server than the one the keys are built for: it
    reconnects (to the master the sentinels name now) before carrying a command. A
    caller that saw ``generation`` change meanwhile (that reconnection, or another one)
    starts again under the new keys; one that did not has sent its command to the
    server its keys were built for.
    """
    if owner is not None and getattr(connection, "fx_epoch", owner.epoch) != owner.epoch:
        try:
            connection.disconnect()
            connection.connect()
        except BaseException:
            connections.release(connection)
            raise
    return connection


def _sentinel_node(pool: str, address: str) -> tuple[str, int]:
    """``host:port`` of a sentinel; an empty host (``:26379``) means loopback."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise PoolError(
            f"redis pool {pool!r}: sentinel address {address!r} must be host:port", pool=pool
        )
    return host or "127.0.0.1", int(port)
