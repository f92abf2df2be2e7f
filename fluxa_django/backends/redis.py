"""Redis pool: the redis-py client plus a lock helper and a rate-limit counter.

``validate()`` reads the server version and loaded modules once; the pool
answers ``has_search`` from that, without further round trips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.lock import Lock
from redis.retry import Retry
from redis.sentinel import Sentinel

from fluxa_django.backends.breaker import Breaker
from fluxa_django.config import RedisOptions, parse_redis_address
from fluxa_django.errors import PoolError

MIN_REDIS_VERSION = (7, 0)
DOWN_PAUSE = 1.0  # seconds cache reads skip a Redis pool whose call timed out


@dataclass(frozen=True, slots=True)
class RedisFeatures:
    version: tuple[int, ...]
    modules: frozenset[str]

    @property
    def has_search(self) -> bool:
        return "search" in self.modules or "ft" in self.modules


class Locker:
    """Distributed locks on one Redis pool (redis-py ``Lock`` semantics)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def obtain(self, key: str, ttl: float, wait_timeout: float = 0.0) -> Lock | None:
        """Take the lock ``key`` for ``ttl`` seconds, waiting up to ``wait_timeout``.

        Returns the held ``Lock`` (``release()``, ``extend()``) or ``None``.
        """
        lock = self._client.lock(f"lock:{key}", timeout=ttl, blocking_timeout=wait_timeout or None)
        return lock if lock.acquire(blocking=wait_timeout > 0) else None


class RedisPool:
    """One Redis database (direct or through Sentinel)."""

    def __init__(self, code: str, address: str, db: int, options: RedisOptions) -> None:
        self.code = code
        self.address = address
        self.db = db
        self.options = options
        self.features = RedisFeatures((0,), frozenset())
        self.breaker = Breaker("redis", code, pause=DOWN_PAUSE)  # see failed()
        # The run id of the server, read on every new connection. It changes with every
        # restart (the only way to load an RDB snapshot) and failover, so cache keys that
        # include it are never read from data an older server state brought back.
        self.epoch = ""
        self.generation = 0  # incremented whenever ``epoch`` changes
        common: dict[str, Any] = {
            "db": db,
            "username": options.user or None,
            "password": options.password or None,
            "socket_connect_timeout": options.connect_timeout,
            "socket_timeout": options.read_timeout,
            "health_check_interval": 30,
            # One quick retry of a connection that broke (a restarted server), none
            # after a timeout: a hung server costs a call one timeout, not two.
            "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            # every new connection reads the server's run id (see ``epoch``)
            "redis_connect_func": self._on_connect,
        }
        if options.sentinels:
            if not options.master:
                raise PoolError(
                    f"redis pool {code!r}: sentinel mode needs a master name", pool=code
                )
            nodes = [_sentinel_node(code, s) for s in options.sentinels]
            sentinel = Sentinel(nodes, **dict(options.sentinel_options))  # type: ignore[no-untyped-call]
            self.client: redis.Redis = sentinel.master_for(options.master, **common)  # type: ignore[no-untyped-call]
            self.describe = f"sentinel {options.master}/{db}"
        else:
            host, port = parse_redis_address(address)
            if port is None:
                self.client = redis.Redis(unix_socket_path=host, **common)
            else:
                self.client = redis.Redis(host=host, port=port, **common)
            self.describe = f"{address}/{db}"

    def __repr__(self) -> str:
        return f"<RedisPool {self.code!r} {self.describe}>"

    def _on_connect(self, connection: Any) -> None:
        connection.on_connect()
        connection.send_command("INFO", "server")
        info = connection.read_response()
        text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
        match = re.search(r"^run_id:([0-9a-f]+)", text, re.MULTILINE)
        run_id = match.group(1) if match else ""
        if run_id != self.epoch:
            self.epoch = run_id
            self.generation += 1

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
        self.client.close()

    def get_locker(self) -> Locker:
        return Locker(self.client)

    def incr_with_expire(self, key: str, ttl: int) -> int:
        """``INCR key`` and set its expiry on first use, in one round trip (rate limits)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, ttl, nx=True)
        value, _ = pipe.execute()
        return int(value)


def _sentinel_node(pool: str, address: str) -> tuple[str, int]:
    """``host:port`` of a sentinel; an empty host (``:26379``) means loopback."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise PoolError(
            f"redis pool {pool!r}: sentinel address {address!r} must be host:port", pool=pool
        )
    return host or "127.0.0.1", int(port)
