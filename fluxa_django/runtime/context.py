"""``Context``: one unit of work (usually one request).

It owns the context cache (entities read in this context, for ``ttl`` seconds),
the set of tracked entities the next ``flush()`` writes, metadata and query
loggers. A context is not thread-safe: use one per request/thread (``clone()``).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fluxa_django.runtime.state import EngineState, state_of

if TYPE_CHECKING:
    from fluxa_django.engine import Engine
    from fluxa_django.runtime.entity import EntityBase

QueryLogger = Callable[[dict[str, Any]], None]
_MISSING = object()

# The context of the unit of work being handled (a request: the middleware sets it).
_current: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "fluxa_context", default=None
)


def current_context() -> Context:
    """The Context of the request being handled (for code without the request)."""
    ctx = _current.get()
    if ctx is None:
        raise LookupError(
            "no fluxa Context: not inside a request handled by FluxaContextMiddleware"
        )
    return ctx


def activate(ctx: Context) -> contextvars.Token[Context | None]:
    """Make ``ctx`` what ``current_context()`` returns; give the token to ``deactivate``."""
    return _current.set(ctx)


def deactivate(token: contextvars.Token[Context | None]) -> None:
    _current.reset(token)


class Context:
    """A unit of work bound to an ``Engine``: context cache, tracked entities, loggers."""

    __slots__ = (
        "_cache",
        "_cache_enabled",
        "_deadline",
        "_loggers",
        "_meta",
        "_runtime",
        "_tracked",
        "_ttl",
        "engine",
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._runtime: EngineState = state_of(engine)
        # One dict per entity type: id -> entity (None = known missing). The whole
        # cache expires at ``_deadline``, so no entry outlives the TTL.
        self._cache: dict[str, dict[int, Any]] = {}
        self._deadline = 0.0
        self._cache_enabled = True
        self._ttl = 1.0
        self._tracked: dict[int, EntityBase] = {}
        self._meta: dict[str, Any] = {}
        self._loggers: list[tuple[QueryLogger, bool, bool, bool]] = []

    def __repr__(self) -> str:
        return f"<Context tracked={len(self._tracked)} cached={len(self._cache)}>"

    # -- configuration -----------------------------------------------------------

    def set_context_cache_ttl(self, seconds: float) -> None:
        """How long an entity read in this context is served from memory (default 1 s)."""
        if seconds < 0:
            raise ValueError("context cache TTL must be >= 0")
        self._ttl = float(seconds)
        self._release()  # entries cached under the old TTL must not outlive the new one

    def disable_context_cache(self) -> None:
        self._cache_enabled = False
        self._cache.clear()

    def set_meta_data(self, key: str, value: Any) -> None:
        self._meta[key] = value

    @property
    def meta_data(self) -> dict[str, Any]:
        return dict(self._meta)

    def clone(self) -> Context:
        """A new context with the same engine, settings, metadata and loggers (no entities)."""
        other = Context(self.engine)
        other._cache_enabled = self._cache_enabled
        other._ttl = self._ttl
        other._meta = dict(self._meta)
        other._loggers = list(self._loggers)
        return other

    # -- query logging -----------------------------------------------------------

    def register_query_logger(
        self, handler: QueryLogger, mysql: bool = True, redis: bool = True, local: bool = True
    ) -> None:
        """Call ``handler(entry)`` after every query of the selected kinds.

        ``entry`` has ``source`` ("mysql"/"redis"/"local"), ``pool``, ``operation``,
        ``query``, ``microseconds``, ``started``, ``finished``, ``error``, ``miss``
        and ``meta``.
        """
        self._loggers.append((handler, mysql, redis, local))

    def enable_query_debug(self) -> None:
        """Log every query to the ``fluxa_django.queries`` logger at DEBUG level."""
        import logging

        logger = logging.getLogger("fluxa_django.queries")

        def debug(entry: dict[str, Any]) -> None:
            logger.debug(
                "[%s:%s] %s %s (%d µs)%s",
                entry["source"],
                entry["pool"],
                entry["operation"],
                entry["query"],
                entry["microseconds"],
                f" error={entry['error']}" if entry["error"] else "",
            )

        self.register_query_logger(debug)

    @property
    def logging(self) -> bool:
        return bool(self._loggers)

    def _log(
        self,
        source: str,
        pool: str,
        operation: str,
        query: str,
        started: float,
        error: BaseException | None = None,
        miss: bool = False,
    ) -> None:
        finished = time.time()
        entry = {
            "source": source,
            "pool": pool,
            "operation": operation,
            "query": query,
            "microseconds": int((finished - started) * 1_000_000),
            "started": started,
            "finished": finished,
            "error": str(error) if error is not None else None,
            "miss": miss,
            "meta": self._meta,
        }
        index = {"mysql": 1, "redis": 2, "local": 3}.get(source, 1)
        for logger in self._loggers:
            if logger[index]:
                logger[0](entry)

    # -- context cache -------------------------------------------------------------

    def _kind_cache(self, kind: str) -> dict[int, Any] | None:
        """The context cache of one entity type, or ``None`` when caching is off."""
        if not self._cache_enabled:
            return None
        now = time.monotonic()
        if now > self._deadline:
            if self._ttl <= 0:
                return None
            self._cache.clear()
            self._deadline = now + self._ttl
        cache = self._cache.get(kind)
        if cache is None:
            cache = self._cache[kind] = {}
        return cache

    @property
    def tracked(self) -> list[EntityBase]:
        """The entities the next ``flush()`` looks at (new, changed or deleted)."""
        return list(self._tracked.values())

    # -- unit of work ----------------------------------------------------------------

    def _track(self, entity: EntityBase) -> None:
        self._tracked[id(entity)] = entity

    def _untrack(self, entity: EntityBase) -> None:
        self._tracked.pop(id(entity), None)

    def clear_flush(self) -> None:
        """Forget every pending change: new entities are dropped, loaded ones reverted."""
        for entity in self._tracked.values():
            entity._discard()
        self._tracked.clear()

    def _release(self) -> None:
        """Empty the context cache (the context stays usable: reads go to the tiers).

        Entities point at their context and the context cache points at them: a
        context dropped with a full cache is a reference cycle, freed only by the
        garbage collector, late (after a long request, from the oldest generation).
        Whoever owns a context's lifetime (the request middleware) calls this at its
        end, so the entities go as soon as nothing else holds them."""
        self._cache.clear()
        self._deadline = 0.0

    def flush(self) -> None:
        """Write every tracked change: one transaction per MySQL pool."""
        from fluxa_django.runtime.flush import flush

        flush(self)

    def flush_async(self, update_cache: bool = True) -> None:
        """Publish every tracked change to Kafka (``_fluxa_async_sql``) for
        ``manage.py fluxa_consume_async`` to apply; with ``update_cache`` the caches and
        search documents show the changes at once (see ``runtime/async_flush.py``)."""
        from fluxa_django.runtime.async_flush import flush_async

        flush_async(self, update_cache)
