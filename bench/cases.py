"""The benchmark cases: fluxa_django vs raw mysqlclient vs the Django ORM, same data, same run.

Every case checks (untimed) that the three contenders produced the same thing
before trusting its timings.
"""

from __future__ import annotations

import cProfile
from collections.abc import Callable
from decimal import Decimal

from bench.async_cases import AsyncConsume, FlushAsyncRequest
from bench.cache_cases import ContextHit, LocalHit, RedisHit
from bench.case import Case, same_item
from bench.environment import (
    BY_ID_SQL,
    INSERT_SQL,
    PLAIN_INSERT_SQL,
    PLAIN_TABLE,
    ROWS,
    SELECT_SQL,
    TABLE,
    UPDATE_PRICE_SQL,
    BenchEnv,
)
from bench.models import BenchItem, BenchPlain
from bench.results import CaseResult, Target
from bench.search_cases import RedisSearchMany
from bench.timing import BulkContender, GcDisabled, bulk, fastest, median, per_call, retained
from fluxa_django import Context, Pager, Query

SEARCH_SIZE = 1_000
SEARCH_SQL = f"{SELECT_SQL} WHERE `quantity` >= %s LIMIT 0,{SEARCH_SIZE}"
UPDATED = 1_000
LOAD_ALL_SQL = f"{SELECT_SQL} LIMIT 0,{ROWS}"


# -- 1. get_by_id ---------------------------------------------------------------------------------


class GetById(Case):
    key = "get_by_id"
    title = "1. get_by_id, MySQL (no cache)"
    target = Target(1.3, 2.7)

    def _ids(self) -> list[int]:
        count = max(self.scale.get_calls * self.scale.get_rounds, self.scale.get_warmup)
        return [(i * 7919) % ROWS + 1 for i in range(count)]  # spread over the table

    def run(self) -> CaseResult:
        env, ids = self.env, self._ids()
        provider, engine = env.provider, env.engine
        ctx = engine.new_context()
        ctx.disable_context_cache()  # every call goes to MySQL
        cur = env.raw.cursor()

        def fluxa(i: int) -> object:
            return provider.get_by_id(ctx, ids[i])

        def fluxa_fresh_context(i: int) -> object:
            return provider.get_by_id(engine.new_context(), ids[i])

        def raw(i: int) -> object:
            cur.execute(BY_ID_SQL, (ids[i],))
            return cur.fetchone()

        def django(i: int) -> object:
            return BenchItem.objects.get(pk=ids[i])

        for i in range(0, len(ids), len(ids) // 7):
            item = provider.get_by_id(ctx, ids[i])
            assert item is not None
            row = raw(i)
            assert isinstance(row, tuple)
            assert same_item(item, row, BenchItem.objects.get(pk=ids[i])), ids[i]
        samples = per_call(
            {"fluxa": fluxa, "raw": raw, "django": django, "fresh": fluxa_fresh_context},
            self.scale.get_calls,
            self.scale.get_rounds,
            self.scale.get_warmup,
        )
        cur.close()
        return self.result(
            samples,
            "per call",
            extras={"fluxa with a fresh Context per call": fastest(samples["fresh"])},
            notes=[
                "fluxa: one Context with disable_context_cache(); raw: one reused cursor "
                "on fluxa's pooled connection (same MySQL server thread)",
            ],
        )

    def profile(self, profiler: cProfile.Profile) -> None:
        ctx = self.env.engine.new_context()
        ctx.disable_context_cache()
        provider = self.env.provider
        ids = self._ids()
        profiler.enable()
        for id_ in ids:
            provider.get_by_id(ctx, id_)
        profiler.disable()


# -- 2. search_many ---------------------------------------------------------------------------------


class SearchMany(Case):
    key = "search_many"
    title = f"2. search_many, {SEARCH_SIZE:,} rows (no cache)"
    target = Target(1.15, 2.8)

    def _query(self) -> Query:
        fields = self.env.provider.fields
        return Query().filter(fields.quantity.gte(0)).pager(Pager(1, SEARCH_SIZE))

    def run(self) -> CaseResult:
        env = self.env
        provider, engine = env.provider, env.engine
        fields = provider.fields
        cur = env.raw.cursor()

        def fluxa(i: int) -> object:
            query = Query().filter(fields.quantity.gte(0)).pager(Pager(1, SEARCH_SIZE))
            return provider.search_many(engine.new_context(), query)

        def fluxa_no_context_cache(i: int) -> object:
            ctx = engine.new_context()
            ctx.disable_context_cache()
            query = Query().filter(fields.quantity.gte(0)).pager(Pager(1, SEARCH_SIZE))
            return provider.search_many(ctx, query)

        def raw(i: int) -> object:
            cur.execute(SEARCH_SQL, (0,))
            return cur.fetchall()

        def django(i: int) -> object:
            return list(BenchItem.objects.filter(quantity__gte=0)[:SEARCH_SIZE])

        items = provider.search_many(engine.new_context(), self._query())
        rows = raw(0)
        objs = BenchItem.objects.filter(quantity__gte=0)[:SEARCH_SIZE]
        assert isinstance(rows, tuple)
        assert len(items) == len(rows) == len(objs) == SEARCH_SIZE
        assert all(same_item(*trio) for trio in zip(items, rows, objs, strict=True))
        samples = per_call(
            {"fluxa": fluxa, "raw": raw, "django": django, "nocache": fluxa_no_context_cache},
            self.scale.search_calls,
            self.scale.search_rounds,
            self.scale.search_warmup,
        )
        cur.close()
        return self.result(
            samples,
            f"per search of {SEARCH_SIZE:,} rows",
            extras={"fluxa with disable_context_cache()": fastest(samples["nocache"])},
            notes=["fluxa: a fresh Context and Query per call (context cache on, the default)"],
        )

    def profile(self, profiler: cProfile.Profile) -> None:
        provider, engine = self.env.provider, self.env.engine
        for _ in range(200):
            query = self._query()
            ctx = engine.new_context()
            profiler.enable()
            provider.search_many(ctx, query)
            profiler.disable()


# -- 3. flush of new entities --------------------------------------------------------------------------


class _InsertContender:
    table = TABLE

    def __init__(self, env: BenchEnv) -> None:
        self.env = env

    def prepare(self) -> None:
        self.env.truncate(self.table)

    def run(self) -> None:
        raise NotImplementedError

    def verify(self) -> None:
        count = int(self.env.scalar(f"SELECT COUNT(*) FROM `{self.table}`"))
        assert count == ROWS, f"{type(self).__name__} inserted {count} rows"


def _profile_runs(profiler: cProfile.Profile, contender: _InsertContender) -> None:
    """Three profiled runs of a bulk contender (prepared and verified outside the profile)."""
    for _ in range(3):
        contender.prepare()
        profiler.enable()
        contender.run()
        profiler.disable()
        contender.verify()


class _FluxaInsert(_InsertContender):
    def run(self) -> None:
        provider = self.env.provider
        ctx = self.env.engine.new_context()
        for r in self.env.records:
            item = provider.new(ctx)
            item.name = r.name
            item.price = r.price
            item.quantity = r.quantity
            item.active = r.active
            item.created_at = r.created_at
            item.category = r.category
        ctx.flush()


class _RawInsert(_InsertContender):
    def run(self) -> None:
        rows = [
            (r.id, r.name, r.price, r.quantity, r.active, r.created_at, r.category)
            for r in self.env.records
        ]
        conn = self.env.raw
        cur = conn.cursor()
        conn.begin()
        cur.executemany(INSERT_SQL, rows)
        conn.commit()
        cur.close()


class _DjangoInsert(_InsertContender):
    def run(self) -> None:
        objs = [BenchItem.of(r) for r in self.env.records]
        BenchItem.objects.bulk_create(objs, batch_size=1000)


class InsertFlush(Case):
    key = "flush_insert"
    title = f"3. flush of {ROWS:,} new entities"
    target = Target(1.2, 2.4)

    def run(self) -> CaseResult:
        contenders: dict[str, BulkContender] = {
            "fluxa": _FluxaInsert(self.env),
            "raw": _RawInsert(self.env),
            "django": _DjangoInsert(self.env),
            "nogc": GcDisabled(_FluxaInsert(self.env)),
        }
        try:
            samples = bulk(contenders, self.scale.bulk_runs)
        finally:
            self.env.seed()  # the other cases read the seeded rows
        return self.result(
            samples,
            f"per {ROWS:,} rows",
            extras={"fluxa with gc.disable() during the run": fastest(samples["nogc"])},
            notes=[
                "timed: building the objects from the same data + writing + COMMIT; "
                "fluxa: new() (ids reserved in MySQL blocks) + 6 setters + ctx.flush(); "
                "raw: tuples + executemany in a transaction; django: instances + "
                "bulk_create(batch_size=1000); table truncated before every run",
            ],
        )

    def profile(self, profiler: cProfile.Profile) -> None:
        try:
            _profile_runs(profiler, _FluxaInsert(self.env))
        finally:
            self.env.seed()


# -- 3b. flush of new plain entities ----------------------------------------------------------------


class _PlainInsertContender(_InsertContender):
    table = PLAIN_TABLE


class _FluxaPlainInsert(_PlainInsertContender):
    def run(self) -> None:
        provider = self.env.plain_provider
        ctx = self.env.engine.new_context()
        for r in self.env.plain_records:
            item = provider.new(ctx)
            item.name = r.name
            item.email = r.email
            item.category = r.category
            item.score = r.score
            item.seen_at = r.seen_at
            item.active = r.active
        ctx.flush()


class _RawPlainInsert(_PlainInsertContender):
    def run(self) -> None:
        rows = [
            (r.id, r.name, r.email, r.category, r.score, r.seen_at, r.active)
            for r in self.env.plain_records
        ]
        conn = self.env.raw
        cur = conn.cursor()
        conn.begin()
        cur.executemany(PLAIN_INSERT_SQL, rows)
        conn.commit()
        cur.close()


class _DjangoPlainInsert(_PlainInsertContender):
    def run(self) -> None:
        objs = [
            BenchPlain(
                id=r.id,
                name=r.name,
                email=r.email,
                category=r.category,
                score=r.score,
                seen_at=r.seen_at,
                active=r.active,
            )
            for r in self.env.plain_records
        ]
        BenchPlain.objects.bulk_create(objs, batch_size=1000)


def _check_plain_rows(env: BenchEnv) -> None:
    """The rows fluxa inserted hold the records' values (ids aside: fluxa allocates its own)."""
    got = env.execute(
        f"SELECT `name`,`email`,`category`,`score`,`seen_at`,`active` FROM `{PLAIN_TABLE}` "
        "ORDER BY `id`"
    )
    want = [
        (r.name, r.email, r.category, r.score, r.seen_at, int(r.active)) for r in env.plain_records
    ]
    assert [tuple(row) for row in got] == want, "fluxa's plain rows differ from the records"


class InsertPlainFlush(Case):
    key = "flush_insert_plain"
    title = f"3b. flush of {ROWS:,} new plain entities"
    target = Target(1.2, None)

    def run(self) -> CaseResult:
        checked = _FluxaPlainInsert(self.env)
        checked.prepare()
        checked.run()
        checked.verify()
        _check_plain_rows(self.env)  # untimed: the values went through fluxa's setters
        contenders: dict[str, BulkContender] = {
            "fluxa": _FluxaPlainInsert(self.env),
            "raw": _RawPlainInsert(self.env),
            "django": _DjangoPlainInsert(self.env),
            "nogc": GcDisabled(_FluxaPlainInsert(self.env)),
        }
        try:
            samples = bulk(contenders, self.scale.bulk_runs)
        finally:
            self.env.truncate(PLAIN_TABLE)
        return self.result(
            samples,
            f"per {ROWS:,} rows",
            extras={"fluxa with gc.disable() during the run": fastest(samples["nogc"])},
            notes=[
                "columns: 2 x varchar(100), smallint unsigned, double, datetime, tinyint(1); "
                "no decimal, reference, auto timestamp or cache tier",
                "timed: building the objects from the same data + writing + COMMIT; "
                "fluxa: new() (ids reserved in MySQL blocks) + 6 setters + ctx.flush(); "
                "raw: tuples (ids prepared) + executemany in a transaction; django: "
                "instances + bulk_create(batch_size=1000); table truncated before every run",
            ],
        )

    def profile(self, profiler: cProfile.Profile) -> None:
        try:
            _profile_runs(profiler, _FluxaPlainInsert(self.env))
        finally:
            self.env.truncate(PLAIN_TABLE)


# -- 4. flush of updated entities ----------------------------------------------------------------------


class _Prices:
    """A new price for every run (always different from what any earlier run wrote)."""

    def __init__(self) -> None:
        self.run = 0

    def next(self) -> int:
        self.run += 1
        return self.run

    @staticmethod
    def price(run: int, id_: int) -> float:
        return run * 10 + (id_ % 1000) / 100


class _UpdateContender:
    def __init__(self, env: BenchEnv, prices: _Prices) -> None:
        self.env = env
        self.prices = prices
        self.run_no = 0

    def verify(self) -> None:
        low = self.run_no * 10
        count = int(
            self.env.scalar(
                f"SELECT COUNT(*) FROM `{TABLE}` WHERE `id` <= %s AND `price` >= %s AND `price` < %s",
                (UPDATED, low, low + 10),
            )
        )
        assert count == UPDATED, f"{type(self).__name__} updated {count} rows"


class _FluxaUpdate(_UpdateContender):
    ctx: Context

    def prepare(self) -> None:
        self.run_no = run = self.prices.next()
        self.ctx = self.env.engine.new_context()
        items = self.env.provider.get_by_ids(self.ctx, range(1, UPDATED + 1))
        for item in items:
            item.price = _Prices.price(run, item.id)

    def run(self) -> None:
        self.ctx.flush()


class _RawUpdate(_UpdateContender):
    params: list[tuple[float, int]]

    def prepare(self) -> None:
        self.run_no = run = self.prices.next()
        self.params = [(_Prices.price(run, id_), id_) for id_ in range(1, UPDATED + 1)]

    def run(self) -> None:
        conn = self.env.raw
        cur = conn.cursor()
        conn.begin()
        cur.executemany(UPDATE_PRICE_SQL, self.params)
        conn.commit()
        cur.close()


class _DjangoUpdate(_UpdateContender):
    objs: list[BenchItem]

    def prepare(self) -> None:
        self.run_no = run = self.prices.next()
        self.objs = list(BenchItem.objects.filter(pk__lte=UPDATED))
        for obj in self.objs:
            obj.price = Decimal(f"{_Prices.price(run, obj.id):.2f}")

    def run(self) -> None:
        BenchItem.objects.bulk_update(self.objs, ["price"])


class UpdateFlush(Case):
    key = "flush_update"
    title = f"4. flush of {UPDATED:,} updated entities"
    target = Target(1.5, None, beat_django=True)

    def run(self) -> CaseResult:
        prices = _Prices()
        contenders: dict[str, BulkContender] = {
            "fluxa": _FluxaUpdate(self.env, prices),
            "raw": _RawUpdate(self.env, prices),
            "django": _DjangoUpdate(self.env, prices),
        }
        samples = bulk(contenders, self.scale.bulk_runs)
        return self.result(
            samples,
            f"per {UPDATED:,} rows",
            notes=[
                "timed: only the write (loading and setting the price is untimed); "
                "fluxa: ctx.flush(); raw: executemany UPDATE in a transaction "
                "(one statement per row); django: bulk_update(objs, ['price']) "
                "(one CASE WHEN statement)",
            ],
        )

    def profile(self, profiler: cProfile.Profile) -> None:
        contender = _FluxaUpdate(self.env, _Prices())
        for _ in range(5):
            contender.prepare()
            profiler.enable()
            contender.run()
            profiler.disable()
            contender.verify()


# -- 5. memory -------------------------------------------------------------------------------------------


class Memory(Case):
    key = "memory"
    title = f"5. memory of {ROWS:,} loaded entities"
    target = Target(1.3, 2.6)

    def _fluxa(self, context_cache: bool) -> object:
        ctx = self.env.engine.new_context()
        if not context_cache:
            ctx.disable_context_cache()
        items = self.env.provider.search_many(ctx, Query().pager(Pager(1, ROWS)))
        assert len(items) == ROWS
        return items

    def _raw(self) -> object:
        cur = self.env.raw.cursor()
        cur.execute(LOAD_ALL_SQL)
        rows = cur.fetchall()
        cur.close()
        assert len(rows) == ROWS
        return rows

    def _django(self) -> object:
        objs = list(BenchItem.objects.all()[:ROWS])
        assert len(objs) == ROWS
        return objs

    def run(self) -> CaseResult:
        loads: dict[str, Callable[[], object]] = {
            "fluxa": lambda: self._fluxa(True),
            "raw": self._raw,
            "django": self._django,
            "nocache": lambda: self._fluxa(False),
        }
        sizes: dict[str, list[int]] = {name: [] for name in loads}
        sites: dict[str, list[tuple[str, int]]] = {}
        for load in loads.values():
            load()  # warm up: first-use allocations (query caches, converters) are not counted
        for _ in range(self.scale.memory_repeats):
            for name, load in loads.items():
                use = retained(load)
                sizes[name].append(use.total)
                sites[name] = use.top
        fluxa, raw, django = (median(sizes[n]) for n in ("fluxa", "raw", "django"))
        return CaseResult(
            key=self.key,
            title=self.title,
            unit="bytes",
            per=f"{ROWS:,} rows held",
            fluxa=fluxa,
            raw=raw,
            django=django,
            target=self.target,
            samples=len(sizes["fluxa"]),
            extras={"fluxa with disable_context_cache()": median(sizes["nocache"])},
            notes=[
                "tracemalloc snapshot difference while holding the result; "
                "fluxa holds its Context (entities reference it; its cache has every entity)",
                f"per row: fluxa {fluxa / ROWS:.0f} B, raw {raw / ROWS:.0f} B, "
                f"django {django / ROWS:.0f} B",
            ],
            detail={"allocation_sites": sites},
        )

    def profile(self, profiler: cProfile.Profile) -> None:
        for _ in range(5):
            profiler.enable()
            self._fluxa(True)
            profiler.disable()


CASES: tuple[type[Case], ...] = (
    GetById,
    SearchMany,
    InsertFlush,
    InsertPlainFlush,
    UpdateFlush,
    Memory,
    RedisHit,
    LocalHit,
    ContextHit,
    RedisSearchMany,
    FlushAsyncRequest,
    AsyncConsume,
)
