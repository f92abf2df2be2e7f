"""Cross-process invalidation of the local tier, over Redis pub/sub.

After a flush commits, the writer evicts the rows from its own local caches
and publishes ``(local pool, key prefix, ids)`` on the channel
``fluxa:inv:<db>`` of the entity's Redis pool; a listener thread in every
process evicts them on receipt. Pub/sub loses messages while a subscriber is
disconnected, so the local tier is served only while the subscription is up:
on a disconnect the listener marks itself unhealthy and, once subscribed
again, clears every local cache it guards before serving resumes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgpack
import redis

from fluxa_django._fork import reset_in_child
from fluxa_django.runtime import namespace

if TYPE_CHECKING:
    from fluxa_django.backends.localcache import LocalCache
    from fluxa_django.backends.redis import RedisPool

log = logging.getLogger("fluxa_django.cache")

# (local cache pool, key prefix, ids or None for "every row of the prefix")
Invalidation = tuple[str, str, list[int] | None]


class InvalidationBus:
    """The invalidation channel of one Redis pool, as seen by one process."""

    def __init__(
        self, redis_pool: RedisPool, locals_: dict[str, LocalCache], app_name: str = ""
    ) -> None:
        self.redis_pool = redis_pool
        self.channel = namespace.channel(redis_pool.db, app_name)
        self._locals = locals_
        self.healthy = False
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._start_lock = threading.Lock()
        self.sender = secrets.token_bytes(8)  # messages of this process are skipped
        self.received = 0
        self.subscriptions = 0  # times the listener (re)subscribed
        reset_in_child(self._forked)

    def __repr__(self) -> str:
        return (
            f"<InvalidationBus {self.channel!r} on {self.redis_pool.code!r} healthy={self.healthy}>"
        )

    # -- lifecycle -------------------------------------------------------------------

    def _forked(self) -> None:
        # A forked child inherits no listener thread, and rows nobody invalidates.
        self.healthy = False
        self._thread = None
        self._start_lock = threading.Lock()
        self.sender = secrets.token_bytes(8)  # the child is another process
        for cache in self._locals.values():
            cache.clear()

    def ensure_started(self, wait: float = 1.0) -> bool:
        """Start the listener (once per process; waits for the first subscription); True when serving.

        A listener thread that died (it never should: every error inside restarts
        its subscription) is started again.
        """
        thread = self._thread
        if thread is not None and (thread.is_alive() or self._stop.is_set()):
            return self.healthy
        with self._start_lock:
            thread = self._thread
            if thread is None or not (thread.is_alive() or self._stop.is_set()):
                self._pid = os.getpid()
                self._stop = threading.Event()
                self._ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, name=f"fluxa-invalidation-{self.redis_pool.code}", daemon=True
                )
                self._thread.start()
        self._ready.wait(wait)
        return self.healthy

    def stop(self) -> None:
        self._stop.set()
        self.healthy = False
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout=3)

    def _run(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            pubsub = self.redis_pool.client.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    kind = message.get("type")
                    if kind == "subscribe":
                        # Anything published while we were away is lost: start empty.
                        for cache in self._locals.values():
                            cache.clear()
                        self.healthy = True
                        self.subscriptions += 1
                        self._ready.set()
                        delay = 0.05
                    elif kind == "message":
                        self._apply(message["data"])
            except (redis.RedisError, OSError) as exc:
                if self.healthy:
                    log.warning(
                        "fluxa: local cache invalidation on redis pool %r lost its connection "
                        "(%s); local cache tier off until it is back",
                        self.redis_pool.code,
                        type(exc).__name__,
                    )
            except Exception:
                # Never expected; the listener must not die of it: subscribe again.
                log.exception(
                    "fluxa: local cache invalidation on redis pool %r failed; local cache "
                    "tier off until it has subscribed again",
                    self.redis_pool.code,
                )
            finally:
                self.healthy = False
                for cache in self._locals.values():
                    cache.clear()
                self._ready.set()  # callers waiting for the first subscription stop waiting
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()
            if not self._stop.wait(delay):
                delay = min(delay * 2, 1.0)

    def _apply(self, data: Any) -> None:
        """Evict what a message names; anything malformed in it is logged and ignored."""
        try:
            message = msgpack.unpackb(data, raw=False)
            sender, items, *rest = message
            block_ms = rest[0] if rest else 0
            if not isinstance(items, list) or len(rest) > 1 or type(block_ms) is not int:
                raise TypeError("not [sender, items] or [sender, items, block ms]")
            block_ms = min(max(block_ms, 0), 600_000)
        except Exception:
            self._malformed("not [sender, items(, block ms)]")
            return
        self.received += 1
        if sender == self.sender:
            return  # this process evicted at commit time already
        valid: list[Invalidation] = []
        for item in items:
            if (
                isinstance(item, list)
                and len(item) == 3
                and isinstance(item[0], str)
                and isinstance(item[1], str)
                and (
                    item[2] is None
                    or (isinstance(item[2], list) and all(type(i) is int for i in item[2]))
                )
            ):
                valid.append((item[0], item[1], item[2]))
            else:
                self._malformed("an item is not [local pool, key prefix, ids]")
        self.evict_here(valid, block_ms)

    def _malformed(self, why: str) -> None:
        log.warning(
            "fluxa: ignoring a malformed invalidation message on %s (%s)", self.channel, why
        )

    # -- publishing --------------------------------------------------------------------

    def payload(self, items: Iterable[Invalidation], block_ms: int = 0) -> bytes:
        """``[sender, items]``: evict (a commit); with ``block_ms``, ``[sender, items,
        block_ms]``: evict and refuse fills of those rows until the commit's message or
        ``block_ms`` (a flush is about to write them)."""
        message: list[Any] = [self.sender, list(items)]
        if block_ms:
            message.append(block_ms)
        data: bytes = msgpack.packb(message, use_bin_type=True)
        return data

    def evict_here(self, items: Iterable[Invalidation], block_ms: int = 0) -> None:
        """Evict in this process's caches now (the writer does not wait for its own message)."""
        for code, prefix, ids in items:
            cache = self._locals.get(code)
            if cache is None:
                continue
            if ids is None:
                cache.invalidate_prefix(prefix)
            elif block_ms:
                cache.block([(prefix, i) for i in ids], block_ms / 1000)
            else:
                cache.invalidate([(prefix, i) for i in ids])
