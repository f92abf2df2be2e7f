"""Prometheus metrics (optional extra ``fluxa-django[metrics]``).

Turned on by the option ``metrics`` (``FLUXA["OPTIONS"]["metrics"] = True`` or
``registry.set_option("metrics", True)``); off, the hot paths pay one ``None``
check. Metrics are registered once per process in ``prometheus_client``'s
default registry (or the one given to ``enable``):

- ``fluxa_queries_seconds{source, pool, operation}`` histogram: the MySQL
  round trips of reads and flushes and the Redis round trips of the cache
  tiers (``source`` is ``mysql`` or ``redis``; id reservations and
  ``clear_redis_cache`` are not timed);
- ``fluxa_query_errors_total{source, pool}``: round trips that raised;
- ``fluxa_cache_requests_total{entity, tier, result}``: rows asked of the
  ``local`` and ``redis`` tiers, ``result`` ``hit`` or ``miss``;
- ``fluxa_local_cache_keys{pool}``: keys held by each local cache pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fluxa_django.errors import ConfigError

if TYPE_CHECKING:
    from fluxa_django.engine import Engine


class Metrics:
    """The metric objects; one instance per process (``METRICS``)."""

    def __init__(self, registry: Any = None) -> None:
        try:
            import prometheus_client as prom
        except ImportError:
            raise ConfigError(
                "option 'metrics' needs prometheus_client: pip install 'fluxa-django[metrics]'"
            ) from None
        kwargs: dict[str, Any] = {} if registry is None else {"registry": registry}
        self.queries = prom.Histogram(
            "fluxa_queries_seconds",
            "MySQL and Redis round trips of fluxa_django",
            ["source", "pool", "operation"],
            **kwargs,
        )
        self.errors = prom.Counter(
            "fluxa_query_errors",
            "MySQL and Redis round trips of fluxa_django that failed",
            ["source", "pool"],
            **kwargs,
        )
        self.cache = prom.Counter(
            "fluxa_cache_requests",
            "Rows asked of a cache tier, by result",
            ["entity", "tier", "result"],
            **kwargs,
        )
        self.local_keys = prom.Gauge(
            "fluxa_local_cache_keys", "Keys held by a local cache pool", ["pool"], **kwargs
        )

    def observe(self, source: str, pool: str, operation: str, seconds: float) -> None:
        self.queries.labels(source, pool, operation).observe(seconds)

    def error(self, source: str, pool: str) -> None:
        self.errors.labels(source, pool).inc()

    def requests(self, entity: str, tier: str, hits: int, misses: int) -> None:
        if hits:
            self.cache.labels(entity, tier, "hit").inc(hits)
        if misses:
            self.cache.labels(entity, tier, "miss").inc(misses)

    def track(self, engine: Engine) -> None:
        """Report the local cache sizes of ``engine`` at every scrape."""
        for code in engine.local_cache_pools:
            cache = engine.local_cache(code)
            self.local_keys.labels(code).set_function(cache.usage)


METRICS: Metrics | None = None


def enable(engine: Engine, registry: Any = None) -> Metrics:
    """Turn metrics on for this process (idempotent) and track ``engine``'s local caches."""
    global METRICS
    if METRICS is None:
        METRICS = Metrics(registry)
    METRICS.track(engine)
    return METRICS
