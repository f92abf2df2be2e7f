"""A Redis pool configured through Sentinel, through a forced failover and a failback.

The test starts its own group (``tests/reliability/sentinel.py``: a master, a replica
and three sentinels, real redis-server processes on loopback) and an engine whose
Redis pool is ``RedisOptions(master=..., sentinels=...)``. Threads read rows through
the cache tiers (``UserEntity``: Redis tier; ``ProductEntity``: local and Redis tiers),
update them (each row has one writer, which writes a version number into it) and
create new rows, while ``SENTINEL FAILOVER`` promotes the replica; once the old master
has been turned into a replica of the new one and has caught up, a second failover
moves the master back to it (a failback: the old master was never restarted, so its
run id is the same as before the first failover).

What must hold:

- reads never fail and never return a version older than the last one committed
  before the read started;
- flushes refused during the switch are bounded (a refused flush writes nothing and
  is reported as ``PoolError``), and flushes work again once the group settled;
- after the writers stop, every tier (a fresh context of the engine, the Redis entry
  under the current epoch, and a new engine, like a new process) serves exactly what
  MySQL holds: no stale row survives the switch;
- ids stay unique (they come from MySQL, runtime/ids.py).

The figures (errors seen during each switch, time to recover) are printed at the end
of the run and written to ``.fluxa/reliability/sentinel.json``.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import MySQLdb
import pytest

from fluxa_django import Context, Engine, PoolError, Registry
from fluxa_django.config import RedisOptions
from fluxa_django.runtime import codec
from tests import entities
from tests.cache_helpers import new_category, new_product, tiers_of, wait_until
from tests.generated import (
    ProductEntity,
    ProductEntityProvider,
    UserEntity,
    UserEntityProvider,
)
from tests.reliability.sentinel import MASTER_NAME, SentinelGroup
from tests.reliability.summary import record
from tests.services import MYSQL_HOST, MYSQL_PORT, mysql_uri

U = UserEntityProvider
P = ProductEntityProvider
USERS = 30
PRODUCTS = 20
READERS = 4
WRITERS = 2
SETTLED = 3.0  # seconds the load goes on after the old master became a replica
LOCAL_BOUND = 0.5  # the local tier's staleness bound for other processes (docs/caching.md)
RECOVERY_BOUND = 20.0  # seconds from SENTINEL FAILOVER until flushes work again, at most


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    started = SentinelGroup()
    try:
        started.start()
        yield started
    finally:
        started.remove()


def sentinel_engine(database: str, group: SentinelGroup) -> Engine:
    """An engine of the test application whose Redis pool goes through the sentinels."""
    registry = Registry()
    registry.set_option("app_name", "fluxa-tests")
    registry.register_mysql(mysql_uri(database))
    options = RedisOptions(master=MASTER_NAME, sentinels=group.sentinels)
    registry.register_redis("", 0, options=options)
    registry.register_local_cache("default", 1000)
    registry.register_entity(entities.CategoryEntity, entities.ProductEntity, entities.UserEntity)
    return registry.validate()


def version_of(text: str, id_: int) -> int:
    """The version a writer put in a row (``"<id>:<version>"``); the id must match."""
    owner, _, version = text.partition(":")
    assert int(owner) == id_, f"row {id_} holds the text of row {owner}"
    return int(version)


@dataclass
class Phase:
    """One switch: what the threads met, with times relative to ``SENTINEL FAILOVER``."""

    name: str
    started: float = 0.0  # monotonic time of the SENTINEL FAILOVER command
    reads: int = 0
    read_errors: list[tuple[float, str]] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    flushes: int = 0
    flush_errors: list[tuple[float, str]] = field(default_factory=list)
    sentinels_agree: float = 0.0
    pool_switched: float = 0.0
    old_master_demoted: float = 0.0
    last_flush_error: float = 0.0

    def since(self) -> float:
        return time.monotonic() - self.started if self.started else -1.0


class Load:
    """Readers, writers (one per row) and a creator of new rows, on one engine."""

    def __init__(
        self, engine: Engine, other: Engine, users: list[int], products: list[int]
    ) -> None:
        self.engine = engine
        self.other = other
        self.users = users
        self.products = products
        # (kind, id) -> the last version whose flush returned (committed)
        self.committed: dict[tuple[str, int], int] = {}
        self.next_version: dict[tuple[str, int], int] = {}
        self.history: dict[tuple[str, int], list[tuple[float, int]]] = {}
        self.created: list[int] = []
        self.allocated: list[int] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.phase = Phase("warm-up")
        self.failures: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        jobs: list[Any] = [self.reader] * READERS + [self.creator]
        # half the readers use the writers' engine, half another one (another process)
        args: list[tuple[Any, ...]] = [(self.engine,), (self.other,)] * (READERS // 2) + [()]
        for k in range(WRITERS):
            jobs.append(self.writer)
            args.append((k,))
        for job, arg in zip(jobs, args, strict=True):
            thread = threading.Thread(target=self.guard, args=(job, *arg), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads), "a load thread hangs"
        assert self.failures == [], f"a load thread died: {self.failures!r}"

    def guard(self, job: Any, *args: Any) -> None:
        try:
            job(*args)
        except BaseException as exc:  # reported by finish()
            self.failures.append(exc)

    def floor(self, kind: str, id_: int, engine: Engine) -> int:
        """The version a read starting now must return at least: the last one committed,
        or for a row of the local tier read by another engine, the last one committed
        ``LOCAL_BOUND`` ago (that engine learns of commits through pub/sub)."""
        history = self.history.get((kind, id_))
        if not history:
            return 0
        if kind == "user" or engine is self.engine:
            return history[-1][1]
        before = time.monotonic() - LOCAL_BOUND
        return next((v for t, v in reversed(history) if t <= before), 0)

    # -- the threads ------------------------------------------------------------------------

    def reader(self, engine: Engine) -> None:
        rng = random.Random()
        while not self.stop.is_set():
            kind = rng.choice(("user", "product"))
            id_ = rng.choice(self.users if kind == "user" else self.products)
            floor = self.floor(kind, id_, engine)
            phase = self.phase
            try:
                if kind == "user":
                    user = U.get_by_id(engine.new_context(), id_)
                    text = None if user is None else user.name
                else:
                    product = P.get_by_id(engine.new_context(), id_)
                    text = None if product is None else product.description
            except Exception as exc:
                phase.read_errors.append((phase.since(), f"{type(exc).__name__}: {exc}"))
                continue
            phase.reads += 1
            if text is None:
                phase.stale.append(f"{kind} {id_}: not found")
            elif version_of(text, id_) < floor:
                phase.stale.append(f"{kind} {id_}: version {text} read, {floor} committed before")

    def writer(self, k: int) -> None:
        rng = random.Random()
        owned = [("user", i) for i in self.users if i % WRITERS == k]
        owned += [("product", i) for i in self.products if i % WRITERS == k]
        while not self.stop.is_set():
            kind, id_ = rng.choice(owned)
            version = self.next_version.get((kind, id_), 1)
            ctx = self.engine.new_context()
            phase = self.phase
            try:
                if kind == "user":
                    user = U.must_get_by_id(ctx, id_)
                    user.name = f"{id_}:{version}"
                else:
                    product = P.must_get_by_id(ctx, id_)
                    product.description = f"{id_}:{version}"
                ctx.flush()
            except PoolError as exc:  # refused: nothing written
                phase.flush_errors.append((phase.since(), str(exc)))
                phase.last_flush_error = max(phase.last_flush_error, phase.since())
                continue
            phase.flushes += 1
            self.committed[(kind, id_)] = version
            self.history.setdefault((kind, id_), []).append((time.monotonic(), version))
            self.next_version[(kind, id_)] = version + 1
            time.sleep(0.002)

    def creator(self) -> None:
        while not self.stop.is_set():
            ctx = self.engine.new_context()
            made = [U.new(ctx) for _ in range(3)]
            with self.lock:
                self.allocated.extend(u.id for u in made)
            for user in made:
                user.name = f"{user.id}:0"
                user.email = f"new-{user.id}@example.com"
            phase = self.phase
            try:
                ctx.flush()
            except PoolError as exc:
                phase.flush_errors.append((phase.since(), str(exc)))
                phase.last_flush_error = max(phase.last_flush_error, phase.since())
                continue
            phase.flushes += 1
            with self.lock:
                self.created.extend(u.id for u in made)
            time.sleep(0.02)


def mysql_texts(database: str) -> dict[tuple[str, int], str]:
    conn = MySQLdb.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user="root", passwd="", db=database, autocommit=True
    )
    try:
        cur = conn.cursor()
        cur.execute("SELECT id, name FROM `UserEntity`")
        out = {("user", int(i)): str(t) for i, t in cur.fetchall()}
        cur.execute("SELECT id, description FROM `ProductEntity`")
        out.update({("product", int(i)): str(t) for i, t in cur.fetchall()})
        return out
    finally:
        conn.close()


def entry(engine: Engine, provider: Any, id_: int) -> bytes:
    """The Redis entry of a row under the pool's current epoch (b"" when none)."""
    tiers = tiers_of(engine, provider)
    value = tiers.client.get(tiers.key(id_))
    return value if isinstance(value, bytes) else b""


def check_every_tier(database: str, engine: Engine, load: Load, group: SentinelGroup) -> int:
    """Every tier serves what MySQL holds; returns the number of rows compared."""
    truth = mysql_texts(database)
    ids = [("user", i) for i in load.users] + [("product", i) for i in load.products]
    for kind, id_ in ids:
        if load.committed.get((kind, id_)):
            assert version_of(truth[(kind, id_)], id_) >= load.committed[(kind, id_)]
    # the Redis entries under the current epoch: decoded, each equals its row
    for provider, kind in ((U, "user"), (P, "product")):
        tiers = tiers_of(engine, provider)
        position = 1 if kind == "user" else 6  # UserEntity.name, ProductEntity.description
        for id_ in load.users if kind == "user" else load.products:
            value = entry(engine, provider, id_)
            if value and value[0] != 0:
                row = codec.decode_row(tiers.stamp, value)
                assert row is not None, f"{kind} {id_}: undecodable entry"
                assert row[position] == truth[(kind, id_)], f"{kind} {id_}: stale Redis entry"
    fresh = sentinel_engine(database, group)
    try:
        for reader in (engine, fresh):
            for _ in range(2):  # the first read may fill, the second is served by the tiers
                users = U.get_by_ids(reader.new_context(), load.users)
                products = P.get_by_ids(reader.new_context(), load.products)
                served = {("user", u.id): u.name for u in users}
                served.update({("product", p.id): p.description for p in products})
                wrong = {k: (v, truth[k]) for k, v in served.items() if v != truth[k]}
                assert wrong == {}, f"stale rows served: {wrong}"
                assert len(served) == len(ids)
    finally:
        fresh.close()
    for provider in (U, P):  # the Redis tier is live on the new master: every row is cached
        for id_ in load.users if provider is U else load.products:
            value = entry(engine, provider, id_)
            assert value and value[0] != 0, f"{provider.entity_name} {id_}: not cached"
    return len(ids)


def expected_epoch(group: SentinelGroup, port: int) -> str:
    """The epoch a connection to ``port`` computes (RedisPool._on_connect)."""
    client = group.client(port)
    try:
        run_id = client.info("server")["run_id"]
        replid = client.info("replication")["master_replid"]
    finally:
        client.close()
    return hashlib.sha256(f"{run_id}:{replid}".encode()).hexdigest()[:32]


def run_switch(load: Load, group: SentinelGroup, name: str) -> tuple[Phase, dict[str, Any]]:
    """Force a failover under load and follow it until the old master is a replica in sync."""
    pools = [load.engine.redis(), load.other.redis()]
    old_master = group.master_port()
    new_master = group.replica_port()
    old_run_id = group.run_id(old_master)
    assert all(pool.epoch == expected_epoch(group, old_master) for pool in pools)
    generations = [pool.generation for pool in pools]
    phase = Phase(name)
    load.phase = phase
    time.sleep(1.0)  # load on the settled group first
    switched: list[float | None] = [None, None]
    watching = threading.Event()

    def watch() -> None:  # when each pool's first connection reaches another server
        while not watching.is_set():
            for i, pool in enumerate(pools):
                if switched[i] is None and pool.generation != generations[i]:
                    switched[i] = phase.since()
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    phase.started = time.monotonic()
    watcher.start()
    group.failover()
    phase.sentinels_agree = wait_until(lambda: group.agreed_master() == new_master, 30)
    wait_until(lambda: group.role(old_master) == "slave", 60)
    phase.old_master_demoted = phase.since()
    wait_until(lambda: group.replica_in_sync(old_master, new_master), 30)
    wait_until(lambda: None not in switched, 10)
    watching.set()
    watcher.join()
    phase.pool_switched = max(t for t in switched if t is not None)
    time.sleep(SETTLED)
    load.phase = Phase(f"{name} (after)")
    for pool in pools:  # every pool works on the new master, under its epoch
        assert pool.connection_pool.master_address[1] == new_master  # type: ignore[attr-defined]
        assert pool.epoch == expected_epoch(group, new_master)
    figures = {
        "old_master_run_id_kept": group.run_id(old_master) == old_run_id,
        "reads": phase.reads,
        "read_errors": len(phase.read_errors),
        "flushes": phase.flushes,
        "flush_errors": len(phase.flush_errors),
        "flush_error_messages": sorted({m for _, m in phase.flush_errors}),
        "sentinels_agree_s": round(phase.sentinels_agree, 2),
        "old_master_demoted_s": round(phase.old_master_demoted, 2),
        "pools_switched_s": [round(t or 0.0, 2) for t in switched],
        "last_flush_error_s": round(phase.last_flush_error, 2),
    }
    return phase, figures


@pytest.fixture
def engines(fluxa_ctx: Context, group: SentinelGroup) -> Iterator[tuple[Engine, Engine]]:
    """Two engines through the sentinels on the test database: two processes of the
    application."""
    database = fluxa_ctx.engine.mysql().database
    first = sentinel_engine(database, group)
    try:
        second = sentinel_engine(database, group)
        try:
            yield first, second
        finally:
            second.close()
    finally:
        first.close()


def test_failover_and_failback_under_load(
    fluxa_ctx: Context,
    group: SentinelGroup,
    engines: tuple[Engine, Engine],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="fluxa_django.cache")
    database = fluxa_ctx.engine.mysql().database
    engine, other = engines
    assert engine.redis().describe == f"sentinel {MASTER_NAME}/0"
    ctx = engine.new_context()
    category = new_category(ctx)
    made_products: list[ProductEntity] = [
        new_product(ctx, category, f"Product {i}") for i in range(PRODUCTS)
    ]
    made_users: list[UserEntity] = []
    for i in range(USERS):
        user = U.new(ctx)
        user.name = f"{user.id}:0"
        user.email = f"user{i}@example.com"
        made_users.append(user)
    ctx.flush()
    for product in made_products:
        product.description = f"{product.id}:0"
    ctx.flush()
    load = Load(engine, other, [u.id for u in made_users], [p.id for p in made_products])
    load.start()
    try:
        failover, failover_figures = run_switch(load, group, "failover")
        # the old master is a replica in sync: the sentinels may promote it back
        group.wait_ready(timeout=60)
        failback, failback_figures = run_switch(load, group, "failback")
        after = load.phase
        time.sleep(1.0)
    finally:
        load.finish()
    for phase in (failover, failback, after):
        assert phase.read_errors == [], f"{phase.name}: reads failed: {phase.read_errors[:5]}"
        assert phase.stale == [], f"{phase.name}: stale reads: {phase.stale[:10]}"
    for phase in (failover, failback):
        assert phase.last_flush_error < RECOVERY_BOUND, f"{phase.name}: {phase.flush_errors}"
        assert phase.flushes > 0
        # every process follows the sentinels' announcement, long before the old master
        # stops answering (the sentinels turn it into a replica ~10 s later)
        assert phase.pool_switched < phase.sentinels_agree + 1.0, phase
        assert phase.pool_switched < phase.old_master_demoted - 5.0, phase
    assert after.flush_errors == [], "flushes fail once the group settled"
    assert after.reads > 0 and after.flushes > 0
    assert failback_figures["old_master_run_id_kept"], "the failback reuses a live server"
    compared = check_every_tier(database, engine, load, group)
    # ids: unique, and exactly the flushed new rows exist
    assert len(set(load.allocated)) == len(load.allocated), "an id was handed out twice"
    truth = mysql_texts(database)
    all_users = {i for kind, i in truth if kind == "user"}
    assert set(load.created) <= all_users
    assert all_users - set(load.users) == set(load.created)
    lines = []
    for figures, name in ((failover_figures, "failover"), (failback_figures, "failback")):
        lines.append(
            f"sentinel {name}: {figures['reads']} reads (0 failed, 0 stale), "
            f"{figures['flushes']} flushes, {figures['flush_errors']} refused "
            f"(last {figures['last_flush_error_s']} s after SENTINEL FAILOVER); sentinels "
            f"agreed after {figures['sentinels_agree_s']} s, old master a replica after "
            f"{figures['old_master_demoted_s']} s, both engines on the new master after "
            f"{figures['pools_switched_s']} s"
        )
    lines.append(f"sentinel: {compared} rows equal MySQL in every tier after the switches")
    record(
        "sentinel",
        lines,
        {"failover": failover_figures, "failback": failback_figures, "rows": compared},
    )


def test_a_process_on_the_new_master_and_one_that_was_on_the_old_agree(
    fluxa_ctx: Context, group: SentinelGroup, engines: tuple[Engine, Engine]
) -> None:
    """After the failover, before the sentinels demote the old master (it keeps
    answering, as a master, for ~10 s): a process started now reaches the new master
    and caches rows there; the processes that were running must follow the sentinels'
    announcement at once, or their writes would go to the old master and leave the new
    master's entries stale for their whole TTL (an hour). Their local tiers must hear
    the new master's invalidations too."""
    database = fluxa_ctx.engine.mysql().database
    running, _ = engines
    ctx = running.new_context()
    category = new_category(ctx)
    made = [new_product(ctx, category, f"Product {i}") for i in range(10)]
    for product in made:
        product.description = f"{product.id}:0"
    ctx.flush()
    ids = [p.id for p in made]
    assert [p.description for p in P.get_by_ids(running.new_context(), ids)] == [
        f"{i}:0" for i in ids
    ]  # cached in the running process's local tier and on the old master
    old_master = group.master_port()
    new_master = group.replica_port()
    group.failover()
    agreed = wait_until(lambda: group.agreed_master() == new_master, 30)
    assert group.role(old_master) == "master", "the old master still answers as a master"
    started = sentinel_engine(database, group)  # a process started now
    try:
        assert started.redis().epoch == expected_epoch(group, new_master)
        assert [p.description for p in P.get_by_ids(started.new_context(), ids)] == [
            f"{i}:0" for i in ids
        ]  # cached on the new master
        ctx = running.new_context()
        for product in P.get_by_ids(ctx, ids):
            product.description = f"{product.id}:1"
        ctx.flush()  # the running process writes: its invalidations must reach the new master
        assert running.redis().epoch == expected_epoch(group, new_master)
        assert group.role(old_master) == "master", "the old master was not demoted yet"
        expected = [f"{i}:1" for i in ids]
        for reader in (running, started):
            assert [p.description for p in P.get_by_ids(reader.new_context(), ids)] == expected
        # the started process writes: the running process's local tier hears of it
        ctx = started.new_context()
        for product in P.get_by_ids(ctx, ids):
            product.description = f"{product.id}:2"
        ctx.flush()
        expected = [f"{i}:2" for i in ids]
        heard = wait_until(
            lambda: [p.description for p in P.get_by_ids(running.new_context(), ids)] == expected,
            LOCAL_BOUND,
        )
        wait_until(lambda: group.role(old_master) == "slave", 60)
        wait_until(lambda: group.replica_in_sync(old_master, new_master), 30)
        for reader in (running, started):
            assert [p.description for p in P.get_by_ids(reader.new_context(), ids)] == expected
        truth = mysql_texts(database)
        assert [truth[("product", i)] for i in ids] == expected
    finally:
        started.close()
    record(
        "sentinel-processes",
        [
            f"sentinel: a process started on the new master {agreed:.2f} s after SENTINEL "
            f"FAILOVER and one that was running agree (the running one heard the other's "
            f"write after {heard * 1000:.0f} ms), before the old master is demoted"
        ],
        {"agreed_s": agreed, "heard_ms": heard * 1000},
    )
