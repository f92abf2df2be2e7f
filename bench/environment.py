"""Services, the ``fluxa_bench`` database, the fluxa engine, generated code and test data."""

from __future__ import annotations

import datetime
import importlib
import random
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, cast

import MySQLdb
import redis

from bench import settings
from bench.fluxa_types import BenchItemProvider, BenchPlainProvider, BenchSearchItemProvider
from fluxa_django import Engine, Registry
from fluxa_django.codegen import generate
from fluxa_django.migrate import apply_alters, plan_mysql
from fluxa_django.migrate.search import apply_search, plan_search
from fluxa_django.runtime.search_index import SearchIndex, for_schema
from fluxa_django.testing.plugin import clear_redis_db

REPO = Path(__file__).resolve().parent.parent
GENERATED_ROOT = REPO / ".fluxa" / "bench_generated"
GENERATED_PACKAGE = "bench_fluxa"

ROWS = 10_000  # rows in the table for the read cases (and inserted by the insert case)

TABLE = "BenchItemEntity"  # no cache tier: the MySQL cases
CACHED_TABLE = "BenchCachedItemEntity"  # Meta.redis_cache: the Redis-hit case
LOCAL_TABLE = "BenchLocalItemEntity"  # Meta.local_cache + redis_cache: the local-hit case
SEARCH_TABLE = "BenchSearchItemEntity"  # + Meta.redis_search: the Redis Search case
TABLES = (TABLE, CACHED_TABLE, LOCAL_TABLE, SEARCH_TABLE)
COLUMNS = "`id`,`name`,`price`,`quantity`,`active`,`created_at`,`category`"
PLAIN_TABLE = "BenchPlainEntity"  # plain columns only: the insert-flush floor case
PLAIN_COLUMNS = "`id`,`name`,`email`,`category`,`score`,`seen_at`,`active`"


def select_sql(table: str, columns: str = COLUMNS) -> str:
    return f"SELECT {columns} FROM `{table}`"


def by_id_sql(table: str, columns: str = COLUMNS) -> str:
    return f"{select_sql(table, columns)} WHERE `id` = %s"


def insert_sql(table: str, columns: str = COLUMNS) -> str:
    marks = ",".join(["%s"] * (columns.count(",") + 1))
    return f"INSERT INTO `{table}` ({columns}) VALUES ({marks})"


SELECT_SQL = select_sql(TABLE)
BY_ID_SQL = by_id_sql(TABLE)
INSERT_SQL = insert_sql(TABLE)
UPDATE_PRICE_SQL = f"UPDATE `{TABLE}` SET `price`=%s WHERE `id`=%s"
PLAIN_INSERT_SQL = insert_sql(PLAIN_TABLE, PLAIN_COLUMNS)


class ServiceUnavailable(RuntimeError):
    """MySQL or Redis is not reachable: the benchmark cannot run."""


class Record(NamedTuple):
    """One row of test data, in every form a contender needs it."""

    id: int
    name: str
    price: float
    price_decimal: Decimal
    quantity: int
    active: bool
    created_at: datetime.datetime
    category: int

    @property
    def raw_row(self) -> tuple[int, str, float, int, bool, datetime.datetime, int]:
        return (
            self.id,
            self.name,
            self.price,
            self.quantity,
            self.active,
            self.created_at,
            self.category,
        )


def make_records(count: int = ROWS, seed: int = 20240601) -> list[Record]:
    """Deterministic rows: ids 1..count, names of 20-60 characters, prices with cents."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz "
    base = datetime.datetime(2024, 1, 1)
    records: list[Record] = []
    for id_ in range(1, count + 1):
        cents = rng.randrange(100, 1_000_000)
        name = f"item {id_:05d} " + "".join(rng.choices(letters, k=rng.randrange(10, 50)))
        records.append(
            Record(
                id=id_,
                name=name,
                price=cents / 100,
                price_decimal=Decimal(cents).scaleb(-2),
                quantity=rng.randrange(0, 100_000),
                active=rng.random() < 0.7,
                created_at=base + datetime.timedelta(seconds=rng.randrange(0, 30_000_000)),
                category=rng.randrange(1, 200),
            )
        )
    return records


class PlainRecord(NamedTuple):
    """One row of ``BenchPlainEntity`` (in column order: ``raw_row`` is the tuple itself)."""

    id: int
    name: str
    email: str
    category: int
    score: float
    seen_at: datetime.datetime
    active: bool


def make_plain_records(count: int = ROWS, seed: int = 20240602) -> list[PlainRecord]:
    """Deterministic rows: ids 1..count, two strings of 15-60 characters, any double."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    base = datetime.datetime(2024, 1, 1)
    return [
        PlainRecord(
            id=id_,
            name=f"user {id_:05d} " + "".join(rng.choices(letters, k=rng.randrange(5, 45))),
            email="".join(rng.choices(letters, k=rng.randrange(5, 30))) + f"{id_}@example.com",
            category=rng.randrange(0, 65_536),
            score=rng.uniform(-1e6, 1e6),
            seen_at=base + datetime.timedelta(seconds=rng.randrange(0, 30_000_000)),
            active=rng.random() < 0.7,
        )
        for id_ in range(1, count + 1)
    ]


# -- services -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerVersions:
    mysql: str
    redis: str


def _redis_client() -> redis.Redis:
    host, _, port = settings.REDIS_ADDRESS.rpartition(":")
    return redis.Redis(host=host, port=int(port), db=settings.REDIS_DB, socket_timeout=5)


def check_services() -> ServerVersions:
    """Versions of MySQL and Redis; raises ``ServiceUnavailable`` naming the missing one."""
    try:
        conn = MySQLdb.connect(**settings.mysql_connect_kwargs(None))
    except MySQLdb.Error as exc:
        raise ServiceUnavailable(
            f"MySQL at {settings.MYSQL_HOST}:{settings.MYSQL_PORT} is not reachable ({exc}); "
            "start it with `make services`"
        ) from None
    try:
        cur = conn.cursor()
        cur.execute("SELECT VERSION()")
        mysql_version = str(cur.fetchone()[0])
    finally:
        conn.close()
    client = _redis_client()
    try:
        info: dict[str, Any] = client.info("server")
    except redis.RedisError as exc:
        raise ServiceUnavailable(
            f"Redis at {settings.REDIS_ADDRESS} is not reachable ({exc}); "
            "start it with `make services`"
        ) from None
    finally:
        client.close()
    return ServerVersions(mysql_version, str(info.get("redis_version", "?")))


def create_database() -> None:
    """A fresh, empty ``fluxa_bench`` (dropped first if a previous run left it)."""
    conn = MySQLdb.connect(**settings.mysql_connect_kwargs(None))
    try:
        cur = conn.cursor()
        cur.execute(f"DROP DATABASE IF EXISTS `{settings.DATABASE}`")
        cur.execute(f"CREATE DATABASE `{settings.DATABASE}` CHARACTER SET utf8mb4")
    finally:
        conn.close()


def drop_database() -> None:
    conn = MySQLdb.connect(**settings.mysql_connect_kwargs(None))
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{settings.DATABASE}`")
    finally:
        conn.close()


def flush_redis() -> None:
    """Empty Redis database 15 (the benchmark's; id counters live there)."""
    client = _redis_client()
    try:
        clear_redis_db(client)
    finally:
        client.close()


# Where the run notes (in its own database 15) the key prefix of its search index on
# database 0, so that the next run can remove what a killed run left there.
SEARCH_MARKER = "fluxa-bench:search-base"


def _glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def drop_search_leftovers() -> None:
    """Drop the search index and keys a killed earlier run left on database 0 (never FLUSHDB:
    on a RediSearch server that drops every index of the server)."""
    client = _redis_client()
    try:
        marker = client.get(SEARCH_MARKER)
    finally:
        client.close()
    if not marker:
        return
    base = marker.decode() if isinstance(marker, bytes) else str(marker)
    host, _, port = settings.REDIS_ADDRESS.rpartition(":")
    search = redis.Redis(host=host, port=int(port), db=settings.SEARCH_REDIS_DB, socket_timeout=5)
    try:
        for name in search.execute_command("FT._LIST"):  # type: ignore[no-untyped-call]
            if name.decode().startswith(base + "i:"):
                search.execute_command("FT.DROPINDEX", name)  # type: ignore[no-untyped-call]
        batch = list(search.scan_iter(match=_glob(base) + "*", count=1000))
        for start in range(0, len(batch), 1000):
            search.delete(*batch[start : start + 1000])
    finally:
        search.close()


# -- fluxa ------------------------------------------------------------------------------------


def build_registry() -> Registry:
    from bench.entities import (
        BenchCachedItemEntity,
        BenchItemEntity,
        BenchLocalItemEntity,
        BenchPlainEntity,
        BenchSearchItemEntity,
    )

    registry = Registry()
    registry.set_option("app_name", settings.APP_NAME)
    registry.register_mysql(settings.MYSQL_URI)
    registry.register_redis(settings.REDIS_ADDRESS, settings.REDIS_DB)
    registry.register_redis(
        settings.REDIS_ADDRESS, settings.SEARCH_REDIS_DB, code=settings.SEARCH_POOL
    )
    registry.register_local_cache(limit=settings.LOCAL_CACHE_LIMIT)
    registry.register_entity(
        BenchItemEntity,
        BenchCachedItemEntity,
        BenchLocalItemEntity,
        BenchSearchItemEntity,
        BenchPlainEntity,
    )
    return registry


def build_engine(registry: Registry) -> Engine:
    """Validate the registry (connects to both pools) and create the tables."""
    engine = registry.validate()
    apply_alters(engine, plan_mysql(engine).alters)
    return engine


def search_index(engine: Engine) -> SearchIndex:
    """The Redis Search index of ``BenchSearchItemEntity`` (alias and document keys)."""
    return for_schema(engine, engine.schema(SEARCH_TABLE))


def build_search_index(engine: Engine) -> None:
    """Build the search index from the seeded rows (``fluxa_migrate``'s path: create,
    back-fill from MySQL, check, point the alias at it), noting it for the next run."""
    index = search_index(engine)
    client = engine.redis().client
    client.set(SEARCH_MARKER, index.base)
    apply_search(engine, plan_search(engine))


@dataclass(frozen=True)
class Providers:
    """The generated provider singletons, one per bench entity."""

    item: BenchItemProvider  # BenchItemEntity (no cache)
    cached: BenchItemProvider  # BenchCachedItemEntity (Redis cache)
    local: BenchItemProvider  # BenchLocalItemEntity (local + Redis cache)
    plain: BenchPlainProvider  # BenchPlainEntity (plain columns, no cache)
    search: BenchSearchItemProvider  # BenchSearchItemEntity (Redis cache + Redis Search)


def load_providers(registry: Registry) -> Providers:
    """Generate the typed package into ``.fluxa/bench_generated/`` and import its providers."""
    generate(registry, GENERATED_ROOT / GENERATED_PACKAGE)
    root = str(GENERATED_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    importlib.invalidate_caches()
    module = importlib.import_module(GENERATED_PACKAGE)
    found = {
        table: cast(BenchItemProvider, getattr(module, f"{table}Provider")) for table in TABLES
    }
    for table, provider in found.items():
        if provider.select_sql != select_sql(table) or provider.by_id_sql != by_id_sql(table):
            raise RuntimeError(
                "the generated provider's SQL differs from the baseline's; update bench/environment.py:\n"
                f"  generated: {provider.by_id_sql}\n  baseline:  {by_id_sql(table)}"
            )
    plain = cast(BenchPlainProvider, getattr(module, f"{PLAIN_TABLE}Provider"))
    if plain.insert_sql + plain.insert_row_sql != PLAIN_INSERT_SQL:
        raise RuntimeError(
            "the generated plain provider's INSERT differs from the baseline's; update "
            f"bench/environment.py:\n  generated: {plain.insert_sql + plain.insert_row_sql}\n"
            f"  baseline:  {PLAIN_INSERT_SQL}"
        )
    search = cast(BenchSearchItemProvider, found[SEARCH_TABLE])
    return Providers(found[TABLE], found[CACHED_TABLE], found[LOCAL_TABLE], plain, search)


# -- the run's state ------------------------------------------------------------------------------


def shared_connection(engine: Engine) -> Any:
    """The raw mysqlclient connection of fluxa's pool, for the raw baseline.

    The pool hands the connection back to its idle list when the block ends, so
    fluxa (one thread, one connection in use at a time) keeps reusing it: the raw
    baseline and fluxa talk to the same MySQL server thread. On a small VM the
    round-trip latency differs from one connection (server thread) to another by
    up to 3x, which would otherwise bias the fluxa/raw ratios.
    """
    with engine.mysql().connection() as conn:
        return conn


def connection_id(conn: Any) -> int:
    cur = conn.cursor()
    try:
        cur.execute("SELECT CONNECTION_ID()")
        return int(cur.fetchone()[0])
    finally:
        cur.close()


@dataclass
class BenchEnv:
    """Everything the cases share: one engine, the raw baseline's connection, the data."""

    engine: Engine
    provider: BenchItemProvider  # BenchItemEntity: no cache tier
    raw: Any  # MySQLdb connection of fluxa's pool (autocommit on)
    records: list[Record]
    versions: ServerVersions
    cached_provider: BenchItemProvider  # BenchCachedItemEntity: Redis cache
    local_provider: BenchItemProvider  # BenchLocalItemEntity: local + Redis cache
    plain_provider: BenchPlainProvider  # BenchPlainEntity: plain columns, no cache
    plain_records: list[PlainRecord]
    search_provider: BenchSearchItemProvider  # BenchSearchItemEntity: Redis cache + Search

    @property
    def redis_client(self) -> redis.Redis:
        """The redis-py client of fluxa's default Redis pool (database 15), for raw baselines."""
        return self.engine.redis().client

    @property
    def search_client(self) -> redis.Redis:
        """The redis-py client of fluxa's search pool (database 0), for raw baselines."""
        return self.engine.redis(settings.SEARCH_POOL).client

    def share_connection(self) -> None:
        """(Re)borrow fluxa's pooled connection as ``raw`` and check fluxa still uses it."""
        self.raw = shared_connection(self.engine)
        row = self.engine.mysql().query_row("SELECT CONNECTION_ID()")
        assert row is not None
        if int(row[0]) != connection_id(self.raw):
            raise RuntimeError(
                "fluxa's pool did not reuse its idle connection; see shared_connection()"
            )

    def execute(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        cur = self.raw.cursor()
        try:
            cur.execute(sql, args)
            return list(cur.fetchall())
        finally:
            cur.close()

    def scalar(self, sql: str, args: Any = None) -> Any:
        return self.execute(sql, args)[0][0]

    def truncate(self, table: str = TABLE) -> None:
        self.execute(f"TRUNCATE TABLE `{table}`")

    def seed(self, table: str = TABLE) -> None:
        """The table holds exactly ``records`` (ids 1..ROWS), written with raw SQL.

        Raw SQL bypasses fluxa's caches: seed the cached tables only while Redis
        (and the local cache) hold nothing of them, as at set-up.
        """
        self.truncate(table)
        cur = self.raw.cursor()
        try:
            self.raw.begin()
            cur.executemany(insert_sql(table), [r.raw_row for r in self.records])
            self.raw.commit()
        finally:
            cur.close()
        count = int(self.scalar(f"SELECT COUNT(*) FROM `{table}`"))
        if count != len(self.records):
            raise RuntimeError(f"seeding wrote {count} rows, expected {len(self.records)}")


def open_env(versions: ServerVersions) -> BenchEnv:
    """Create the database and tables, empty Redis db 15, generate the providers, connect,
    seed, build the search index."""
    create_database()
    drop_search_leftovers()  # of a killed earlier run (its marker is in db 15)
    flush_redis()  # no id counters or cache entries of an earlier run
    registry = build_registry()
    engine = build_engine(registry)
    providers = load_providers(registry)
    env = BenchEnv(
        engine,
        providers.item,
        shared_connection(engine),
        make_records(),
        versions,
        cached_provider=providers.cached,
        local_provider=providers.local,
        plain_provider=providers.plain,
        plain_records=make_plain_records(),
        search_provider=providers.search,
    )
    env.share_connection()
    for table in TABLES:
        env.seed(table)
    build_search_index(engine)
    return env


def close_env(env: BenchEnv | None, keep_database: bool = False) -> None:
    """Close every connection (fluxa's pool, which holds the raw one; Django), drop the database."""
    from django.db import connections

    if env is not None:
        try:
            search_index(env.engine).drop()  # its index, alias, documents and counters
        finally:
            env.engine.close()
    else:
        drop_search_leftovers()
    connections.close_all()
    if not keep_database:
        drop_database()
    flush_redis()
