"""The cache-tier cases: ``get_by_id`` served by Redis, by the local cache, by the context cache.

Each case warms its tier untimed, then checks (untimed, with ``bench.probes``) that a
warm call really is served by that tier: 0 MySQL and 1 Redis round trip for a Redis
hit, 0 of both for a local or context hit. A failed check does not stop the run: the
result carries it in ``problems`` (target reported as not met) and the timings show
whatever path fluxa took instead.
"""

from __future__ import annotations

import cProfile
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from cachetools import LRUCache

from bench.case import Case, same_item
from bench.environment import CACHED_TABLE, LOCAL_TABLE, ROWS, TABLE, by_id_sql
from bench.fluxa_types import BenchItem as FluxaItem
from bench.fluxa_types import BenchItemProvider
from bench.models import BenchCachedItem, BenchItem, BenchItemBase, BenchLocalItem
from bench.probes import CacheKeys, check_tier, find_cache_keys, redis_keys, write_stand_ins
from bench.results import CaseResult, Target
from bench.settings import LOCAL_CACHE_LIMIT
from bench.timing import Samples, batched, fastest, per_call
from fluxa_django import Context

CHECKED_IDS = 7  # ids whose entity is compared with the row and the Django object


class _CacheHit(Case):
    """Shared by the three cases: the ids, warming, and the untimed checks."""

    table: ClassVar[str]
    model: ClassVar[type[BenchItemBase]]

    @property
    def provider(self) -> BenchItemProvider:
        return self.env.provider

    def _ids(self) -> list[int]:
        """``cache_ids`` distinct ids spread over the table (7919 is prime to ROWS)."""
        return [(i * 7919) % ROWS + 1 for i in range(min(self.scale.cache_ids, ROWS))]

    @staticmethod
    def _cycle(ids: list[int], count: int) -> list[int]:
        return [ids[i % len(ids)] for i in range(count)]

    def _warm(self, ids: list[int]) -> None:
        """Each id read twice, each time on a fresh context: MySQL, then the cache tier."""
        engine, provider = self.env.engine, self.provider
        for _ in range(2):
            for id_ in ids:
                provider.get_by_id(engine.new_context(), id_)

    def _row(self, id_: int) -> tuple[Any, ...]:
        rows = self.env.execute(by_id_sql(self.table), (id_,))
        return rows[0]

    def _check_items(self, ctx: Context, ids: list[int]) -> list[str]:
        """Entities served from the tier equal the MySQL row and the Django object."""
        problems: list[str] = []
        for id_ in ids[:: max(1, len(ids) // CHECKED_IDS)]:
            item: FluxaItem | None = self.provider.get_by_id(ctx, id_)
            obj = self.model._default_manager.get(pk=id_)
            if item is None or not same_item(item, self._row(id_), obj):
                problems.append(f"get_by_id({id_}) returned {item!r}, not the row")
        return problems

    @staticmethod
    def _check_again(tier: str, call: Callable[[], object], mysql: int, redis: int) -> list[str]:
        """The tier check after the timed calls (did entries expire or get evicted meanwhile?)."""
        return [f"after the timed calls: {p}" for p in check_tier(tier, call, mysql, redis)]

    def _django(self, ids: list[int]) -> Samples:
        """Django ``get(pk=)`` per call (a reference: far too slow to batch with the rest)."""
        scale, manager = self.scale, self.model._default_manager
        sequence = self._cycle(ids, max(scale.get_calls * scale.get_rounds, scale.get_warmup))

        def django(i: int) -> object:
            return manager.get(pk=sequence[i])

        samples = per_call({"django": django}, scale.get_calls, scale.get_rounds, scale.get_warmup)
        return samples["django"]

    def _batched_calls(self) -> int:
        scale = self.scale
        return scale.hit_rounds * scale.hit_batches * scale.hit_calls


# -- 6. Redis hit -----------------------------------------------------------------------------------


class RedisHit(_CacheHit):
    key = "get_by_id_redis_hit"
    title = "6. get_by_id, Redis hit"
    target = Target(1.3, None, min_speedup=2.0)
    table = CACHED_TABLE
    model = BenchCachedItem

    @property
    def provider(self) -> BenchItemProvider:
        return self.env.cached_provider

    def _keys(self, ids: list[int], before: set[bytes]) -> tuple[CacheKeys, list[str]]:
        """The cache entries' keys, or stand-ins (and a problem) when fluxa wrote none."""
        names = {r.id: r.name for r in self.env.records}
        client = self.env.redis_client
        found = find_cache_keys(client, self.provider, self.env.engine, ids, names, before)
        if found.keys:
            return found, []
        rows = {id_: self._row(id_) for id_ in ids}
        stand_ins = write_stand_ins(client, self.table, rows)
        return stand_ins, [f"no Redis cache entry of the rows: {found.how}"]

    def run(self) -> CaseResult:
        env, scale, ids = self.env, self.scale, self._ids()
        engine, provider, client = env.engine, self.provider, env.redis_client
        before = redis_keys(client)
        self._warm(ids)
        ctx = engine.new_context()
        ctx.disable_context_cache()  # every call asks the Redis tier

        def served() -> object:
            return provider.get_by_id(ctx, ids[-1])

        problems = check_tier("Redis tier", served, 0, 1)
        problems += self._check_items(ctx, ids)
        keys, missing = self._keys(ids, before)
        problems += missing
        sequence = self._cycle(ids, max(scale.get_calls * scale.get_rounds, scale.get_warmup))
        key_sequence = [keys.keys[id_] for id_ in sequence]
        get = client.get
        if get(key_sequence[0]) is None:
            problems.append(f"raw GET of {key_sequence[0]!r} found nothing")

        def fluxa(i: int) -> object:
            return provider.get_by_id(ctx, sequence[i])

        def fluxa_fresh_context(i: int) -> object:
            return provider.get_by_id(engine.new_context(), sequence[i])

        def raw(i: int) -> object:
            return get(key_sequence[i])

        def django(i: int) -> object:
            return BenchCachedItem.objects.get(pk=sequence[i])

        samples = per_call(
            {"fluxa": fluxa, "raw": raw, "django": django, "fresh": fluxa_fresh_context},
            scale.get_calls,
            scale.get_rounds,
            scale.get_warmup,
        )
        problems += self._check_again("Redis tier", served, 0, 1)
        example = keys.keys[ids[0]]
        size = len(get(example) or b"")
        return self.result(
            samples,
            "per call",
            extras={"fluxa with a fresh Context per call": fastest(samples["fresh"])},
            notes=[
                f"fluxa: one Context with disable_context_cache(), {len(ids):,} ids "
                "warmed untimed; raw: redis-py GET of the same entry on fluxa's Redis "
                "client (same pool, db 15); django: get(pk=) from MySQL",
                f"raw key of id {ids[0]}: {example!r} ({size} bytes), {keys.how}",
            ],
            problems=problems,
        )

    def profile(self, profiler: cProfile.Profile) -> None:
        ids = self._ids()
        self._warm(ids)
        ctx = self.env.engine.new_context()
        ctx.disable_context_cache()
        provider = self.provider
        sequence = self._cycle(ids, self.scale.get_calls * self.scale.get_rounds)
        profiler.enable()
        for id_ in sequence:
            provider.get_by_id(ctx, id_)
        profiler.disable()


# -- 7. local-cache hit --------------------------------------------------------------------------


class LocalHit(_CacheHit):
    key = "get_by_id_local_hit"
    title = "7. get_by_id, local-cache hit"
    target = Target(None, None, max_ns=2_000)
    table = LOCAL_TABLE
    model = BenchLocalItem

    @property
    def provider(self) -> BenchItemProvider:
        return self.env.local_provider

    def run(self) -> CaseResult:
        env, scale, ids = self.env, self.scale, self._ids()
        engine, provider = env.engine, self.provider
        self._warm(ids)
        ctx = engine.new_context()
        ctx.disable_context_cache()  # every call asks the local tier

        def served() -> object:
            return provider.get_by_id(ctx, ids[-1])

        problems = check_tier("local-cache tier", served, 0, 0)
        problems += self._check_items(ctx, ids)
        sequence = self._cycle(ids, self._batched_calls())
        # The floor of any process-local LRU hit: a lookup under a lock.
        lru: LRUCache[int, object] = LRUCache(maxsize=LOCAL_CACHE_LIMIT)
        for id_ in ids:
            lru[id_] = provider.get_by_id(ctx, id_)
        lock = threading.Lock()

        def fluxa(start: int, stop: int) -> None:
            get = provider.get_by_id
            for id_ in sequence[start:stop]:
                get(ctx, id_)

        def fluxa_fresh_context(start: int, stop: int) -> None:
            get, new_context = provider.get_by_id, engine.new_context
            for id_ in sequence[start:stop]:
                get(new_context(), id_)

        def raw(start: int, stop: int) -> None:
            get = lru.get
            for id_ in sequence[start:stop]:
                with lock:
                    get(id_)

        contenders: dict[str, Callable[[int, int], None]] = {
            "fluxa": fluxa,
            "raw": raw,
            "fresh": fluxa_fresh_context,
            "loop": _empty_loop(sequence),
        }
        samples = batched(
            contenders, scale.hit_calls, scale.hit_batches, scale.hit_rounds, scale.hit_calls
        )
        problems += self._check_again("local-cache tier", served, 0, 0)
        return self.result(
            {**samples, "django": self._django(ids)},
            "per call",
            extras={
                "fluxa with a fresh Context per call": fastest(samples["fresh"]),
                "the loop alone (included above)": fastest(samples["loop"]),
            },
            notes=[
                f"fluxa: one Context with disable_context_cache(), {len(ids):,} ids warmed "
                f"untimed; raw: cachetools LRUCache.get under a threading.Lock (the floor "
                f"of a local LRU hit); fluxa and raw: mean per call of batches of "
                f"{scale.hit_calls:,}; django: get(pk=) from MySQL, per call (reference)",
            ],
            problems=problems,
        )

    def profile(self, profiler: cProfile.Profile) -> None:
        _profile_hits(self, profiler, context_cache=False)


# -- 8. context-cache hit --------------------------------------------------------------------------


class ContextHit(_CacheHit):
    key = "get_by_id_context_hit"
    title = "8. get_by_id, context-cache hit"
    target = Target(None, None, max_ns=1_000)
    table = TABLE
    model = BenchItem

    def run(self) -> CaseResult:
        env, scale, ids = self.env, self.scale, self._ids()
        provider = self.provider
        ctx = env.engine.new_context()
        ctx.set_context_cache_ttl(3600)  # no expiry during the case
        held = {id_: provider.get_by_id(ctx, id_) for id_ in ids}

        def served() -> object:
            return provider.get_by_id(ctx, ids[-1])

        problems = check_tier("context cache", served, 0, 0)
        if any(provider.get_by_id(ctx, id_) is not held[id_] for id_ in ids):
            problems.append("the context cache did not give the same object again")
        problems += self._check_items(ctx, ids)
        sequence = self._cycle(ids, self._batched_calls())

        def fluxa(start: int, stop: int) -> None:
            get = provider.get_by_id
            for id_ in sequence[start:stop]:
                get(ctx, id_)

        def raw(start: int, stop: int) -> None:
            get = held.get
            for id_ in sequence[start:stop]:
                get(id_)

        contenders: dict[str, Callable[[int, int], None]] = {
            "fluxa": fluxa,
            "raw": raw,
            "loop": _empty_loop(sequence),
        }
        samples = batched(
            contenders, scale.hit_calls, scale.hit_batches, scale.hit_rounds, scale.hit_calls
        )
        problems += self._check_again("context cache", served, 0, 0)
        return self.result(
            {**samples, "django": self._django(ids)},
            "per call",
            extras={"the loop alone (included above)": fastest(samples["loop"])},
            notes=[
                f"fluxa: one Context with set_context_cache_ttl(3600) holding {len(ids):,} "
                "entities (BenchItemEntity, no other cache tier); raw: dict.get of the same "
                f"entities; fluxa and raw: mean per call of batches of {scale.hit_calls:,}; "
                "django: get(pk=) from MySQL, per call (reference)",
            ],
            problems=problems,
        )

    def profile(self, profiler: cProfile.Profile) -> None:
        _profile_hits(self, profiler, context_cache=True)


def _empty_loop(sequence: list[int]) -> Callable[[int, int], None]:
    """The batches' own loop with nothing in it: what every batched figure includes."""

    def loop(start: int, stop: int) -> None:
        for _id in sequence[start:stop]:
            pass

    return loop


def _profile_hits(case: _CacheHit, profiler: cProfile.Profile, context_cache: bool) -> None:
    ids = case._ids()
    ctx = case.env.engine.new_context()
    if context_cache:
        ctx.set_context_cache_ttl(3600)
        for id_ in ids:
            case.provider.get_by_id(ctx, id_)
    else:
        case._warm(ids)
        ctx.disable_context_cache()
    get = case.provider.get_by_id
    sequence = case._cycle(ids, case._batched_calls())
    profiler.enable()
    for id_ in sequence:
        get(ctx, id_)
    profiler.disable()
