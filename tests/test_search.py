"""Redis Search: documents maintained by flush, typed queries, escaping, the index lifecycle."""

from __future__ import annotations

from fluxa_django import Context, Pager, RedisSearchQuery
from tests.generated import BookEntity, BookEntityProvider, Genre, Tag

S = BookEntityProvider.fields_redis_search


def _book(ctx: Context, title: str, **values: object) -> BookEntity:
    book = BookEntityProvider.new(ctx)
    book.title = title
    for name, value in values.items():
        setattr(book, name, value)
    return book


def titles(books: list[BookEntity]) -> list[str]:
    return [b.title for b in books]


def test_smoke(fluxa_ctx: Context) -> None:
    _book(fluxa_ctx, "Dune", pages=500, price=9.99, genre=Genre.NOVEL, tags={Tag.NEW})
    _book(fluxa_ctx, "Odes", pages=80, price=4.5, genre=Genre.POETRY)
    fluxa_ctx.flush()
    q = RedisSearchQuery().filter(S.pages.gte(100))
    assert titles(BookEntityProvider.search_many_in_redis(fluxa_ctx, q)) == ["Dune"]
    q2 = RedisSearchQuery().filter(S.title.match("odes")).sort_by_asc(S.price)
    assert titles(BookEntityProvider.search_many_in_redis(fluxa_ctx, q2)) == ["Odes"]
    books, total = BookEntityProvider.search_many_in_redis_with_total(
        fluxa_ctx, RedisSearchQuery().sort_by_desc(S.pages).pager(Pager(1, 1))
    )
    assert titles(books) == ["Dune"] and total == 2
