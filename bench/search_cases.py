"""The Redis Search case: ``search_many_in_redis`` of 100 rows served by the Redis row cache.

fluxa: one ``FT.SEARCH ... NOCONTENT`` on the index alias (the ids, in the query's
order), then the rows through the tiers: one ``MGET`` of the Redis row cache (warmed
untimed), decoded and hydrated into entities, a fresh Context per call (so the
context cache holds nothing). raw: the same two commands with redis-py on fluxa's own
clients (the search pool on database 0, the row cache on database 15) and a bare
msgpack unpack of each cached value. django: the ORM equivalent, from MySQL.

Untimed checks, before and after the timed calls: a warm call sends exactly one
``FT.SEARCH`` and one ``MGET`` (counted at the connections' ``send_command``) and no
MySQL query; the three contenders return the same 100 rows, in the same order.
"""

from __future__ import annotations

import cProfile
import datetime
from decimal import Decimal
from typing import Any

import msgpack

from bench.case import Case, same_item
from bench.environment import Record, search_index
from bench.fluxa_types import BenchItem as FluxaItem
from bench.fluxa_types import BenchSearchItemProvider
from bench.models import BenchSearchItem
from bench.probes import RedisCommands, RoundTrips
from bench.results import TIMES, CaseResult, Target
from bench.timing import fastest, per_call
from fluxa_django import Pager, RedisSearchQuery

RESULTS = 100  # rows one search returns
WARM_CALLS = 2  # the first fills the Redis row cache from MySQL, the second reads it
EXPECTED_COMMANDS = ["FT.SEARCH", "MGET"]


def price_window(records: list[Record], size: int = RESULTS) -> tuple[list[Record], float, float]:
    """``size`` rows with consecutive, distinct prices that no other row has, near the
    middle of the price range: ``low <= price <= high`` matches exactly them, and sorting
    by price orders them the same way everywhere (no ties)."""
    ordered = sorted(records, key=lambda r: (r.price, r.id))
    prices = [r.price for r in ordered]
    for start in range(len(ordered) // 2, len(ordered) - size):
        window = prices[start : start + size]
        if (
            len(set(window)) == size
            and prices[start - 1] != window[0]
            and prices[start + size] != window[-1]
        ):
            return ordered[start : start + size], window[0], window[-1]
    raise RuntimeError(f"no window of {size} rows with distinct prices")


def _ext(code: int, data: bytes) -> Any:
    """The raw decoder's msgpack extensions: the row's decimal and datetime columns."""
    if code == 1:
        return Decimal(data.decode())
    if code == 3:
        return datetime.datetime.fromisoformat(data.decode())
    return msgpack.ExtType(code, data)


class RedisSearchMany(Case):
    key = "search_many_in_redis"
    title = f"9. search_many_in_redis, {RESULTS} rows (Redis row cache)"
    target = Target(1.3, None)

    @property
    def provider(self) -> BenchSearchItemProvider:
        return self.env.search_provider

    def _window(self) -> tuple[list[Record], float, float]:
        return price_window(self.env.records)

    def _query(self, low: float, high: float) -> RedisSearchQuery[Any]:
        fields = self.provider.fields_redis_search
        return (
            RedisSearchQuery()
            .filter(fields.price.between(low, high))
            .sort_by_asc(fields.price)
            .pager(Pager(1, RESULTS))
        )

    def _warm(self, low: float, high: float) -> None:
        engine, provider = self.env.engine, self.provider
        for _ in range(WARM_CALLS):
            provider.search_many_in_redis(engine.new_context(), self._query(low, high))

    def _check_trips(self, low: float, high: float) -> tuple[list[str], str]:
        """Problems of one warm call's round trips, and what fluxa's observers saw."""
        engine, provider = self.env.engine, self.provider
        query = self._query(low, high)
        with RoundTrips() as trips, RedisCommands() as commands:
            found = provider.search_many_in_redis(engine.new_context(), query)
        problems: list[str] = []
        if commands.names != EXPECTED_COMMANDS or trips.mysql:
            problems.append(
                f"a warm call sent {commands.names} to Redis and made {trips.mysql} MySQL "
                f"round trip(s), expected {EXPECTED_COMMANDS} and none"
            )
        if len(found) != RESULTS:
            problems.append(f"a warm call returned {len(found)} rows, expected {RESULTS}")
        return problems, trips.describe()

    def run(self) -> CaseResult:
        env, scale = self.env, self.scale
        engine, provider = env.engine, self.provider
        expected, low, high = self._window()
        index = search_index(engine)
        tiers = provider.tiers(engine)
        assert tiers is not None
        self._warm(low, high)
        problems, observed = self._check_trips(low, high)

        # The raw baseline: the same commands on fluxa's clients, the same keys.
        execute = env.search_client.execute_command
        mget = env.redis_client.mget
        alias, text = index.alias, f"@price:[{low!r} {high!r}]"
        search_args = (
            "NOCONTENT",
            "SORTBY",
            "price",
            "ASC",
            "LIMIT",
            "0",
            str(RESULTS),
            "DIALECT",
            "2",
        )
        cut = len(index.doc_prefix)
        cache_prefix = tiers.key(0)[:-1].encode()
        if any(tiers.key(r.id).encode() != cache_prefix + str(r.id).encode() for r in expected):
            problems.append(f"the row cache keys are not <prefix><id>: {tiers.key(1)!r}")
        unpackb = msgpack.unpackb

        def doc_ids(reply: Any) -> list[bytes]:
            """The document keys of an ``FT.SEARCH ... NOCONTENT`` reply (RESP3 or RESP2)."""
            if isinstance(reply, dict):
                return [result[b"id"] for result in reply[b"results"]]
            return list(reply[1:])

        def raw(i: int) -> object:
            reply = execute("FT.SEARCH", alias, text, *search_args)  # type: ignore[no-untyped-call]
            keys = [cache_prefix + doc[cut:] for doc in doc_ids(reply)]
            return [
                unpackb(value, ext_hook=_ext, use_list=False, raw=False)[1] for value in mget(keys)
            ]

        def raw_ids(i: int) -> object:
            reply = execute("FT.SEARCH", alias, text, *search_args)  # type: ignore[no-untyped-call]
            return [int(doc[cut:]) for doc in doc_ids(reply)]

        def fluxa(i: int) -> object:
            return provider.search_many_in_redis(engine.new_context(), self._query(low, high))

        def fluxa_ids(i: int) -> object:
            return provider.search_ids_in_redis(engine.new_context(), self._query(low, high))

        low_decimal, high_decimal = Decimal(repr(low)), Decimal(repr(high))
        django_rows = BenchSearchItem.objects.filter(
            price__gte=low_decimal, price__lte=high_decimal
        ).order_by("price")

        def django(i: int) -> object:
            return list(django_rows[:RESULTS])

        problems += self._check_rows(expected, fluxa(0), raw(0), django(0))
        if fluxa_ids(0) != raw_ids(0) or raw_ids(0) != [r.id for r in expected]:
            problems.append("search_ids_in_redis and the raw FT.SEARCH give other ids")
        samples = per_call(
            {
                "fluxa": fluxa,
                "raw": raw,
                "django": django,
                "fluxa_ids": fluxa_ids,
                "raw_ids": raw_ids,
            },
            scale.redis_search_calls,
            scale.redis_search_rounds,
            scale.redis_search_warmup,
        )
        problems += [f"after the timed calls: {p}" for p in self._check_trips(low, high)[0]]
        fluxa_ids_ns, raw_ids_ns = fastest(samples["fluxa_ids"]), fastest(samples["raw_ids"])
        fluxa_ns, raw_ns = fastest(samples["fluxa"]), fastest(samples["raw"])
        rows_fluxa, rows_raw = fluxa_ns - fluxa_ids_ns, raw_ns - raw_ids_ns
        return self.result(
            samples,
            f"per search of {RESULTS} rows",
            extras={
                "fluxa search_ids_in_redis (FT.SEARCH only)": fluxa_ids_ns,
                "raw FT.SEARCH + id parsing only": raw_ids_ns,
            },
            notes=[
                f"query: price between {low} and {high} (exactly {RESULTS} rows, distinct "
                f"prices), sorted by price, Pager(1, {RESULTS}); rows warmed in the Redis "
                "row cache untimed",
                "fluxa: a fresh Context and RedisSearchQuery per call; raw: redis-py "
                "FT.SEARCH NOCONTENT SORTBY price LIMIT 0 100 DIALECT 2 on fluxa's search "
                "client (database 0), MGET of the same row-cache keys on fluxa's default "
                "client (database 15), msgpack.unpackb of each value; django: filter(price "
                "range).order_by('price')[:100] from MySQL",
                f"FT.SEARCH alone: fluxa/raw {fluxa_ids_ns / raw_ids_ns:.2f}{TIMES}; the rest "
                f"(MGET, decode, entities; fastest minus FT.SEARCH-only figures): fluxa "
                f"{rows_fluxa / 1000:.1f} µs, raw {rows_raw / 1000:.1f} µs",
                f"checked before and after the timed calls: a warm call sends "
                f"{' + '.join(EXPECTED_COMMANDS)} (counted at the connection) and makes no MySQL "
                f"round trip; fluxa's own round-trip observers saw {observed}",
            ],
            problems=problems,
        )

    def _check_rows(
        self,
        expected: list[Record],
        items: object,
        rows: object,
        objs: object,
    ) -> list[str]:
        """The three contenders' results hold the expected rows, in price order."""
        assert isinstance(items, list) and isinstance(rows, list) and isinstance(objs, list)
        ids = [r.id for r in expected]
        got = {
            "fluxa": [item.id for item in items],
            "raw": [row[0] for row in rows],
            "django": [obj.id for obj in objs],
        }
        problems = [
            f"{name} returned ids {found[:5]}... ({len(found)}), expected {ids[:5]}... ({len(ids)})"
            for name, found in got.items()
            if found != ids
        ]
        if not problems:
            fluxa_items: list[FluxaItem] = items
            trios = zip(fluxa_items, rows, objs, strict=True)
            problems += [
                f"row {item.id} differs between fluxa, raw and django"
                for item, row, obj in trios
                if not same_item(item, row, obj)
            ]
        return problems

    def profile(self, profiler: cProfile.Profile) -> None:
        _, low, high = self._window()
        self._warm(low, high)
        engine, provider = self.env.engine, self.provider
        calls = self.scale.redis_search_calls * self.scale.redis_search_rounds
        for _ in range(calls):
            query = self._query(low, high)
            ctx = engine.new_context()
            profiler.enable()
            provider.search_many_in_redis(ctx, query)
            profiler.disable()
