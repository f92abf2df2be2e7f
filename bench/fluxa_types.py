"""Static types of the provider generated at run time.

The typed package is generated into ``.fluxa/bench_generated/`` when the
benchmark starts (so it always matches the library under test), which means
mypy cannot import it. These protocols describe the part the benchmarks use;
attribute access on the real objects stays direct (a cast, not a wrapper).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from fluxa_django import Context, Query, RedisSearchQuery
from fluxa_django.runtime.query import Column
from fluxa_django.runtime.search import NumericSearchField, TextSearchField

if TYPE_CHECKING:
    from fluxa_django import Engine
    from fluxa_django.runtime.tiers import Tiers


class BenchItem(Protocol):
    """A generated bench entity class (typed properties over the row)."""

    @property
    def id(self) -> int: ...

    name: str
    price: float
    quantity: int
    active: bool
    created_at: datetime.datetime
    category: int


class BenchItemFields(Protocol):
    @property
    def id(self) -> Column[int]: ...

    @property
    def quantity(self) -> Column[int]: ...


class BenchItemProvider(Protocol):
    """A generated provider singleton (``BenchItemEntityProvider`` and its cached twins)."""

    @property
    def fields(self) -> BenchItemFields: ...

    @property
    def select_sql(self) -> str: ...

    @property
    def by_id_sql(self) -> str: ...

    def new(self, ctx: Context) -> BenchItem: ...

    def get_by_id(self, ctx: Context, id: int) -> BenchItem | None: ...

    def get_by_ids(self, ctx: Context, ids: Iterable[int]) -> list[BenchItem]: ...

    def search_many(self, ctx: Context, query: Query) -> list[BenchItem]: ...


class BenchSearchItemSearchFields(Protocol):
    """``BenchSearchItemEntityProvider.fields_redis_search``: the searchable fields."""

    @property
    def name(self) -> TextSearchField[Any]: ...

    @property
    def price(self) -> NumericSearchField[float, Any]: ...

    @property
    def quantity(self) -> NumericSearchField[int, Any]: ...


class BenchSearchItemProvider(BenchItemProvider, Protocol):
    """The generated ``BenchSearchItemEntityProvider`` (Redis cache and Redis Search)."""

    @property
    def fields_redis_search(self) -> BenchSearchItemSearchFields: ...

    def search_many_in_redis(
        self, ctx: Context, query: RedisSearchQuery[Any]
    ) -> list[BenchItem]: ...

    def search_ids_in_redis(self, ctx: Context, query: RedisSearchQuery[Any]) -> list[int]: ...

    def tiers(self, engine: Engine) -> Tiers | None: ...


class BenchPlain(Protocol):
    """The generated ``BenchPlainEntity`` class."""

    @property
    def id(self) -> int: ...

    name: str
    email: str
    category: int
    score: float
    seen_at: datetime.datetime
    active: bool


class BenchPlainProvider(Protocol):
    """The generated ``BenchPlainEntityProvider`` singleton."""

    @property
    def insert_sql(self) -> str: ...

    @property
    def insert_row_sql(self) -> str: ...

    def new(self, ctx: Context) -> BenchPlain: ...
