"""Redis Search under concurrency and crashes: rebuilds, reindex while writing, failures.

- a reindex that reads a row while a flush of it is between its counter and its
  commit never leaves the old row in the index (made deterministic);
- ``fluxa_reindex`` while writer threads update, soft-delete, restore, force-delete
  and insert rows ends with every document equal to its MySQL row, and no other;
- a reader searching continuously during rebuilds of 5,000 rows (the same
  definition, then a changed one built by another engine) always counts them all;
- ``fluxa_reindex`` interrupted after some batches resumes from its progress key;
- a document that fails to index stops the switch, names the key, and the next run
  builds a fresh index;
- a flush whose MySQL connection is killed (before or after it took the counters)
  changes no document;
- a flush is refused while the search pool is down; documents lost when it fails
  after the commit are logged, and fluxa_reindex repairs them.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError
from redis.backoff import NoBackoff
from redis.retry import Retry

from fluxa_django import (
    Context,
    Engine,
    Entity,
    OperationalError,
    RedisSearchQuery,
    Reference,
    Registry,
    field,
    int32,
    uint16,
    uint32,
)
from fluxa_django.errors import FluxaError, PoolError
from fluxa_django.migrate.search import apply_search, plan_search
from fluxa_django.runtime.observe import OBSERVERS
from fluxa_django.runtime.search_index import SearchIndex, document
from tests.entities import BookEntity as BookEntity_
from tests.entities import CategoryEntity, Genre, Tag
from tests.generated import BookEntity, BookEntityProvider
from tests.reliability.summary import LINES
from tests.services import REDIS_ADDRESS, REDIS_TEST_DB, mysql_uri

P = BookEntityProvider
S = P.fields_redis_search


def index_of(ctx: Context) -> SearchIndex:
    index = P._binding(ctx).search
    assert index is not None
    return index


def new_books(ctx: Context, count: int, start: int = 0) -> list[BookEntity]:
    """``count`` books in one flush (one multi-row INSERT, one document write per 500)."""
    made = []
    for i in range(start, start + count):
        book = P.new(ctx)
        book.title = f"Book {i}"
        book.pages = i % 1000
        book.price = (i % 300) / 4
        book.genre = (Genre.NOVEL, Genre.POETRY, Genre.ESSAY)[i % 3]
        book.tags = {Tag.NEW} if i % 2 else None
        book.summary = f"summary {i}" if i % 5 else None
        made.append(book)
    ctx.flush()
    return made


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def documents(index: SearchIndex) -> dict[int, dict[str, str]]:
    """Every document of the entity, by id."""
    client = index.redis.client
    keys = [text(k) for k in client.scan_iter(match=index.doc_prefix + "*", count=1000)]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    found: dict[int, dict[str, str]] = {}
    for key, fields in zip(keys, pipe.execute(), strict=True):
        found[int(key[len(index.doc_prefix) :])] = {text(k): text(v) for k, v in fields.items()}
    return found


def mysql_documents(engine: Engine) -> dict[int, dict[str, str]]:
    """The document every live row must have."""
    rows = engine.mysql().query(f"{P.select_sql} WHERE `fake_delete` = 0")
    out: dict[int, dict[str, str]] = {}
    for row in rows:
        pairs = document(P.search_spec, row)
        out[int(row[0])] = dict(zip(pairs[::2], pairs[1::2], strict=True))
    return out


def assert_index_equals_mysql(ctx: Context) -> int:
    """Every document equals the encoding of its live row, there is no other document,
    and the index (through the alias) counts them all. Returns the number of rows."""
    index = index_of(ctx)
    want = mysql_documents(ctx.engine)
    have = documents(index)
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    differ = sorted(i for i in set(want) & set(have) if want[i] != have[i])
    assert not (missing or extra or differ), (
        f"index != MySQL: {len(missing)} missing {missing[:5]}, {len(extra)} extra "
        f"{extra[:5]}, {len(differ)} differ "
        + "; ".join(f"{i}: {have[i]} != {want[i]}" for i in differ[:3])
    )
    assert P.count_in_redis(ctx, RedisSearchQuery()) == len(want)
    return len(want)


@contextlib.contextmanager
def observing(observer: Callable[[str, str], None]) -> Iterator[None]:
    OBSERVERS.append(observer)
    try:
        yield
    finally:
        OBSERVERS.remove(observer)


# -- a reindex racing with one flush, made deterministic ----------------------------------


def test_reindex_never_writes_a_row_read_before_a_flush_committed(
    fluxa_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flush took the row's counter (inside its transaction) and has not committed;
    the reindex reads that counter and the old row, then the flush commits and writes
    its document, then the reindex writes what it read: it must not win."""
    (book,) = new_books(fluxa_ctx, 1)
    index = index_of(fluxa_ctx)
    claimed, proceed = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def flush_new_title() -> None:
        try:
            ctx = fluxa_ctx.engine.new_context()
            P.must_get_by_id(ctx, book.id).title = "New title"
            ctx.flush()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    writer = threading.Thread(target=flush_new_title)
    claim, rows = SearchIndex.claim, SearchIndex._rows

    def paused_claim(self: SearchIndex, ids: Any) -> dict[int, str]:
        seen = claim(self, ids)
        if threading.current_thread() is writer:
            claimed.set()
            assert proceed.wait(10), "the reindex did not read"
        return seen

    def rows_then_flush_commits(self: SearchIndex, ids: Any) -> Any:
        found = rows(self, ids)
        if threading.current_thread() is not writer:
            proceed.set()
            writer.join(10)  # the flush commits and writes its document meanwhile
        return found

    monkeypatch.setattr(SearchIndex, "claim", paused_claim)
    monkeypatch.setattr(SearchIndex, "_rows", rows_then_flush_commits)
    writer.start()
    assert claimed.wait(10), "the flush did not reach its counter"
    skipped = index.sync([book.id])
    writer.join(10)
    assert not errors, errors
    assert index.redis.client.hget(index.doc_key(book.id), "title") == b"new title"
    assert skipped == [book.id], "the reindex saw the flush had written"
    assert_index_equals_mysql(fluxa_ctx)


# -- fluxa_reindex while the application writes ---------------------------------------------

ROWS = 3000


class Writer(threading.Thread):
    """Random flushes on the books until stopped: updates of searchable and other
    columns, soft deletes, updates of soft-deleted rows, restores, force deletes,
    inserts."""

    def __init__(self, engine: Engine, ids: list[int], seed: int) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.ids = ids
        self.random = random.Random(seed)
        self.stop = threading.Event()
        self.flushes = 0
        self.lost = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.step()
        except BaseException as exc:
            self.error = exc

    def step(self) -> None:
        rnd = self.random
        ctx = self.engine.new_context()
        for id_ in rnd.sample(self.ids, 3):
            book = P.get_by_id(ctx, id_)
            if book is None:
                continue
            action = rnd.random()
            if book.fake_delete:
                if action < 0.4:
                    book._set(P.fake_delete_index, 0)  # restore
                elif action < 0.7:
                    book.title = f"Hidden {rnd.randrange(10**6)}"  # stays out of the index
                else:
                    book.force_delete()
            elif action < 0.5:
                book.title = f"T{rnd.randrange(10**6)} x"
                book.pages = rnd.randrange(1000)
                book.summary = None if rnd.random() < 0.3 else f"s {rnd.randrange(100)}"
            elif action < 0.65:
                book.note = f"n{rnd.randrange(100)}"  # no searchable column but updated_at
            elif action < 0.8:
                book.delete()
            elif action < 0.9:
                book.force_delete()
            else:
                fresh = P.new(ctx)
                fresh.title = f"Inserted {rnd.randrange(10**6)}"
                self.ids.append(fresh.id)
        try:
            ctx.flush()
            self.flushes += 1
        except FluxaError:  # a lost race (deadlock): the rows stay as they were
            self.lost += 1


def test_reindex_under_concurrent_writes_ends_with_index_equal_to_mysql(
    fluxa_ctx: Context,
) -> None:
    engine = fluxa_ctx.engine
    ids = [b.id for b in new_books(fluxa_ctx, ROWS)]
    writers = [Writer(engine, ids, seed) for seed in (1, 2)]
    for writer in writers:
        writer.start()
    out = io.StringIO()
    started = time.perf_counter()
    try:
        time.sleep(0.1)
        call_command("fluxa_reindex", "BookEntity", stdout=out)
    finally:
        for writer in writers:
            writer.stop.set()
        for writer in writers:
            writer.join(30)
    took = time.perf_counter() - started
    for writer in writers:
        assert writer.error is None, writer.error
    flushes = sum(w.flushes for w in writers)
    assert flushes > 10, "the writers ran during the reindex"
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[search:search] BookEntity: build fxs:{"), lines[0]
    assert any(line.endswith("rows indexed (100%)") for line in lines), lines
    assert lines[-1] == "Reindexed 1 entity."
    live = assert_index_equals_mysql(fluxa_ctx)
    LINES.append(
        f"search reindex under writes: {ROWS} rows, {flushes} concurrent flushes "
        f"({sum(w.lost for w in writers)} lost races) in {took:.2f} s; "
        f"index == MySQL ({live} live rows)"
    )


# -- readers during rebuilds ---------------------------------------------------------------


class BookEntityV2(Entity):
    """tests.entities.BookEntity with ``balance`` sortable: another index definition."""

    id: uint32 = field(searchable=True)
    title: str = field(required=True, length=200, searchable=True, sortable=True)
    isbn: str = field(length=40, searchable="tag")
    summary: str | None = field(length="max", searchable="both")
    pages: uint16 = field(searchable=True, sortable=True)
    balance: int32 = field(searchable=True, sortable=True)
    price: float = field(decimal=(10, 2), searchable=True, sortable=True)
    rating: float | None = field(searchable=True)
    in_stock: bool = field(searchable=True)
    published: datetime.date | None = field(searchable=True, sortable=True)
    updated_at: datetime.datetime = field(searchable=True, sortable=True)
    genre: Genre = field(searchable=True)
    tags: set[Tag] | None = field(searchable=True)
    category: Reference[CategoryEntity] | None = field(searchable=True)
    note: str = field(length=50)
    fake_delete: bool

    class Meta:
        table = "BookEntity"
        redis_search = "search"
        redis_cache = True


def book_engine(session: Engine, book: type[Entity]) -> Engine:
    """Another process's engine on the same database and app_name (the same documents
    and alias), with ``book`` as its BookEntity definition (BookEntityV2: a deploy of new
    code)."""
    registry = Registry()
    registry.set_option("app_name", session.option("app_name"))
    registry.register_mysql(mysql_uri(session.mysql().database))
    registry.register_redis(REDIS_ADDRESS, REDIS_TEST_DB)
    registry.register_redis(REDIS_ADDRESS, 0, "search")
    registry.register_entity(CategoryEntity, book)
    return registry.validate()


class Reader(threading.Thread):
    """Counts the books through the alias as fast as it can."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.stop = threading.Event()
        self.counts: list[int] = []
        self.novels: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                ctx = self.engine.new_context()
                self.counts.append(P.count_in_redis(ctx, RedisSearchQuery()))
                novels = RedisSearchQuery().filter(S.genre.eq(Genre.NOVEL), S.pages.gte(0))
                self.novels.append(P.count_in_redis(ctx, novels))
        except BaseException as exc:
            self.error = exc


REBUILD_ROWS = 5000


def test_readers_never_see_a_partial_index_during_rebuilds(fluxa_ctx: Context) -> None:
    engine = fluxa_ctx.engine
    made = new_books(fluxa_ctx, REBUILD_ROWS)
    novels = sum(1 for b in made if b.genre == Genre.NOVEL)
    index = index_of(fluxa_ctx)
    first = index.current()
    reader = Reader(engine)
    reader.start()
    other = book_engine(engine, BookEntityV2)
    timings: list[float] = []
    try:
        while len(reader.counts) < 5:
            time.sleep(0.01)
        started = time.perf_counter()
        P.reindex_redis_search(fluxa_ctx)  # the same definition, rebuilt
        timings.append(time.perf_counter() - started)
        second = index.current()
        assert second is not None and second != first, "a new index behind the alias"

        plans = plan_search(other)
        assert [(p.entity, p.action, p.current) for p in plans] == [
            ("BookEntityV2", "rebuild", second)
        ]
        assert plans[0].index.rsplit(":", 2)[1] != second.rsplit(":", 2)[1], "a new name"
        started = time.perf_counter()
        assert apply_search(other, plans) == 1
        timings.append(time.perf_counter() - started)
        assert index.current() == plans[0].index
        assert index.indexes() == [plans[0].index], "the old index was dropped"

        started = time.perf_counter()
        index.build()  # back to the session's definition (the suite goes on with it)
        timings.append(time.perf_counter() - started)
        time.sleep(0.05)
    finally:
        reader.stop.set()
        reader.join(30)
        other.close()
    assert reader.error is None, reader.error
    assert len(reader.counts) > 50, "the reader searched during the rebuilds"
    assert set(reader.counts) == {REBUILD_ROWS}, sorted(set(reader.counts))[:5]
    assert set(reader.novels) == {novels}
    assert index.current() not in (first, second, plans[0].index)
    assert_index_equals_mysql(fluxa_ctx)
    LINES.append(
        f"search rebuilds of {REBUILD_ROWS} rows (same definition, changed definition, back): "
        + ", ".join(f"{t:.2f} s" for t in timings)
        + f"; a reader counted {len(reader.counts)} times, always {REBUILD_ROWS}"
    )


# -- an interrupted fluxa_reindex resumes ----------------------------------------------------


class Crash(Exception):
    pass


def test_fluxa_reindex_resumes_after_a_crash(
    fluxa_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = new_books(fluxa_ctx, 2500)
    index = index_of(fluxa_ctx)
    before = index.current()
    synced: list[int] = []
    sync = SearchIndex.sync

    def crashing_sync(self: SearchIndex, ids: Any) -> list[int]:
        if len(synced) >= 2000:
            raise Crash("the process died")
        synced.extend(ids)
        return sync(self, ids)

    monkeypatch.setattr(SearchIndex, "sync", crashing_sync)
    out = io.StringIO()
    with pytest.raises(Crash):
        call_command("fluxa_reindex", "BookEntity", stdout=out)
    assert "2000/2500 rows indexed (80%)" in out.getvalue()
    assert index.current() == before, "the alias still points at the complete index"
    assert index.indexes() == [before], "the new index is created once the documents are"
    marker = f"{index.base}r:"
    keys = [text(k) for k in index.redis.client.scan_iter(match=marker + "*")]
    assert len(keys) == 1, keys
    building = [keys[0][len(marker) :]]
    progress = index.redis.client.get(keys[0])
    assert progress is not None and int(progress) == made[1999].id

    synced.clear()

    def counting_sync(self: SearchIndex, ids: Any) -> list[int]:
        synced.extend(ids)
        return sync(self, ids)

    monkeypatch.setattr(SearchIndex, "sync", counting_sync)
    out = io.StringIO()
    call_command("fluxa_reindex", "BookEntity", stdout=out)
    lines = out.getvalue().splitlines()
    assert "resume an interrupted build" in lines[0] and building[0] in lines[0]
    assert "2500/2500 rows indexed (100%)" in out.getvalue()
    backfilled = sorted(i for i in synced if i > made[1999].id)
    assert backfilled == [b.id for b in made[2000:]]
    assert min(synced) > made[1999].id, "rows before the progress key are not read again"
    assert index.current() == building[0]
    assert index.indexes() == [building[0]]
    assert not list(index.redis.client.scan_iter(match=marker + "*")), "progress removed"
    assert_index_equals_mysql(fluxa_ctx)


# -- indexing failures -----------------------------------------------------------------------


def test_an_indexing_failure_stops_the_switch_and_names_the_key(
    fluxa_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = new_books(fluxa_ctx, 20)
    index = index_of(fluxa_ctx)
    before = index.current()
    bad = made[7]
    wait = SearchIndex._wait_indexed

    def garbage_then_wait(self: SearchIndex, name: str, progress_key: str) -> None:
        # a document RediSearch cannot index, written while the new index is being built
        self.redis.client.hset(self.doc_key(bad.id), "pages", "not a number")
        wait(self, name, progress_key)

    monkeypatch.setattr(SearchIndex, "_wait_indexed", garbage_then_wait)
    with pytest.raises(CommandError) as raised:
        call_command("fluxa_reindex", "BookEntity", stdout=io.StringIO())
    message = str(raised.value)
    assert f"key {index.doc_key(bad.id)}" in message, message
    assert "Invalid numeric value" in message and "failed to index" in message
    assert "the alias still points at the previous index" in message
    assert index.current() == before
    assert index.indexes() == [before], "the failed index is dropped"
    assert not list(index.redis.client.scan_iter(match=f"{index.base}r:*")), "no progress left"

    monkeypatch.setattr(SearchIndex, "_wait_indexed", wait)
    by_id = RedisSearchQuery().filter(S.id.eq(bad.id))
    assert P.search_ids_in_redis(fluxa_ctx, by_id) == [], "the current index skipped it too"
    out = io.StringIO()
    call_command("fluxa_reindex", "BookEntity", stdout=out)
    assert out.getvalue().splitlines()[-1] == "Reindexed 1 entity."
    assert index.current() != before
    assert P.search_ids_in_redis(fluxa_ctx, by_id) == [bad.id], "rewritten from MySQL"
    assert_index_equals_mysql(fluxa_ctx)


# -- a flush whose MySQL connection dies ------------------------------------------------------


def kill(session: Engine, connection: int) -> None:
    """KILL a connection (from the session engine) and wait until it is gone."""
    session.mysql().exec(f"KILL {connection:d}")
    deadline = time.monotonic() + 10
    while session.mysql().query_row(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", connection
    ) != (0,):
        assert time.monotonic() < deadline, "the killed connection is still listed"
        time.sleep(0.01)


@pytest.mark.parametrize("moment", ["between statements", "after the counters"])
def test_a_flush_killed_mid_way_changes_no_document(fluxa_ctx: Context, moment: str) -> None:
    session = fluxa_ctx.engine
    first, second = new_books(fluxa_ctx, 2)
    index = index_of(fluxa_ctx)
    before = documents(index)
    engine = book_engine(session, BookEntity_)
    try:
        ctx = engine.new_context()
        renamed = P.must_get_by_id(ctx, first.id)
        renamed.title = "Renamed"
        gone = P.must_get_by_id(ctx, second.id)
        gone.delete()
        inserted = P.new(ctx)
        inserted.title = "Inserted"
        # the engine's pool holds one idle connection: the one the flush takes
        found = engine.mysql().query_row("SELECT CONNECTION_ID()")
        assert found is not None
        killed: list[int] = []

        def observer(source: str, operation: str) -> None:
            if killed:
                return
            if (moment == "between statements" and (source, operation) == ("mysql", "update")) or (
                moment == "after the counters" and (source, operation) == ("redis", "search claim")
            ):
                kill(session, int(found[0]))
                killed.append(int(found[0]))

        with observing(observer), pytest.raises(OperationalError):
            ctx.flush()
        assert killed
        assert documents(index) == before == mysql_documents(session)
        assert renamed.is_dirty and gone.is_dirty and inserted.is_new
        ctx.flush()  # the same entities, again: now it works
    finally:
        engine.close()
    assert_index_equals_mysql(fluxa_ctx)
    assert index.redis.client.hget(index.doc_key(first.id), "title") == b"renamed"
    assert not index.redis.client.exists(index.doc_key(second.id))


# -- the search pool down ------------------------------------------------------------------------


@contextlib.contextmanager
def search_pool_down(engine: Engine) -> Iterator[None]:
    """The search pool's client pointed at a port nothing listens on."""
    pool = engine.redis("search")
    saved = pool.client
    pool.client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    try:
        yield
    finally:
        pool.client.close()
        pool.client = saved


def test_a_flush_is_refused_while_the_search_pool_is_down(fluxa_ctx: Context) -> None:
    (book,) = new_books(fluxa_ctx, 1)
    before = mysql_documents(fluxa_ctx.engine)
    ctx = fluxa_ctx.engine.new_context()
    changed = P.must_get_by_id(ctx, book.id)
    changed.title = "Changed"
    with search_pool_down(fluxa_ctx.engine), pytest.raises(PoolError, match="redis pool 'search'"):
        ctx.flush()
    assert mysql_documents(fluxa_ctx.engine) == before, "nothing written"
    assert changed.is_dirty
    ctx.flush()
    assert_index_equals_mysql(fluxa_ctx)


def test_documents_lost_after_the_commit_are_logged_and_reindex_repairs_them(
    fluxa_ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    engine = fluxa_ctx.engine
    made = new_books(fluxa_ctx, 3)
    ctx = engine.new_context()
    for book in made:
        P.must_get_by_id(ctx, book.id).title = "After the commit"
    down = search_pool_down(engine)

    def observer(source: str, operation: str) -> None:
        if (source, operation) == ("redis", "search claim"):
            down.__enter__()  # the counters are taken; the pool fails before the documents

    with observing(observer), caplog.at_level("ERROR", logger="fluxa_django.search"):
        ctx.flush()  # the rows are committed: no error for the caller
    down.__exit__(None, None, None)
    assert [r.message for r in caplog.records if "Redis Search document" in r.message] == [
        "fluxa: redis pool 'search' failed writing 3 Redis Search document(s) of BookEntity "
        "after a flush (ConnectionError); the rows are saved, run `manage.py fluxa_reindex "
        "BookEntity` to repair the index"
    ]
    assert P.count_in_redis(ctx, RedisSearchQuery().filter(S.title.match("after"))) == 0
    call_command("fluxa_reindex", "BookEntity", stdout=io.StringIO())
    assert P.count_in_redis(ctx, RedisSearchQuery().filter(S.title.match("after"))) == 3
    assert_index_equals_mysql(fluxa_ctx)
