"""Redis Search: documents maintained by flush, typed queries, escaping, the index lifecycle.

Everything runs against the project's Redis Stack (the pool "search", database 0) and
MariaDB; nothing is mocked. BookEntity (tests/entities.py) has a field of every
searchable type. Process and concurrency tests are in tests/reliability/test_search_*.py.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import math
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fluxa_django import (
    Context,
    Engine,
    IntegrityError,
    Pager,
    RedisSearchQuery,
    Registry,
    get_engine,
)
from fluxa_django.checks import check_fluxa
from fluxa_django.conf import registry_from_settings, reset_engine
from fluxa_django.errors import FluxaError, PoolError
from fluxa_django.runtime import search
from fluxa_django.runtime.search import SearchCondition
from fluxa_django.runtime.search_index import SearchIndex, _aggregate_rows, document, for_schema
from fluxa_django.testing.plugin import QueryCounter
from tests.generated import (
    BookEntity,
    BookEntityProvider,
    CategoryEntity,
    CategoryEntityProvider,
    EveryTypeEntityProvider,
    Genre,
    ProductEntityProvider,
    Tag,
)
from tests.search_entities import Novel
from tests.services import PLAIN_REDIS_ADDRESS, REDIS_ADDRESS, REDIS_TEST_DB, mysql_uri

S = BookEntityProvider.fields_redis_search
U: Any = S  # the same fields, for calls mypy would refuse
P = BookEntityProvider
AssertQueries = Callable[..., AbstractContextManager[QueryCounter]]
UTC = datetime.UTC
CET = datetime.timezone(datetime.timedelta(hours=1))


def _book(ctx: Context, title: str, **values: object) -> BookEntity:
    book = P.new(ctx)
    book.title = title
    for name, value in values.items():
        setattr(book, name, value)
    return book


def dec(text: str) -> Any:
    """A Decimal bound (the fields are typed ``float``; decimals are accepted too)."""
    return Decimal(text)


def titles(books: list[BookEntity]) -> list[str]:
    return [b.title for b in books]


def index_of(ctx: Context) -> SearchIndex:
    index = P._binding(ctx).search
    assert index is not None
    return index


def doc(ctx: Context, id_: int) -> dict[str, str]:
    """The document of a row as Redis holds it (empty: no document)."""
    index = index_of(ctx)
    raw = index.redis.client.hgetall(index.doc_key(id_))
    return {text(k): text(v) for k, v in raw.items()}


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def expected_doc(ctx: Context, id_: int) -> dict[str, str]:
    """The document of the row as MySQL holds it (empty: no live row)."""
    row = ctx.engine.mysql().query_row(f"{P.select_sql} WHERE `id` = ?", id_)
    if row is None or row[P.fake_delete_index]:
        return {}
    pairs = document(P.search_spec, row)
    return dict(zip(pairs[::2], pairs[1::2], strict=True))


def query(*conditions: SearchCondition[BookEntity]) -> RedisSearchQuery[BookEntity]:
    return RedisSearchQuery[BookEntity]().filter(*conditions)


# -- a corpus with every searchable type ------------------------------------------------


@dataclass
class Corpus:
    ctx: Context
    books: dict[str, BookEntity]
    novels: CategoryEntity
    poems: CategoryEntity

    def find(self, *conditions: SearchCondition[BookEntity]) -> set[str]:
        """The titles matching ``conditions`` (also checks count_in_redis agrees)."""
        found = {b.title for b in P.search_many_in_redis(self.ctx, query(*conditions))}
        assert P.count_in_redis(self.ctx, query(*conditions)) == len(found)
        return found

    def id(self, title: str) -> int:
        return self.books[title].id


MOMENT = datetime.datetime(2024, 1, 2, 3, 4, 5)


@pytest.fixture
def corpus(fluxa_ctx: Context) -> Corpus:
    ctx = fluxa_ctx
    novels, poems = CategoryEntityProvider.new(ctx), CategoryEntityProvider.new(ctx)
    novels.name, poems.name = "Novels", "Poems"
    books = [
        _book(
            ctx,
            "Dune",
            pages=500,
            balance=-20,
            price=9.99,
            rating=4.5,
            in_stock=True,
            published=datetime.date(1965, 8, 1),
            updated_at=MOMENT,
            genre=Genre.NOVEL,
            tags={Tag.NEW},
            category=novels,
            isbn="978-0441172719",
            summary="The spice must flow. Arrakis!",
        ),
        _book(
            ctx,
            "Odes",
            pages=80,
            balance=0,
            price=4.5,
            in_stock=False,
            updated_at=datetime.datetime(1969, 12, 31, 23, 59, 59),
            genre=Genre.POETRY,
            isbn="",
        ),
        _book(
            ctx,
            "Essays",
            pages=300,
            balance=2147483647,
            price=12,
            rating=3.0,
            in_stock=True,
            published=datetime.date(1580, 3, 1),
            updated_at=MOMENT + datetime.timedelta(seconds=1),
            genre=Genre.ESSAY,
            tags={Tag.NEW, Tag.SALE},
            category=poems,
            isbn="a,b\x1fc",
            summary="",
        ),
        _book(
            ctx,
            "Neuromancer",
            pages=271,
            balance=-2147483648,
            price=7.5,
            rating=0.1,
            in_stock=False,
            published=datetime.date(1984, 7, 1),
            updated_at=datetime.datetime(2030, 6, 15, 12, 0, 0),
            genre=Genre.NOVEL,
            tags={Tag.SALE},
            category=novels,
            isbn=" x ",
            summary="Cyberspace. A consensual hallucination",
        ),
        _book(
            ctx,
            "Snow Crash",
            pages=480,
            balance=5,
            price=10.5,
            rating=4.0,
            in_stock=True,
            published=datetime.date(1992, 6, 1),
            updated_at=MOMENT - datetime.timedelta(days=1),
            genre=Genre.NOVEL,
            tags=set(),
            category_id=poems.id,
            isbn="X",
            summary="running dogs",
        ),
    ]
    ctx.flush()
    return Corpus(ctx, {b.title: b for b in books}, novels, poems)


ALL = {"Dune", "Odes", "Essays", "Neuromancer", "Snow Crash"}


# -- every searchable type, every operator ----------------------------------------------


def test_integer_operators(corpus: Corpus) -> None:
    find = corpus.find
    assert find(S.pages.eq(271)) == {"Neuromancer"}
    assert find(S.pages.gt(300)) == {"Dune", "Snow Crash"}, "gt excludes its bound"
    assert find(S.pages.gte(300)) == {"Dune", "Snow Crash", "Essays"}
    assert find(S.pages.lt(271)) == {"Odes"}, "lt excludes its bound"
    assert find(S.pages.lte(271)) == {"Odes", "Neuromancer"}
    assert find(S.pages.between(271, 480)) == {"Neuromancer", "Essays", "Snow Crash"}
    assert find(S.pages.between(271, 480, low_inclusive=False)) == {"Essays", "Snow Crash"}
    assert find(S.pages.between(271, 480, high_inclusive=False)) == {"Neuromancer", "Essays"}
    assert find(S.pages.between(271, 480, low_inclusive=False, high_inclusive=False)) == {"Essays"}
    assert find(S.pages.between(481, 480)) == set()
    assert find(S.pages.in_([80, 500, 7])) == {"Odes", "Dune"}
    assert find(S.pages.in_([])) == set()
    assert find(S.pages.eq(80).not_()) == ALL - {"Odes"}
    # signed 32-bit extremes and negatives
    assert find(S.balance.lt(0)) == {"Dune", "Neuromancer"}
    assert find(S.balance.eq(-2147483648)) == {"Neuromancer"}
    assert find(S.balance.eq(2147483647)) == {"Essays"}
    assert find(S.balance.between(-20, 0)) == {"Dune", "Odes"}
    assert find(S.balance.gte(-19)) == {"Odes", "Essays", "Snow Crash"}


def test_decimal_and_float_operators(corpus: Corpus) -> None:
    find = corpus.find
    assert find(S.price.eq(9.99)) == {"Dune"}
    assert find(S.price.eq(dec("9.99"))) == {"Dune"}
    assert find(S.price.eq(12)) == {"Essays"}, "an int is a number too"
    assert find(S.price.lt(7.5)) == {"Odes"}
    assert find(S.price.lte(dec("7.50"))) == {"Odes", "Neuromancer"}
    assert find(S.price.between(7.5, 10.5, low_inclusive=False, high_inclusive=False)) == {"Dune"}
    assert find(S.price.in_([4.5, dec("10.50")])) == {"Odes", "Snow Crash"}
    assert find(S.rating.eq(0.1)) == {"Neuromancer"}
    assert find(S.rating.gt(3.0)) == {"Dune", "Snow Crash"}
    assert find(S.rating.is_null()) == {"Odes"}
    assert find(S.rating.is_not_null()) == ALL - {"Odes"}
    assert find(S.rating.lt(100).not_()) == {"Odes"}, "NULL is outside every range"


def test_bool_operators(corpus: Corpus) -> None:
    find = corpus.find
    assert find(S.in_stock.eq(True)) == {"Dune", "Essays", "Snow Crash"}
    assert find(S.in_stock.eq(False)) == {"Odes", "Neuromancer"}
    assert find(S.in_stock.in_([True, False])) == ALL
    assert find(S.in_stock.eq(True).not_()) == {"Odes", "Neuromancer"}


def test_date_operators(corpus: Corpus) -> None:
    find = corpus.find
    assert find(S.published.eq(datetime.date(1965, 8, 1))) == {"Dune"}
    assert find(S.published.lt(datetime.date(1970, 1, 1))) == {"Dune", "Essays"}, (
        "dates before 1970 are negative numbers"
    )
    assert find(S.published.gt(datetime.date(1984, 7, 1))) == {"Snow Crash"}
    assert find(S.published.gte(datetime.date(1984, 7, 1))) == {"Neuromancer", "Snow Crash"}
    assert find(S.published.between(datetime.date(1580, 3, 1), datetime.date(1984, 7, 1))) == {
        "Essays",
        "Dune",
        "Neuromancer",
    }
    assert find(S.published.is_null()) == {"Odes"}
    assert find(S.published.is_not_null()) == ALL - {"Odes"}
    with pytest.raises(TypeError, match=r"BookEntity\.published: expected a date"):
        U.published.eq(MOMENT)


def test_datetime_operators_naive_utc_and_aware(corpus: Corpus) -> None:
    find = corpus.find
    assert find(S.updated_at.eq(MOMENT)) == {"Dune"}
    aware = MOMENT.replace(tzinfo=UTC).astimezone(CET)  # the same instant, 04:04:05+01:00
    assert aware.hour == 4
    assert find(S.updated_at.eq(aware)) == {"Dune"}
    assert find(S.updated_at.lt(datetime.datetime(1970, 1, 1))) == {"Odes"}
    assert find(S.updated_at.gt(MOMENT)) == {"Essays", "Neuromancer"}
    assert find(S.updated_at.gte(MOMENT)) == {"Dune", "Essays", "Neuromancer"}
    assert find(S.updated_at.between(MOMENT, MOMENT + datetime.timedelta(seconds=1))) == {
        "Dune",
        "Essays",
    }
    # the column keeps seconds: a bound with microseconds falls between two seconds
    half = MOMENT + datetime.timedelta(microseconds=500_000)
    assert find(S.updated_at.gt(half), S.updated_at.lt(datetime.datetime(2030, 1, 1))) == {"Essays"}
    assert find(S.updated_at.lte(half), S.updated_at.gte(MOMENT)) == {"Dune"}
    with pytest.raises(TypeError, match=r"BookEntity\.updated_at: expected a datetime"):
        U.updated_at.eq(datetime.date(2024, 1, 2))


def test_enums_sets_references_and_ids(corpus: Corpus) -> None:
    find = corpus.find
    assert find(S.genre.eq(Genre.NOVEL)) == {"Dune", "Neuromancer", "Snow Crash"}
    assert find(S.genre.in_([Genre.POETRY, Genre.ESSAY])) == {"Odes", "Essays"}
    assert find(S.genre.eq(Genre.NOVEL).not_()) == {"Odes", "Essays"}
    # a set field: eq is "contains"
    assert find(S.tags.eq(Tag.NEW)) == {"Dune", "Essays"}
    assert find(S.tags.eq(Tag.SALE)) == {"Essays", "Neuromancer"}
    assert find(S.tags.in_([Tag.NEW, Tag.SALE])) == {"Dune", "Essays", "Neuromancer"}
    assert find(S.tags.is_null()) == {"Odes"}, "an empty set is not NULL"
    assert find(S.tags.is_not_null()) == ALL - {"Odes"}
    # references: by id or by entity
    assert find(S.category.eq(corpus.novels.id)) == {"Dune", "Neuromancer"}
    assert find(S.category.eq(corpus.poems)) == {"Essays", "Snow Crash"}  # type: ignore[arg-type]
    assert find(S.category.in_([corpus.novels.id, corpus.poems.id])) == ALL - {"Odes"}
    assert find(S.category.is_null()) == {"Odes"}
    # the id
    dune, odes = corpus.id("Dune"), corpus.id("Odes")
    assert find(S.id.eq(dune)) == {"Dune"}
    assert find(S.id.in_([dune, odes, 999_999])) == {"Dune", "Odes"}
    assert find(S.id.eq(dune).not_()) == ALL - {"Dune"}
    # ids and references are numbers: ranges, and sorting by them is numeric
    assert find(S.id.between(min(dune, odes), max(dune, odes))) >= {"Dune", "Odes"}
    assert find(S.category.gt(0)) == ALL - {"Odes"}
    ctx = corpus.ctx
    # without a sort: by id, as MySQL's primary key orders them (not by relevance)
    by_id = P.search_ids_in_redis(ctx, RedisSearchQuery())
    assert by_id == sorted(corpus.id(t) for t in ALL)
    assert P.search_ids_in_redis(ctx, query(S.in_stock.eq(True))) == sorted(
        corpus.id(t) for t in find(S.in_stock.eq(True))
    )
    with pytest.raises(TypeError, match=r"BookEntity\.id: expected an int, got str"):
        S.id.eq("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"BookEntity\.category: expected an id or a Category"):
        S.category.eq(True)
    with pytest.raises(TypeError, match=r"BookEntity\.category: references CategoryEntity, got a"):
        S.category.eq(P.get_by_id(ctx, dune))  # type: ignore[arg-type]
    # an enum's or a set's conditions take its values only
    with pytest.raises(ValueError, match=r"BookEntity\.genre: 'comic' is not one of its values"):
        S.genre.eq("comic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"BookEntity\.tags: 'old' is not one of its values"):
        S.tags.in_(["new", "old"])  # type: ignore[list-item]
    assert find(S.genre.eq("novel")) == {"Dune", "Neuromancer", "Snow Crash"}  # type: ignore[arg-type]


def test_full_text_match_and_prefix(corpus: Corpus) -> None:
    find = corpus.find
    assert find(S.title.match("dune")) == {"Dune"}
    assert find(S.title.match("SNOW")) == {"Snow Crash"}, "case-insensitive"
    assert find(S.title.match("crash snow")) == {"Snow Crash"}, "every word, any order"
    assert find(S.title.match("snow dune")) == set(), "every word must be there"
    assert find(S.title.match("neuro")) == set(), "whole words without prefix"
    assert find(S.title.match("neuro", prefix=True)) == {"Neuromancer"}
    assert find(S.title.match("sn cr", prefix=True)) == {"Snow Crash"}
    assert find(S.title.match("n", prefix=True)) == set(), "a 1-letter prefix is a whole word"
    assert find(S.title.match("!!! ...")) == set(), "no word: nothing"
    assert find(S.title.match("!!! ...").not_()) == ALL
    # punctuation separates words, as in the text
    assert find(S.summary.match("arrakis")) == {"Dune"}
    assert find(S.summary.match("spice, flow!")) == {"Dune"}
    assert find(S.summary.match("cyberspace.a")) == {"Neuromancer"}
    # words are not stemmed: "run" is not "running", "dog" is not "dogs"
    assert find(S.summary.match("running")) == {"Snow Crash"}
    assert find(S.summary.match("run")) == set()
    assert find(S.summary.match("dog")) == set()
    assert find(S.summary.match("dog", prefix=True)) == {"Snow Crash"}
    assert find(S.summary.is_null()) == {"Odes"}, "an empty text is not NULL"
    assert find(S.summary.is_not_null()) == ALL - {"Odes"}
    with pytest.raises(TypeError, match=r"BookEntity\.title: match\(\) takes a str"):
        S.title.match(5)  # type: ignore[arg-type]


def test_exact_string_tags(corpus: Corpus) -> None:
    """``searchable="tag"``: the whole string, exact (case, spaces, commas, separators)."""
    find = corpus.find
    assert find(S.isbn.eq("978-0441172719")) == {"Dune"}
    assert find(S.isbn.eq("978")) == set(), "no partial match"
    assert find(S.isbn.eq("")) == {"Odes"}, "the empty string is a value"
    assert find(S.isbn.eq("a,b\x1fc")) == {"Essays"}
    assert find(S.isbn.eq("a")) == set(), "commas and separators do not split the value"
    assert find(S.isbn.eq("c")) == set()
    assert find(S.isbn.eq("a,b")) == set()
    assert find(S.isbn.eq(" x ")) == {"Neuromancer"}
    assert find(S.isbn.eq("x")) == set(), "spaces around the value are part of it"
    assert find(S.isbn.eq("X")) == {"Snow Crash"}, "case-sensitive"
    assert find(S.isbn.in_(["", "X", "nope"])) == {"Odes", "Snow Crash"}
    assert find(S.isbn.in_([])) == set()
    assert find(S.isbn.eq("").not_()) == ALL - {"Odes"}


def test_long_tag_values_stay_exact(fluxa_ctx: Context) -> None:
    """RediSearch cuts a tag at 4,096 bytes: values sharing their first 4,096 bytes must
    still be told apart (``summary`` is a "both" field of any length)."""
    ctx = fluxa_ctx
    base = "é" * 2048  # 4,096 bytes of UTF-8
    values = [base, base[:-1] + "e", base + "1", base + "2", "x" * 70_000 + "1", "x" * 70_000]
    books = [_book(ctx, f"Long {i}", summary=v) for i, v in enumerate(values)]
    ctx.flush()
    for book, value in zip(books, values, strict=True):
        assert P.search_ids_in_redis(ctx, query(S.summary.eq(value))) == [book.id]
    assert P.search_ids_in_redis(ctx, query(S.summary.eq(base + "3"))) == []
    found = P.search_ids_in_redis(ctx, query(S.summary.in_(values[2:4])).sort_by_asc(S.pages))
    assert sorted(found) == sorted(b.id for b in books[2:4])


def test_text_and_tag_both(corpus: Corpus) -> None:
    find = corpus.find
    summary = "Cyberspace. A consensual hallucination"
    assert find(S.summary.eq(summary)) == {"Neuromancer"}
    assert find(S.summary.eq(summary.lower())) == set(), "eq is exact, match is not"
    assert find(S.summary.match(summary.lower())) == {"Neuromancer"}
    assert find(S.summary.eq("")) == {"Essays"}
    assert find(S.summary.in_(["", "running dogs"])) == {"Essays", "Snow Crash"}
    assert find(S.summary.eq("running")) == set()


def test_groups(corpus: Corpus) -> None:
    find = corpus.find
    cheap = S.price.lt(8)
    sale = S.tags.eq(Tag.SALE)
    novel = S.genre.eq(Genre.NOVEL)
    assert find(cheap.or_(sale)) == {"Odes", "Neuromancer", "Essays"}
    assert find(cheap.and_(sale)) == {"Neuromancer"}
    assert find(cheap, sale) == {"Neuromancer"}, "filter() ANDs"
    assert find(cheap.or_(sale).not_()) == {"Dune", "Snow Crash"}
    assert find(novel.and_(cheap.or_(S.pages.gt(490)))) == {"Neuromancer", "Dune"}
    assert find(novel.and_(cheap.not_()).or_(S.isbn.eq(""))) == {"Dune", "Snow Crash", "Odes"}
    assert find(S.pages.in_([]).or_(novel)) == {"Dune", "Neuromancer", "Snow Crash"}
    assert find(S.pages.in_([]).and_(novel)) == set()
    assert find(S.pages.in_([]).not_()) == ALL
    # raw(): ANDed as written
    q = query(novel).raw("@pages:[400 +inf]")
    assert {b.title for b in P.search_many_in_redis(corpus.ctx, q)} == {"Dune", "Snow Crash"}


def test_sorting(corpus: Corpus) -> None:
    ctx = corpus.ctx

    def order(q: RedisSearchQuery[BookEntity]) -> list[str]:
        return titles(P.search_many_in_redis(ctx, q))

    assert order(query().sort_by_asc(S.pages)) == [
        "Odes",
        "Neuromancer",
        "Essays",
        "Snow Crash",
        "Dune",
    ]
    assert order(query().sort_by_desc(S.pages)) == [
        "Dune",
        "Snow Crash",
        "Essays",
        "Neuromancer",
        "Odes",
    ]
    assert order(query().sort_by_asc(S.price)) == [
        "Odes",
        "Neuromancer",
        "Dune",
        "Snow Crash",
        "Essays",
    ]
    assert order(query(S.genre.eq(Genre.NOVEL)).sort_by_desc(S.updated_at)) == [
        "Neuromancer",
        "Dune",
        "Snow Crash",
    ]
    assert order(query(S.published.is_not_null()).sort_by_asc(S.published)) == [
        "Essays",
        "Dune",
        "Neuromancer",
        "Snow Crash",
    ]
    assert order(query().sort_by_asc(S.title)) == sorted(ALL)
    assert order(query().sort_by_desc(S.title)) == sorted(ALL, reverse=True)
    with pytest.raises(TypeError, match=r"BookEntity\.balance is not sortable"):
        query().sort_by_asc(S.balance)
    with pytest.raises(TypeError, match=r"BookEntity\.genre is not sortable"):
        query().sort_by_desc(S.genre)
    column: Any = P.fields.pages  # a MySQL column, not a search field
    with pytest.raises(TypeError, match="fields_redis_search"):
        query().sort_by_asc(column)


def test_pages_total_count_one_and_ids(corpus: Corpus, fluxa_assert_queries: AssertQueries) -> None:
    ctx = corpus.ctx
    by_pages = query().sort_by_asc(S.pages)
    ordered = ["Odes", "Neuromancer", "Essays", "Snow Crash", "Dune"]
    pages = [titles(P.search_many_in_redis(ctx, by_pages.pager(Pager(n, 2)))) for n in (1, 2, 3)]
    assert pages == [ordered[0:2], ordered[2:4], ordered[4:]]
    assert P.search_many_in_redis(ctx, query().sort_by_asc(S.pages).pager(Pager(4, 2))) == []
    for book in corpus.books.values():  # the rows are in the context cache
        P.get_by_id(ctx, book.id)
    with fluxa_assert_queries(mysql=0, redis=1) as counter:
        page, total = P.search_many_in_redis_with_total(
            ctx, query(S.in_stock.eq(True)).sort_by_desc(S.price).pager(Pager(1, 2))
        )
    assert counter.operations == [("redis", "search")], "page and total from one FT.SEARCH"
    assert (titles(page), total) == (["Essays", "Snow Crash"], 3)
    page, total = P.search_many_in_redis_with_total(ctx, by_pages.pager(Pager(3, 2)))
    assert (titles(page), total) == (["Dune"], 5)
    page, total = P.search_many_in_redis_with_total(ctx, query(S.pages.in_([])))
    assert (page, total) == ([], 0)
    assert P.count_in_redis(ctx, query()) == 5
    assert P.count_in_redis(ctx, query(S.pages.gt(280))) == 3
    ids = P.search_ids_in_redis(ctx, query(S.pages.gt(280)).sort_by_desc(S.pages))
    assert ids == [corpus.id("Dune"), corpus.id("Snow Crash"), corpus.id("Essays")]
    first = P.search_one_in_redis(ctx, query(S.pages.gt(280)).sort_by_asc(S.pages))
    assert first is not None and first.title == "Essays"
    paged = query(S.pages.gt(280)).sort_by_asc(S.pages).pager(Pager(3, 10))
    first = P.search_one_in_redis(ctx, paged)
    assert first is not None and first.title == "Essays", "search_one ignores the pager"
    assert P.search_one_in_redis(ctx, query(S.pages.gt(600))) is None
    assert P.search_one_in_redis(ctx, query(S.pages.in_([]))) is None


def test_results_are_hydrated_through_the_tiers_one_round_trip_each(
    corpus: Corpus, fluxa_engine: Engine, fluxa_assert_queries: AssertQueries
) -> None:
    q = query(S.genre.eq(Genre.NOVEL)).sort_by_asc(S.pages)
    expected = ["Neuromancer", "Snow Crash", "Dune"]
    P.clear_redis_cache(corpus.ctx)
    cold = fluxa_engine.new_context()
    with fluxa_assert_queries(mysql=1) as counter:
        assert titles(P.search_many_in_redis(cold, q)) == expected
    redis_ops = [op for source, op in counter.operations if source == "redis"]
    assert redis_ops[:2] == ["search", "mget"], "one FT.SEARCH, one MGET of the Redis tier"
    assert "mget" not in redis_ops[2:] and "search" not in redis_ops[2:]
    warm = fluxa_engine.new_context()
    with fluxa_assert_queries(mysql=0, redis=2) as counter:
        found = P.search_many_in_redis(warm, q)
    assert [op for _, op in counter.operations] == ["search", "mget"]
    assert titles(found) == expected
    assert found[0] is P.get_by_id(warm, found[0].id), "the context cache holds them"
    with fluxa_assert_queries(mysql=0, redis=1):
        assert titles(P.search_many_in_redis(warm, q)) == expected


def test_query_loggers_see_every_search_round_trip_without_its_values(corpus: Corpus) -> None:
    ctx = corpus.ctx.engine.new_context()
    entries: list[dict[str, Any]] = []
    ctx.register_query_logger(entries.append, mysql=False, local=False)
    secret = "arrakis"
    P.search_many_in_redis_with_total(
        ctx, query(S.summary.match(secret)).sort_by_asc(S.pages).pager(Pager(1, 3))
    )
    assert P.count_in_redis(ctx, query(S.isbn.eq(secret))) == 0
    searches = [e for e in entries if e["operation"] == "search"]
    assert [e["query"] for e in searches] == [
        f"FT.SEARCH {index_of(ctx).alias} NOCONTENT SORTBY pages ASC LIMIT 0 3",
        f"FT.SEARCH {index_of(ctx).alias} NOCONTENT LIMIT 0 0",
    ]
    assert all(e["source"] == "redis" and e["pool"] == "search" for e in searches)
    assert not any(secret in str(e) for e in entries), "the query holds user values"


def test_conditions_of_another_entity_are_refused(corpus: Corpus) -> None:
    other = EveryTypeEntityProvider.fields_redis_search.title.match("dune")
    with pytest.raises(TypeError, match="a Redis Search condition on EveryTypeEntity"):
        P.search_many_in_redis(corpus.ctx, RedisSearchQuery().filter(other))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot combine conditions of BookEntity and Every"):
        S.title.match("dune").or_(other)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a RedisSearchQuery"):
        P.search_many_in_redis(corpus.ctx, P.fields.pages.eq(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ProductEntity has no searchable field"):
        ProductEntityProvider.search_many_in_redis(corpus.ctx, RedisSearchQuery())


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: U.pages.eq(math.nan), TypeError, r"BookEntity\.pages: expected an int"),
        (lambda: U.price.gt(math.nan), ValueError, r"BookEntity\.price: nan cannot be searched"),
        (lambda: U.price.lt(math.inf), ValueError, r"BookEntity\.price: inf cannot be searched"),
        (lambda: U.rating.gte(-math.inf), ValueError, r"BookEntity\.rating: -inf cannot be"),
        (lambda: U.price.eq(Decimal("NaN")), ValueError, r"BookEntity\.price: NaN cannot be"),
        (lambda: U.price.eq(Decimal("sNaN")), ValueError, r"BookEntity\.price: sNaN cannot be"),
        (lambda: U.price.eq(Decimal("Infinity")), ValueError, r"BookEntity\.price: Infinity"),
        (lambda: U.price.eq("9.99"), TypeError, r"BookEntity\.price: expected a number, got str"),
        (lambda: U.pages.gt("5"), TypeError, r"BookEntity\.pages: expected an int, got str"),
        (lambda: U.pages.lt(5.0), TypeError, r"BookEntity\.pages: expected an int, got float"),
        (lambda: U.price.eq(True), TypeError, r"BookEntity\.price: expected a number, got bool"),
        (lambda: U.balance.between(1, "9"), TypeError, r"BookEntity\.balance: expected an int"),
        (lambda: U.pages.in_([1, math.inf]), TypeError, r"BookEntity\.pages: expected an int"),
        (lambda: U.price.in_([1, math.inf]), ValueError, r"BookEntity\.price: inf cannot be"),
        (lambda: U.pages.in_("12"), TypeError, r"BookEntity\.pages: in_\(\) takes a list"),
        (lambda: U.in_stock.eq(2), TypeError, r"BookEntity\.in_stock: expected a bool"),
        (lambda: U.in_stock.eq("yes"), TypeError, r"BookEntity\.in_stock: expected a bool"),
        (lambda: U.genre.eq(5), TypeError, r"BookEntity\.genre: expected a str, got int"),
        (lambda: U.isbn.in_("ab"), TypeError, r"BookEntity\.isbn: in_\(\) takes a list"),
        (lambda: U.pages.is_null(), TypeError, r"BookEntity\.pages: is_null\(\) needs a null"),
        (lambda: U.title.is_not_null(), TypeError, r"BookEntity\.title: is_not_null\(\) needs"),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    make: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make()


def test_huge_numbers_are_searchable(corpus: Corpus) -> None:
    find = corpus.find
    assert find(S.price.lt(dec("1E+400"))) == ALL, "beyond a double: +inf-like bound"
    assert find(S.price.gt(dec("-1E+400"))) == ALL
    assert find(S.balance.gt(-(2**70))) == ALL
    assert find(S.balance.lt(2**70)) == ALL
    assert find(S.price.gt(dec("1E-400"))) == ALL


# -- hostile user strings (hypothesis) ----------------------------------------------------

OPERATORS = "@|-~*(){}[]\"':;\\$%^&+=<>?!#,./` \t\n\r\x00\x1e\x1f"
HOSTILE = [
    '") | @title:* -(@price:[-inf +inf])',
    "*",
    "-",
    "@isbn:{*}",
    "{a|b}",
    "a|b",
    "\\",
    "\\\\",
    "%",
    "%z",
    "%h",
    "%20",
    "%u000041",
    "  ",
    " \t\n",
    "\x00",
    "ismissing(@isbn)",
    "$param",
    "w'*'",
    "~a",
    "%%a%%",
    "a\u0301",  # a combining mark
    "\u0301",
    "e\u0301 é",
    "😀🚀",
    "a😀b",
    "\u200b",
    "\ufeff",
    "İstanbul",
    "STRASSE straße",
    "ǅemal",
    "INF Inf inf nan NaN 1e5 0x1F 00012 -inf +inf",
    "123456789012345678901234567890",
    "ⅫⅣ ²³ ٣٤",
    "\uff21\uff22\uff23",
]
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
HOSTILE_TEXT = st.one_of(
    st.text(alphabet=PRINTABLE, max_size=12),
    st.text(alphabet=OPERATORS + "aAzZ09_é", max_size=12),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=8),
    st.sampled_from(HOSTILE),
)


class Hostile:
    """Eight books whose tag and text values each example rewrites."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.books = [_book(ctx, f"Hostile {i}") for i in range(8)]
        ctx.flush()

    def write(self, isbns: list[str], summaries: list[str | None]) -> None:
        for book, isbn, summary in zip(self.books, isbns, summaries, strict=False):
            book.isbn = isbn
            book.summary = summary
        self.ctx.flush()

    def ids(self, condition: SearchCondition[BookEntity]) -> set[int]:
        try:
            found = P.search_ids_in_redis(self.ctx, query(condition))
        except redis.ResponseError as exc:  # pragma: no cover - the failure reported
            pytest.fail(f"{condition!r} broke the query: {exc}")
        assert len(found) == len(set(found))
        return set(found)


@pytest.fixture
def hostile(fluxa_ctx: Context) -> Hostile:
    return Hostile(fluxa_ctx)


def variants(value: str) -> list[str]:
    """``value`` and values close to it that a loose match would confuse with it."""
    near = [
        value,
        value.strip(),
        f" {value}",
        f"{value} ",
        value.upper(),
        value.casefold(),
        value[1:],
        value + "\x00",
        value.replace(",", "\x1f"),
        "%" + value,
        value.replace(" ", "%20"),
    ]
    return [v[:40] for v in near]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(HOSTILE_TEXT, min_size=1, max_size=3))
@example(values=["", " ", "a,b", "a\x1fb"])
@example(values=["x", " x", "x ", "X"])
@example(values=["%z", "", "%", "%25"])
@example(values=["a\x00b", "a\x00c", "a"])
@example(values=["😀", "a😀b", "a\u0301b", "\u0301"])
def test_hostile_tag_values_match_exactly(hostile: Hostile, values: list[str]) -> None:
    """``eq(v)`` returns exactly the rows whose value is ``v`` (``in_``: one of them), for
    the tag string and the tag side of a "both" field; no value breaks the query."""
    isbns = [v for value in values for v in variants(value)][:8]
    hostile.write(isbns, list(isbns))
    by_isbn = {b.id: b.isbn for b in hostile.books}
    for value in {*isbns, *values}:
        expected = {i for i, isbn in by_isbn.items() if isbn == value}
        assert hostile.ids(S.isbn.eq(value)) == expected, f"isbn eq {value!r}"
        assert hostile.ids(S.summary.eq(value)) == expected, f"summary eq {value!r}"
        assert hostile.ids(S.isbn.eq(value).not_()) == set(by_isbn) - expected
    wanted = set(values)
    expected = {i for i, isbn in by_isbn.items() if isbn in wanted}
    assert hostile.ids(S.isbn.in_(values)) == expected
    assert hostile.ids(S.summary.in_(values)) == expected


def test_every_printable_ascii_character_in_tags_and_text(fluxa_ctx: Context) -> None:
    """Each printable ASCII character alone, doubled, inside a value and around it: a tag
    ``eq`` finds exactly its row, a text ``match`` of the words around it exactly the rows
    holding them; no character breaks a query."""
    ctx = fluxa_ctx
    values: list[str] = []
    for char in PRINTABLE:
        values += [char, char * 2, f"a{char}b", f"{char}x{char}"]
    books = {
        v: _book(ctx, "Ascii", isbn=v, summary=f"w{ord(c)}{v}end")
        for v, c in zip(values, [c for c in PRINTABLE for _ in range(4)], strict=True)
    }
    ctx.flush()
    for value, book in books.items():
        found = P.search_ids_in_redis(ctx, query(S.isbn.eq(value)))
        assert found == [book.id], f"isbn eq {value!r}"
        assert P.search_ids_in_redis(ctx, query(S.summary.eq(book.summary or ""))) == [book.id]
    by_summary = {b.id: b.summary for b in books.values()}
    for char in PRINTABLE:
        for text in (f"w{ord(char)}{char}end", f"{char}x{char}", char):
            wanted = search.words(text)
            expected = {i for i, t in by_summary.items() if matches(t, wanted, False)}
            found_ids = set(P.search_ids_in_redis(ctx, query(S.summary.match(text))))
            assert found_ids == expected, f"match({text!r})"


def matches(text: str | None, wanted: list[str], prefix: bool) -> bool:
    """The oracle of ``match``: every word of the query is a word of the text (with
    ``prefix``: starts one, for words of 2 characters or more)."""
    if text is None or not wanted:
        return False
    have = search.words(text)
    for word in wanted:
        if prefix and len(word) >= search.MIN_PREFIX:
            if not any(w.startswith(word) for w in have):
                return False
        elif word not in have:
            return False
    return True


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), texts=st.lists(HOSTILE_TEXT, min_size=1, max_size=8))
@example(data=None, texts=["foo_bar baz", "café—bar", "running dogs", "hi😀there"])
@example(data=None, texts=["INF inf", "NaN", "1e5 1E5", "0x1F", "00012 12"])
@example(data=None, texts=["İstanbul", "istanbul", "STRASSE", "straße", "ǅemal ǆemal"])
@example(data=None, texts=["a\\,b", "q\\w", "line\nbreak", "tab\tbed", "nul\x00byte"])
@example(data=None, texts=["0\U00016f00", "ab\U00016f00cd", "\U0001d407\U0001d41e\U0001d425 x"])
@example(data=None, texts=["e\u0301 é", "\uff21\uff22\uff23 abc", "ⅫⅣ ²³ ٣٤", "σς Σ"])
def test_hostile_text_matches_exactly_the_rows_with_every_word(
    hostile: Hostile, data: st.DataObject | None, texts: list[str]
) -> None:
    """``match(q)`` returns exactly the rows whose text holds every word of ``q``
    (``search.words``: runs of letters and digits, case-folded): no operator in ``q``
    widens it, no character of the text hides a word from it; no text breaks it."""
    summaries: list[str | None] = [*texts, None][:8]
    hostile.write([""] * 8, summaries)
    by_id = {b.id: b.summary for b in hostile.books}
    queries = list(texts)
    for text in texts:  # words of the texts, joined by hostile separators
        found = search.words(text)
        if found:
            queries.append(" | ".join(found[:2]))
            queries.append(f'"{found[0][:3]}*"')
            queries.append(found[-1].upper() + "-(" + found[0])
    if data is not None:
        queries.append(data.draw(HOSTILE_TEXT))
    for text in queries:
        wanted = search.words(text)
        for prefix in (False, True):
            expected = {i for i, s in by_id.items() if matches(s, wanted, prefix)}
            condition = S.summary.match(text, prefix=prefix)
            assert hostile.ids(condition) == expected, f"match({text!r}, prefix={prefix})"
            if wanted and not prefix:
                assert hostile.ids(condition.not_()) == set(by_id) - expected


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    bound=st.one_of(
        st.floats(),
        st.decimals(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.sampled_from([Decimal("1E+400"), Decimal("-1E-400"), 2**1100, -(2**1100)]),
        st.text(max_size=3),
        st.none(),
        st.booleans(),
    )
)
def test_numeric_bounds_are_refused_or_exact(corpus: Corpus, bound: Any) -> None:
    """A numeric bound is refused naming the field (NaN, infinities, non-numbers) or
    the range returns exactly the rows it covers."""
    if isinstance(bound, str | bool | None):
        refused = True
    elif isinstance(bound, Decimal):
        refused = not bound.is_finite()
    else:
        refused = isinstance(bound, float) and not math.isfinite(bound)
    if refused:
        with pytest.raises((TypeError, ValueError), match=r"BookEntity\.price"):
            S.price.gte(bound)
        return
    condition = S.price.gte(bound)
    try:
        limit = float(bound)
    except OverflowError:
        limit = math.inf if bound > 0 else -math.inf
    expected = {t for t, b in corpus.books.items() if b.price >= limit}
    assert corpus.find(condition) == expected, f"price >= {bound!r}"


# -- documents follow the flushes ---------------------------------------------------------


def ids_of(ctx: Context, *conditions: SearchCondition[BookEntity]) -> list[int]:
    return P.search_ids_in_redis(ctx, query(*conditions).sort_by_asc(S.pages))


def counter(ctx: Context, id_: int) -> bytes | None:
    index = index_of(ctx)
    value = index.redis.client.get(index.counter_key(id_))
    assert value is None or isinstance(value, bytes)
    return value


def test_insert_update_soft_delete_restore_and_force_delete(fluxa_ctx: Context) -> None:
    ctx = fluxa_ctx
    book = _book(ctx, "Dune", pages=500, summary="Spice", tags={Tag.NEW})
    other = _book(ctx, "Odes", pages=80)
    ctx.flush()
    id_ = book.id
    assert doc(ctx, id_) == expected_doc(ctx, id_)
    assert doc(ctx, id_)["title"] == "dune" and doc(ctx, id_)["pages"] == "500"
    assert ids_of(ctx, S.title.match("dune")) == [id_]

    book.title = "Arrakis"
    book.summary = None
    book.tags = None
    ctx.flush()
    assert doc(ctx, id_) == expected_doc(ctx, id_)
    assert "summary" not in doc(ctx, id_) and "tags" not in doc(ctx, id_), "NULL: no field"
    assert ids_of(ctx, S.title.match("dune")) == []
    assert ids_of(ctx, S.title.match("arrakis")) == [id_]
    assert ids_of(ctx, S.summary.is_null()) == [other.id, id_]
    assert ids_of(ctx, S.tags.eq(Tag.NEW)) == []

    book.delete()  # soft delete: the row stays in MySQL, its document goes
    ctx.flush()
    assert book.fake_delete
    assert doc(ctx, id_) == {}
    assert P.get_by_id(ctx, id_) is not None
    assert ids_of(ctx) == [other.id]
    assert P.count_in_redis(ctx, query()) == 1
    assert P.search_one_in_redis(ctx, query(S.title.match("arrakis"))) is None

    restored = P.must_get_by_id(fluxa_ctx.engine.new_context(), id_)
    restored._set(P.fake_delete_index, 0)  # no public restore API: the flag set back
    restored._ctx.flush()
    assert doc(ctx, id_) == expected_doc(ctx, id_) != {}
    assert ids_of(ctx, S.title.match("arrakis")) == [id_]

    restored.force_delete()
    other.force_delete()
    restored._ctx.flush()
    ctx.flush()
    assert doc(ctx, id_) == {} and doc(ctx, other.id) == {}
    assert ids_of(ctx) == []


def test_force_delete_of_a_soft_deleted_row_and_rebuild_never_index_it(
    fluxa_ctx: Context,
) -> None:
    ctx = fluxa_ctx
    gone, hidden, kept = (_book(ctx, t, pages=i) for i, t in enumerate(("Gone", "Hidden", "Kept")))
    ctx.flush()
    gone.delete()
    hidden.delete()
    ctx.flush()
    gone.force_delete()
    ctx.flush()
    P.reindex_redis_search(ctx)  # back-fill from MySQL: the soft-deleted row stays out
    assert ids_of(ctx) == [kept.id]
    assert doc(ctx, hidden.id) == {} and doc(ctx, gone.id) == {}
    assert ctx.engine.mysql().query_row("SELECT COUNT(*) FROM `BookEntity`") == (2,)


def test_an_update_of_a_soft_deleted_row_writes_no_document(fluxa_ctx: Context) -> None:
    ctx = fluxa_ctx
    book = _book(ctx, "Hidden", pages=1)
    ctx.flush()
    book.delete()
    ctx.flush()
    other = ctx.engine.new_context()
    hidden = P.must_get_by_id(other, book.id)  # get_by_id still returns it
    assert hidden.fake_delete
    hidden.title = "Renamed while deleted"
    hidden.pages = 2
    other.flush()
    assert doc(ctx, book.id) == {}
    assert P.search_ids_in_redis(ctx, query(S.title.match("renamed"))) == []
    assert P.count_in_redis(ctx, query()) == 0


@pytest.mark.parametrize("first", ["updates another column", "soft-deletes", "force-deletes"])
def test_an_update_from_a_stale_copy_writes_the_row_as_committed(
    fluxa_ctx: Context, first: str
) -> None:
    """Two contexts load the same row; the first flushes a change, then the second
    flushes a change of another column (its copy is stale): the document must be the
    row MySQL holds after both, not the second context's copy."""
    ctx = fluxa_ctx
    book = _book(ctx, "Original", pages=1, summary="first")
    ctx.flush()
    one, two = ctx.engine.new_context(), ctx.engine.new_context()
    early, late = P.must_get_by_id(one, book.id), P.must_get_by_id(two, book.id)
    if first == "updates another column":
        early.pages = 500
    elif first == "soft-deletes":
        early.delete()
    else:
        early.force_delete()
    one.flush()
    late.title = "Renamed from a stale copy"
    late.summary = None
    two.flush()
    assert doc(ctx, book.id) == expected_doc(ctx, book.id)
    if first == "updates another column":
        assert doc(ctx, book.id)["pages"] == "500"
        assert P.search_ids_in_redis(ctx, query(S.pages.eq(500))) == [book.id]
    else:
        assert doc(ctx, book.id) == {}
        assert P.count_in_redis(ctx, query()) == 0


def test_a_row_soft_deleted_behind_the_index_is_not_returned(fluxa_ctx: Context) -> None:
    """A document can lag (a row soft-deleted by SQL outside fluxa): the results are
    hydrated rows, and a soft-deleted one is left out."""
    ctx = fluxa_ctx
    first, second = _book(ctx, "First", pages=1), _book(ctx, "Second", pages=2)
    ctx.flush()
    ctx.engine.mysql().exec("UPDATE `BookEntity` SET `fake_delete` = `id` WHERE `id` = ?", first.id)
    P.clear_redis_cache(ctx)
    fresh = ctx.engine.new_context()
    assert ids_of(fresh) == [first.id, second.id], "the document is still there"
    assert titles(P.search_many_in_redis(fresh, query().sort_by_asc(S.pages))) == ["Second"]


def test_an_update_of_no_searchable_column_writes_no_document(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    ctx = fluxa_ctx
    category = CategoryEntityProvider.new(ctx)
    category.name = "c"
    entity = EveryTypeEntityProvider.new(ctx)
    entity.short, entity.category, entity.title = "s", category, "Alpha"
    ctx.flush()
    index = EveryTypeEntityProvider._binding(ctx).search
    assert index is not None
    client = index.redis.client
    before = (client.get(index.counter_key(entity.id)), client.hgetall(index.doc_key(entity.id)))
    assert before[1] == {b"_id": str(entity.id).encode(), b"title": b"alpha"}
    entity.text = "not searchable"  # its auto updated_at is not searchable either
    with fluxa_assert_queries() as counted:
        ctx.flush()
    assert not [op for _, op in counted.operations if op.startswith("search")], counted.operations
    after = (client.get(index.counter_key(entity.id)), client.hgetall(index.doc_key(entity.id)))
    assert after == before
    entity.title = "Beta"
    with fluxa_assert_queries() as counted:
        ctx.flush()
    ops = [op for _, op in counted.operations if op.startswith("search")]
    assert ops == ["search claim", "search write"]
    assert client.hget(index.doc_key(entity.id), "title") == b"beta"


def test_a_failed_flush_changes_no_document(fluxa_ctx: Context) -> None:
    ctx = fluxa_ctx
    first, second = _book(ctx, "First", pages=1), _book(ctx, "Second", pages=2)
    ctx.flush()
    before = {i: doc(ctx, i) for i in (first.id, second.id)}
    counters = {i: counter(ctx, i) for i in (first.id, second.id)}
    writer = ctx.engine.new_context()
    changed = P.must_get_by_id(writer, first.id)
    changed.title = "Renamed"
    changed.delete()
    duplicate = P.new_with_id(writer, second.id)  # the INSERT fails: duplicate key
    duplicate.title = "Duplicate"
    with pytest.raises(IntegrityError, match="Duplicate entry"):
        writer.flush()
    assert {i: doc(ctx, i) for i in before} == before
    assert {i: counter(ctx, i) for i in before} == counters, "no counter taken"
    assert changed.is_dirty
    duplicate.delete()  # a new entity: forgotten
    writer.flush()
    assert doc(ctx, first.id) == {} and doc(ctx, second.id) == before[second.id]


def test_a_flush_inside_atomic_writes_documents_on_commit_only(fluxa_ctx: Context) -> None:
    ctx = fluxa_ctx
    kept = _book(ctx, "Kept", pages=1)
    ctx.flush()
    kept_doc = doc(ctx, kept.id)
    with transaction.atomic():
        inside = _book(ctx, "Inside", pages=2)
        kept.title = "Renamed"
        ctx.flush()
        assert doc(ctx, inside.id) == {}, "not before Django commits"
        assert doc(ctx, kept.id) == kept_doc
    assert doc(ctx, inside.id) == expected_doc(ctx, inside.id) != {}
    assert doc(ctx, kept.id)["title"] == "renamed"
    renamed_doc = doc(ctx, kept.id)

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        lost = _book(ctx, "Lost", pages=3)
        kept.title = "Never"
        inside.delete()
        ctx.flush()
        raise Rollback
    assert doc(ctx, lost.id) == {}
    assert doc(ctx, kept.id) == renamed_doc == expected_doc(ctx, kept.id)
    assert doc(ctx, inside.id) == expected_doc(ctx, inside.id) != {}
    assert ids_of(ctx) == [kept.id, inside.id]


# -- past RediSearch's window of 10,000 results ---------------------------------------------

MANY = 10_050


def test_iteration_past_ten_thousand_results(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    ctx = fluxa_ctx
    for i in range(MANY):
        book = P.new(ctx)
        book.title = "Many"
        book.pages = (i * 7919) % MANY  # every value once, out of id order
        book.in_stock = i % 2 == 0
        if i % 11:  # many ties, and rows without a value
            book.published = datetime.date(2000, 1, 1) + datetime.timedelta(days=i % 37)
    ctx.flush()
    by_pages: dict[int, int] = dict(
        ctx.engine.mysql().query("SELECT `pages`, `id` FROM `BookEntity`")
    )
    everything = query(S.title.match("many")).sort_by_asc(S.pages)
    ids = P.search_ids_in_redis(ctx, everything)
    assert len(ids) == MANY
    assert ids == [by_pages[p] for p in range(MANY)], "every id, in sort order"
    descending = P.search_ids_in_redis(ctx, query().sort_by_desc(S.pages))
    assert descending == ids[::-1]
    in_stock = P.search_ids_in_redis(ctx, query(S.in_stock.eq(True)))
    assert len(in_stock) == len(set(in_stock)) == (MANY + 1) // 2
    assert P.count_in_redis(ctx, everything) == MANY
    # pages beyond the window
    page, total = P.search_many_in_redis_with_total(
        ctx, query().sort_by_asc(S.pages).pager(Pager(1001, 10))
    )
    assert total == MANY
    assert [b.pages for b in page] == list(range(10_000, 10_010))
    last = P.search_ids_in_redis(ctx, query().sort_by_asc(S.pages).pager(Pager(201, 50)))
    assert last == ids[10_050 - 50 :]
    straddling = P.search_ids_in_redis(ctx, query().sort_by_desc(S.pages).pager(Pager(2, 9990)))
    assert straddling == ids[::-1][9990:]
    assert P.search_ids_in_redis(ctx, query().sort_by_asc(S.pages).pager(Pager(300, 50))) == []
    # ties and NULLs: the cursor's order continues FT.SEARCH's exactly
    published: dict[int, datetime.date | None] = dict(
        ctx.engine.mysql().query("SELECT `id`, `published` FROM `BookEntity`")
    )
    for desc in (False, True):

        def by_published(pager: Pager | None = None, desc: bool = desc) -> list[int]:
            q = query().sort_by_desc(S.published) if desc else query().sort_by_asc(S.published)
            return P.search_ids_in_redis(ctx, q.pager(pager))

        ordered = by_published()
        assert sorted(ordered) == sorted(by_pages.values())
        dated = [d for d in (published[i] for i in ordered) if d is not None]
        assert dated == sorted(dated, reverse=desc)
        assert all(published[i] is None for i in ordered[len(dated) :]), "NULLs last"
        first, rest = by_published(Pager(1, 10_000)), by_published(Pager(2, 10_000))
        assert first + rest == ordered, "FT.SEARCH's page, then the cursor's: one order"
    with fluxa_assert_queries(mysql=0) as counted:
        within = P.search_ids_in_redis(ctx, query().sort_by_asc(S.pages).pager(Pager(2, 100)))
    assert within == ids[100:200]
    assert [op for _, op in counted.operations] == ["search"], "inside the window: one call"


# -- RESP2 and RESP3 ---------------------------------------------------------------------------


@pytest.fixture(params=[2, 3], ids=["RESP2", "RESP3"])
def protocol(request: pytest.FixtureRequest, fluxa_engine: Engine) -> Iterator[int]:
    """The search pool's client replaced by one speaking RESP2 or RESP3 (redis-py 8
    defaults to RESP3) on the same server and database."""
    pool = fluxa_engine.redis("search")
    saved = pool.client
    host, port = REDIS_ADDRESS.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), db=pool.db, protocol=request.param)
    pool.client = client
    try:
        yield int(request.param)
    finally:
        pool.client = saved
        client.close()


def test_search_methods_on_resp2_and_resp3(
    corpus: Corpus, protocol: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = corpus.ctx
    index = index_of(ctx)
    reply = index.redis.client.execute_command(  # type: ignore[no-untyped-call]
        "FT.SEARCH", index.alias, "*", "NOCONTENT", "LIMIT", "0", "1"
    )
    assert isinstance(reply, list if protocol == 2 else dict), "the protocol asked for"
    assert corpus.find(S.genre.eq(Genre.NOVEL), S.price.lt(10)) == {"Dune", "Neuromancer"}
    assert corpus.find(S.summary.match("spice"), S.rating.is_not_null()) == {"Dune"}
    by_price = query(S.in_stock.eq(True)).sort_by_desc(S.price)
    assert titles(P.search_many_in_redis(ctx, by_price)) == ["Essays", "Snow Crash", "Dune"]
    page, total = P.search_many_in_redis_with_total(ctx, by_price.pager(Pager(2, 2)))
    assert (titles(page), total) == (["Dune"], 3)
    first = P.search_one_in_redis(ctx, query(S.isbn.eq("X")))
    assert first is not None and first.title == "Snow Crash"
    ids = [corpus.id(t) for t in ("Odes", "Neuromancer", "Essays", "Snow Crash", "Dune")]
    assert P.search_ids_in_redis(ctx, query().sort_by_asc(S.pages)) == ids
    # the cursor (past 10,000 results) parses both reply shapes too
    assert index.all_ids("*", ["SORTBY", "pages", "ASC"]) == ids
    assert index.all_ids("*", ["SORTBY", "pages", "DESC"], skip=1) == ids[::-1][1:]
    assert sorted(index.all_ids("*", [])) == sorted(ids)
    # FT.INFO and FT._LIST: the index lifecycle
    before = index.current()
    assert before is not None and index.indexes() == [before]
    P.reindex_redis_search(ctx)
    assert index.current() not in (None, before)
    # an indexing failure (a document written wrong during the build) is parsed and named
    bad = index.doc_key(corpus.id("Odes"))
    wait = SearchIndex._wait_indexed

    def garbage_then_wait(self: SearchIndex, name: str, progress_key: str) -> None:
        self.redis.client.hset(bad, "price", "cheap")
        wait(self, name, progress_key)

    monkeypatch.setattr(SearchIndex, "_wait_indexed", garbage_then_wait)
    with pytest.raises(PoolError, match=rf"key {re.escape(bad)}: Invalid numeric value"):
        P.reindex_redis_search(ctx)
    monkeypatch.undo()
    P.reindex_redis_search(ctx)  # the document is rewritten from MySQL: this build passes
    assert corpus.find(S.price.lt(5)) == {"Odes"}


RESP2_SEARCH = [2, b"fxs:{n}:d:7", b"fxs:{n}:d:3"]
RESP3_SEARCH = {
    b"attributes": [],
    b"format": b"STRING",
    b"results": [{b"id": b"fxs:{n}:d:7", b"values": []}, {b"id": b"fxs:{n}:d:3", b"values": []}],
    b"total_results": 2,
    b"warning": [],
}


@pytest.mark.parametrize(
    ("reply", "total"),
    [
        (RESP2_SEARCH, 2),
        (RESP3_SEARCH, 2),
        ([12, "fxs:{n}:d:7", "fxs:{n}:d:3"], 12),  # decoded replies
        ({"total_results": 12, "results": [{"id": "fxs:{n}:d:7"}, {"id": "fxs:{n}:d:3"}]}, 12),
    ],
    ids=["RESP2", "RESP3", "RESP2-str", "RESP3-str"],
)
def test_parse_search_on_both_reply_shapes(reply: Any, total: int) -> None:
    assert search.parse_search(reply, "fxs:{n}:d:") == (total, [7, 3])
    assert search.parse_search([0], "p:") == (0, [])
    assert search.parse_search({b"total_results": 0, b"results": []}, "p:") == (0, [])


@pytest.mark.parametrize(
    "reply",
    [
        [
            b"index_name",
            b"fxs:{n}:i:abc:2",
            b"indexing",
            0,
            b"hash_indexing_failures",
            b"1",
            b"Index Errors",
            [b"indexing failures", 1, b"last indexing error key", b"fxs:{n}:d:5"],
        ],
        {
            b"index_name": b"fxs:{n}:i:abc:2",
            b"indexing": 0,
            b"hash_indexing_failures": 1,
            b"Index Errors": {b"indexing failures": 1, b"last indexing error key": b"fxs:{n}:d:5"},
        },
    ],
    ids=["RESP2", "RESP3"],
)
def test_parse_info_on_both_reply_shapes(reply: Any) -> None:
    info = search.parse_info(reply)
    assert set(info) >= {"index_name", "indexing", "hash_indexing_failures", "Index Errors"}
    assert text(info["index_name"]) == "fxs:{n}:i:abc:2"
    assert int(info["hash_indexing_failures"]) == 1
    errors = search.parse_info(info["Index Errors"])
    assert text(errors["last indexing error key"]) == "fxs:{n}:d:5"


@pytest.mark.parametrize(
    ("reply", "cursor"),
    [
        ([[3, [b"_id", b"7", b"pages", b"5"], [b"_id", b"3"]], 42], 42),
        ([[3, [b"_id", b"7", b"pages", b"5"], [b"_id", b"3"]], 0], 0),
        (
            [
                {
                    b"results": [
                        {b"extra_attributes": {b"_id": b"7", b"pages": b"5"}, b"values": []},
                        {b"extra_attributes": {b"_id": b"3"}, b"values": []},
                    ],
                    b"total_results": 3,
                },
                42,
            ],
            42,
        ),
        (
            {
                "results": [
                    {"extra_attributes": {"_id": "7", "pages": "5"}},
                    {"extra_attributes": {"_id": "3"}},
                ]
            },
            0,
        ),
    ],
    ids=["RESP2", "RESP2-last", "RESP3", "RESP3-str-without-cursor"],
)
def test_aggregate_rows_on_both_reply_shapes(reply: Any, cursor: int) -> None:
    assert _aggregate_rows(reply, "pages") == ([(7, "5"), (3, None)], cursor)
    assert _aggregate_rows(reply) == ([(7, None), (3, None)], cursor)


# -- commands, definition checks, a Redis without the search module ---------------------------

APP = "fluxa-search-commands"


def novel_settings(db: str, search_redis: str = f"{REDIS_ADDRESS}:0") -> dict[str, Any]:
    return {
        "POOLS": {
            "default": {
                "mysql": {"uri": mysql_uri(db)},
                "redis": f"{REDIS_ADDRESS}:{REDIS_TEST_DB}",
            },
            "search": {"redis": search_redis},
        },
        "ENTITIES": ["tests.search_entities"],
        "OPTIONS": {"app_name": APP},
    }


@pytest.fixture
def own_engine() -> Iterator[None]:
    """The commands build their engine from the overridden settings; the session's is
    kept aside (and the indexes the test built are dropped)."""
    from fluxa_django import conf

    saved = conf._engine
    conf._engine = None
    try:
        yield
    finally:
        engine = conf._engine
        if engine is not None:
            for schema in engine.schemas.values():
                with contextlib.suppress(Exception):
                    for_schema(engine, schema).drop()
        reset_engine()
        conf._engine = saved


def migrate(*args: str) -> str:
    out = io.StringIO()
    call_command("fluxa_migrate", *args, "--noinput", stdout=out)
    return out.getvalue()


def test_fluxa_migrate_plans_and_builds_the_search_index(mysql_db: str, own_engine: None) -> None:
    with override_settings(FLUXA=novel_settings(mysql_db)):
        out = migrate("--plan")
        assert "CREATE TABLE `Novel`" in out
        assert "Redis Search indexes (1):" in out
        (line,) = [x for x in out.splitlines() if "[search:search]" in x]
        assert re.fullmatch(
            r"  \[search:search\] Novel: build fxs:\{[0-9a-f]{32}\}:i:[0-9a-f]{12}:1, "
            r"back-fill from MySQL, then point alias fxs:\{[0-9a-f]{32}\}:a at it  -- new index",
            line,
        ), line
        assert "--plan: nothing applied." in out
        engine = get_engine()
        index = for_schema(engine, engine.schema(Novel))
        assert index.current() is None and index.indexes() == [], "--plan built nothing"
        for search_without_index in (
            lambda: index.search("*", [], 0, 10),
            lambda: index.all_ids("*", []),
        ):
            with pytest.raises(PoolError, match="Novel: its Redis Search index does not exist"):
                search_without_index()

        out = migrate()
        assert "Applied 2 change(s)." in out, out
        assert index.current() == line.split("build ")[1].split(",")[0]
        engine.mysql().exec("INSERT INTO `Novel` (`id`, `title`, `pages`) VALUES (1, 'Dune', 9)")
        out = migrate("--plan")
        assert "Redis Search" not in out and "No changes" in out, "the index is up to date"

        reindexed = io.StringIO()
        call_command("fluxa_reindex", stdout=reindexed)  # every searchable entity
        assert reindexed.getvalue().splitlines()[1:] == [
            "  Novel: 1/1 rows indexed (100%)",
            "Reindexed 1 entity.",
        ]
        assert index.all_ids("@title:(dune)", []) == [1], "back-filled from MySQL"
        with pytest.raises(
            CommandError, match=r"not a searchable entity: Nope \(searchable: Novel\)"
        ):
            call_command("fluxa_reindex", "Nope", stdout=io.StringIO())


def test_a_search_pool_without_the_search_module_is_a_clear_error(
    mysql_db: str, own_engine: None
) -> None:
    with override_settings(FLUXA=novel_settings(mysql_db, f"{PLAIN_REDIS_ADDRESS}:0")):
        with pytest.raises(CommandError) as raised:
            migrate("--plan")
        message = str(raised.value)
        assert "redis pool 'search' has no search module" in message, message
        assert "Novel" in message
        registry = registry_from_settings()
        with pytest.raises(PoolError, match="redis pool 'search' has no search module") as error:
            registry.validate()
        assert error.value.pool == "search"


def test_an_unreachable_search_pool_is_not_said_to_lack_the_module(
    mysql_db: str, own_engine: None
) -> None:
    with override_settings(FLUXA=novel_settings(mysql_db, "127.0.0.1:1:0")):
        with pytest.raises(CommandError) as raised:
            migrate("--plan")
    message = str(raised.value)
    assert "redis pool 'search' (127.0.0.1:1/0): cannot connect" in message, message
    assert "search module" not in message


def test_a_search_pool_on_a_database_other_than_0_is_e032_without_network() -> None:
    registry = Registry()
    registry.register_mysql("root:@tcp(127.0.0.1:1)/nowhere")  # never connected
    registry.register_redis("127.0.0.1:1", 0)
    registry.register_redis("127.0.0.1:1", 3, "search")
    registry.register_entity(Novel)
    (error,) = registry.check()
    assert error.code == "E032"
    assert "Novel" in str(error) and "redis pool 'search' uses database 3" in str(error)
    assert "RediSearch indexes only database 0" in str(error)
    settings = novel_settings("nowhere", "127.0.0.1:1:3")
    with override_settings(FLUXA=settings):
        assert [m.id for m in check_fluxa()] == ["fluxa.E032"]
    registry = Registry()
    registry.register_redis("127.0.0.1:1", 0, "search")
    registry.register_mysql("root:@tcp(127.0.0.1:1)/nowhere")
    registry.register_redis("127.0.0.1:1", 0)
    registry.register_entity(Novel)
    assert registry.check() == [], "database 0 is fine"


def test_without_a_sort_results_come_in_id_order_on_every_page(fluxa_ctx: Context) -> None:
    """RediSearch's own order (relevance, which depends on the documents' lengths) is not
    the order of the rows: a query without a sort is answered by id, and its pages join
    up to the same order."""
    ctx = fluxa_ctx
    books = [_book(ctx, "word " * (1 + (i * 7) % 13), pages=i % 3) for i in range(30)]
    ctx.flush()
    ids = sorted(b.id for b in books)
    assert P.search_ids_in_redis(ctx, RedisSearchQuery()) == ids
    matching = sorted(b.id for b in books if b.pages == 1)
    assert P.search_ids_in_redis(ctx, query(S.pages.eq(1))) == matching
    assert P.search_ids_in_redis(ctx, query(S.title.match("word"))) == ids
    pages = [
        P.search_ids_in_redis(ctx, query(S.title.match("word")).pager(Pager(n, 7)))
        for n in range(1, 6)
    ]
    assert [i for page in pages for i in page] == ids


def test_a_second_sort_and_a_refused_raw_fragment_are_our_errors(corpus: Corpus) -> None:
    with pytest.raises(
        TypeError, match=r"sorts by one field.*BookEntity\.price.*BookEntity\.pages"
    ):
        RedisSearchQuery().sort_by_asc(S.price).sort_by_desc(S.pages)
    with pytest.raises(
        FluxaError, match=r"BookEntity: Redis Search refused the query on redis pool 'search'"
    ) as raised:
        P.search_ids_in_redis(corpus.ctx, RedisSearchQuery[BookEntity]().raw("@title:((("))
    assert isinstance(raised.value.__cause__, Exception)


def test_a_condition_a_field_lacks_names_the_field_and_its_conditions() -> None:
    with pytest.raises(
        AttributeError,
        match=r"BookEntity\.title \(TextSearchField\) has no eq\(\).*searchable='tag' or 'both'",
    ):
        U.title.eq("Dune")
    with pytest.raises(
        AttributeError,
        match=r"BookEntity\.pages \(NumericSearchField\) has no match\(\): its conditions are between, eq",
    ):
        U.pages.match("x")
    assert not hasattr(S.pages, "_missing")


def test_an_index_of_another_definition_asks_for_fluxa_migrate(corpus: Corpus) -> None:
    """Code deployed before ``fluxa_migrate`` rebuilt the index (here: an index of an older
    definition, without the ``_id`` sort field, behind the alias): the refused query says
    to run the migration, naming entity and pool."""
    index = P._binding(corpus.ctx).search
    assert index is not None
    old = f"{index.base}i:000000000000:1"
    client = index.redis.client
    client.execute_command(  # type: ignore[no-untyped-call]
        "FT.CREATE", old, "ON", "HASH", "PREFIX", "1", index.doc_prefix, "SCHEMA", "title", "TEXT"
    )
    current = index.current()
    try:
        client.execute_command("FT.ALIASUPDATE", index.alias, old)  # type: ignore[no-untyped-call]
        with pytest.raises(
            PoolError,
            match=r"BookEntity: .*redis pool 'search' was built from another definition.*fluxa_migrate",
        ):
            P.search_ids_in_redis(corpus.ctx, RedisSearchQuery())
    finally:
        client.execute_command("FT.ALIASUPDATE", index.alias, current)  # type: ignore[no-untyped-call]
        client.execute_command("FT.DROPINDEX", old)  # type: ignore[no-untyped-call]
    assert len(P.search_ids_in_redis(corpus.ctx, RedisSearchQuery())) == len(ALL)
