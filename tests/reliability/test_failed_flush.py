"""A flush that fails part-way changes nothing in MySQL or in any cache tier.

(a) a duplicate key in a later statement of the transaction (also inside Django's
``atomic()``), (b) the flush's
MySQL connection killed between two statements, (c) Redis unreachable before
the flush. In every case the entities stay dirty and a second flush works.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import MySQLdb
import pytest
import redis
from django.db import transaction

from fluxa_django import Context, Engine, IntegrityError, OperationalError, PoolError
from fluxa_django.backends.localcache import MISSING
from fluxa_django.runtime import codec
from fluxa_django.runtime.observe import OBSERVERS
from fluxa_django.runtime.tiers import Tiers
from tests.entities import Status
from tests.generated import (
    CategoryEntityProvider,
    ProductEntityProvider,
    UserEntityProvider,
)
from tests.reliability.worker import build_engine
from tests.services import REDIS_ADDRESS, REDIS_TEST_DB

WRITES = {"insert", "update", "delete"}
Providers = (CategoryEntityProvider, ProductEntityProvider, UserEntityProvider)


class Rows:
    """The hot rows of one test: a category, three products, a user."""

    def __init__(self, ctx: Context) -> None:
        category = CategoryEntityProvider.new(ctx)
        category.name = "Cat A"
        self.category = category.id
        self.products: list[int] = []
        for name in ("P1", "P2", "P3"):
            product = ProductEntityProvider.new(ctx)
            product.name = name
            product.category = category
            product.status = Status.ACTIVE
            product.price = 10.0
            self.products.append(product.id)
        user = UserEntityProvider.new(ctx)
        user.name = "Ann"
        user.email = "ann@example.com"
        user.age = 40
        self.user = user.id
        ctx.flush()


def connect(engine: Engine) -> Any:
    """A raw connection of our own to the test database (reads MySQL directly)."""
    uri = engine.mysql(ProductEntityProvider.mysql_pool).uri
    return MySQLdb.connect(**uri.connect_kwargs(), charset="utf8mb4", autocommit=True)


def mysql_state(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    conn = connect(engine)
    try:
        cur = conn.cursor()
        out: dict[str, list[tuple[Any, ...]]] = {}
        for provider in Providers:
            cur.execute(f"{provider.select_sql} ORDER BY `id`")
            out[provider.table] = [tuple(row) for row in cur.fetchall()]
        return out
    finally:
        conn.close()


def tiers_of(engine: Engine, provider: Any) -> Tiers:
    tiers = provider.tiers(engine)
    assert isinstance(tiers, Tiers)
    return tiers


def redis_keys(engine: Engine, rows: Rows) -> list[str]:
    products = tiers_of(engine, ProductEntityProvider)
    users = tiers_of(engine, UserEntityProvider)
    keys = [products.key(i) for i in rows.products] + [users.key(rows.user)]
    for name in ("P1", "P2", "P3"):
        keys.append(products.unique_key("Name", codec.unique_token((name,))))
    return keys


def redis_state(engine: Engine, keys: list[str]) -> dict[str, bytes | None]:
    values: list[bytes | None] = tiers_of(engine, ProductEntityProvider).client.mget(keys)  # type: ignore[assignment]
    return dict(zip(keys, values, strict=True))


def local_state(engine: Engine, rows: Rows) -> dict[int, Any]:
    tiers = tiers_of(engine, ProductEntityProvider)
    assert tiers.local is not None
    now = time.monotonic()
    return {i: tiers.local.get_row((tiers.prefix, i), now) for i in rows.products}


def warm(engine: Engine, rows: Rows) -> None:
    """Fill the local and Redis tiers (and the cached unique index) with the current rows."""
    products = tiers_of(engine, ProductEntityProvider)
    assert products.bus is not None and products.bus.ensure_started(wait=5.0)
    for id_ in rows.products:
        ProductEntityProvider.must_get_by_id(engine.new_context(), id_)
    UserEntityProvider.must_get_by_id(engine.new_context(), rows.user)
    for name in ("P1", "P2", "P3"):
        assert ProductEntityProvider.get_by_unique_index_name(engine.new_context(), name)
    assert all(v is not MISSING for v in local_state(engine, rows).values()), "local tier warm"
    cached = redis_state(engine, redis_keys(engine, rows))
    assert all(value is not None for value in cached.values()), f"redis tier warm: {cached}"


def assert_tiers_unchanged(
    engine: Engine,
    rows: Rows,
    mysql_before: dict[str, list[tuple[Any, ...]]],
    redis_before: dict[str, bytes | None],
) -> None:
    """No tier holds anything but the rows MySQL holds; fresh reads return the old rows."""
    assert mysql_state(engine) == mysql_before, "MySQL changed"
    old = {(table, row[0]): row for table, rows_ in mysql_before.items() for row in rows_}
    product, user, category = "ProductEntity", "UserEntity", "CategoryEntity"
    for key, value in redis_state(engine, list(redis_before)).items():
        assert value is None or value == redis_before[key], f"redis {key} holds {value!r}"
    for id_, local in local_state(engine, rows).items():
        assert local is MISSING or local == old[product, id_], f"local tier of {id_}: {local}"
    ctx = engine.new_context()
    for id_ in rows.products:
        assert ProductEntityProvider.must_get_by_id(ctx, id_)._row == old[product, id_]
    assert UserEntityProvider.must_get_by_id(ctx, rows.user)._row == old[user, rows.user]
    category_row = CategoryEntityProvider.must_get_by_id(ctx, rows.category)._row
    assert category_row == old[category, rows.category]
    for name, id_ in zip(("P1", "P2", "P3"), rows.products, strict=True):
        found = ProductEntityProvider.get_by_unique_index_name(engine.new_context(), name)
        assert found is not None and found.id == id_, f"unique index {name!r}: {found!r}"
    # Without the local rows, a read goes to Redis (refilled from MySQL when the flush
    # dropped the key): it must hold the old row.
    products = tiers_of(engine, ProductEntityProvider)
    assert products.local is not None
    products.local.invalidate([(products.prefix, i) for i in rows.products])
    for id_ in rows.products:
        assert (
            ProductEntityProvider.must_get_by_id(engine.new_context(), id_)._row
            == old[product, id_]
        )
        cached = products.client.get(products.key(id_))
        assert isinstance(cached, bytes), f"redis tier of product {id_}: {cached!r}"
        assert codec.decode_row(products.stamp, cached) == old[product, id_]


@contextlib.contextmanager
def observing(observer: Callable[[str, str], None]) -> Iterator[None]:
    OBSERVERS.append(observer)
    try:
        yield
    finally:
        OBSERVERS.remove(observer)


def change_everything(ctx: Context, rows: Rows) -> list[Any]:
    """One update per table, in the flush's statement order: category, products, user."""
    category = CategoryEntityProvider.must_get_by_id(ctx, rows.category)
    category.name = "Cat A renamed"
    first = ProductEntityProvider.must_get_by_id(ctx, rows.products[0])
    first.price = 99.5
    second = ProductEntityProvider.must_get_by_id(ctx, rows.products[1])
    second.name = "P2 renamed"
    user = UserEntityProvider.must_get_by_id(ctx, rows.user)
    user.name = "Bob"
    return [category, first, second, user]


def assert_second_flush_works(
    engine: Engine, ctx: Context, rows: Rows, entities: list[Any]
) -> None:
    ctx.flush()
    assert not any(e.is_dirty for e in entities)
    state = mysql_state(engine)
    assert state["CategoryEntity"][0][1] == "Cat A renamed"
    assert [r[1] for r in state["ProductEntity"]] == ["P1", "P2 renamed", "P3"]
    assert float(state["ProductEntity"][0][2]) == 99.5
    assert state["UserEntity"][0][1] == "Bob"
    fresh = engine.new_context()
    assert ProductEntityProvider.must_get_by_id(fresh, rows.products[0]).price == 99.5
    assert ProductEntityProvider.must_get_by_id(fresh, rows.products[1]).name == "P2 renamed"
    assert UserEntityProvider.must_get_by_id(fresh, rows.user).name == "Bob"
    lookup = ProductEntityProvider.get_by_unique_index_name
    renamed = lookup(engine.new_context(), "P2 renamed")
    assert renamed is not None and renamed.id == rows.products[1]
    assert lookup(engine.new_context(), "P2") is None


# -- (a) duplicate key ----------------------------------------------------------------------


def test_duplicate_key_after_successful_statements_changes_nothing(
    fluxa_engine: Engine, fluxa_ctx: Context
) -> None:
    engine = fluxa_engine
    rows = Rows(fluxa_ctx)
    warm(engine, rows)
    mysql_before = mysql_state(engine)
    keys = redis_keys(engine, rows)
    redis_before = redis_state(engine, keys)

    ctx = engine.new_context()
    entities = change_everything(ctx, rows)
    entities[2].name = "P3"  # the unique index Name: the third statement fails
    during: list[tuple[str, dict[str, bytes | None]]] = []

    def observer(source: str, operation: str) -> None:
        if source == "mysql" and operation in WRITES:
            during.append((operation, redis_state(engine, keys)))

    with observing(observer), pytest.raises(IntegrityError, match="Duplicate entry"):
        ctx.flush()

    assert [op for op, _ in during] == ["update", "update", "update"], (
        "category, first product, then the failing product update"
    )
    # keys: products 1-3, the user, unique values P1-P3. Product 3 is not written.
    marked = [keys[0], keys[1], keys[3]]
    for operation, values in during:
        for key in marked:
            assert values[key] == codec.WRITING, f"{key} during the {operation}: {values[key]!r}"
        assert values[keys[2]] == redis_before[keys[2]]
        for key in keys[4:]:  # the unique values of the old and new rows are dropped
            assert values[key] is None, f"{key} during the {operation}: {values[key]!r}"
    assert all(e.is_dirty for e in entities), "the entities stay dirty"
    assert_tiers_unchanged(engine, rows, mysql_before, redis_before)

    entities[2].name = "P2 renamed"  # corrected
    assert_second_flush_works(engine, ctx, rows, entities)


def test_duplicate_key_inside_atomic_leaves_no_partial_flush(
    fluxa_engine: Engine, fluxa_ctx: Context
) -> None:
    """Inside Django's ``atomic()`` the flush joins Django's transaction: when it fails
    part-way and the block still commits (the caller handled the error), the statements
    that ran before the failure must not be committed with it. Django's own ORM marks
    the block for rollback in that case; a savepoint around the flush would also do."""
    engine = fluxa_engine
    rows = Rows(fluxa_ctx)
    warm(engine, rows)
    mysql_before = mysql_state(engine)

    ctx = engine.new_context()
    entities = change_everything(ctx, rows)
    entities[2].name = "P3"  # the third statement fails
    with transaction.atomic():
        with pytest.raises(IntegrityError, match="Duplicate entry"):
            ctx.flush()
    assert all(e.is_dirty for e in entities), "the entities stay dirty"
    after = mysql_state(engine)
    changed = [
        f"{table}: {old} -> {new}"
        for table in after
        for old, new in zip(mysql_before[table], after[table], strict=True)
        if old != new
    ]
    assert not changed, (
        "a flush that failed inside atomic() left its earlier statements in Django's "
        "transaction, which then committed them: " + "; ".join(changed)
    )
    local = local_state(engine, rows)
    product_rows = {row[0]: row for row in after["ProductEntity"]}
    stale = {i: v for i, v in local.items() if v is not MISSING and v != product_rows[i]}
    assert not stale, f"local tier rows differ from MySQL: {stale}"

    entities[2].name = "P2 renamed"  # corrected, outside atomic(): applies everything
    assert_second_flush_works(engine, ctx, rows, entities)


# -- (b) killed connection --------------------------------------------------------------------


def in_transaction(engine: Engine, connection_id: int) -> bool:
    """True when the connection has an open InnoDB transaction."""
    conn = connect(engine)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = %s",
            (connection_id,),
        )
        return bool(cur.fetchone()[0])
    finally:
        conn.close()


def kill(engine: Engine, connection_id: int) -> None:
    """KILL a connection and wait until the server has rolled it back and dropped it."""
    conn = connect(engine)
    try:
        cur = conn.cursor()
        cur.execute(f"KILL {connection_id:d}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s",
                (connection_id,),
            )
            if cur.fetchone()[0] == 0:
                return
            time.sleep(0.01)
        pytest.fail(f"connection {connection_id} still listed 10 s after KILL")
    finally:
        conn.close()


def test_killed_connection_mid_flush_changes_nothing(
    fluxa_engine: Engine, fluxa_ctx: Context
) -> None:
    rows = Rows(fluxa_ctx)
    database = fluxa_engine.mysql(ProductEntityProvider.mysql_pool).database
    engine = build_engine(database, REDIS_ADDRESS, REDIS_TEST_DB)
    try:
        warm(engine, rows)
        mysql_before = mysql_state(engine)
        redis_before = redis_state(engine, redis_keys(engine, rows))

        ctx = engine.new_context()
        entities = change_everything(ctx, rows)
        # The pool holds one idle connection (everything ran one after the other): the
        # flush takes the connection this query returns to it.
        found = engine.mysql().query_row("SELECT CONNECTION_ID()")
        assert found is not None
        flush_connection = int(found[0])
        writes: list[str] = []
        killed: list[int] = []

        def observer(source: str, operation: str) -> None:
            if source == "mysql" and operation in WRITES:
                writes.append(operation)
                if len(writes) == 2:  # the category UPDATE ran; kill before the product's
                    assert in_transaction(engine, flush_connection), "not the flush's connection"
                    kill(engine, flush_connection)
                    killed.append(flush_connection)

        with observing(observer), pytest.raises(OperationalError):
            ctx.flush()

        assert killed and writes == ["update", "update"], writes
        assert all(e.is_dirty for e in entities), "the entities stay dirty"
        assert_tiers_unchanged(engine, rows, mysql_before, redis_before)
        # The same engine flushes again: the pool dropped the dead connection.
        assert_second_flush_works(engine, ctx, rows, entities)
    finally:
        engine.close()


# -- (c) Redis unreachable ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def private_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A throw-away redis-server on ``port`` (no persistence), stopped afterwards."""
    proc = subprocess.Popen(
        ["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"redis-server on port {port} did not start")
                time.sleep(0.02)
        client.close()
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=10)


def test_redis_unreachable_flush_is_refused_and_writes_nothing(
    fluxa_engine: Engine, fluxa_ctx: Context
) -> None:
    rows = Rows(fluxa_ctx)
    database = fluxa_engine.mysql(ProductEntityProvider.mysql_pool).database
    port = free_port()
    with private_redis(port) as server:
        engine = build_engine(database, f"127.0.0.1:{port}", 0)
    try:
        mysql_before = mysql_state(engine)
        ctx = engine.new_context()
        entities = change_everything(ctx, rows)
        assert server.returncode is not None, "the private redis-server is stopped"
        writes: list[str] = []

        def observer(source: str, operation: str) -> None:
            if source == "mysql":
                writes.append(operation)

        with observing(observer), pytest.raises(PoolError, match="flush refused"):
            ctx.flush()

        assert writes == [], "no SQL at all"
        assert mysql_state(engine) == mysql_before
        assert all(e.is_dirty for e in entities), "the entities stay dirty"
        with private_redis(port):  # Redis is back: the same changes flush
            assert_second_flush_works(engine, ctx, rows, entities)
    finally:
        engine.close()
