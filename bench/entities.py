"""The entities the benchmarks measure (their typed providers are generated at run time).

The three ``Bench*ItemEntity`` have the same fields and data, each in its own table;
they differ only in the cache tiers their reads may be served from.
``BenchSearchItemEntity`` is the cached one with searchable fields (Redis Search).
``BenchPlainEntity`` is the floor case of the insert flush: only plain columns
(no decimal, no reference, no auto timestamp, no cache tier).
"""

from __future__ import annotations

import datetime

from fluxa_django import Entity, field, uint16, uint32, uint64


class BenchItemEntity(Entity):
    """A plain row: no Redis or local cache, so every read goes to MySQL."""

    id: uint64
    name: str = field(length=100)
    price: float = field(decimal=(10, 2))
    quantity: uint32
    active: bool
    created_at: datetime.datetime
    category: uint16


class BenchCachedItemEntity(Entity):
    """``BenchItemEntity`` with the Redis row cache (no local cache): the Redis-hit case."""

    id: uint64
    name: str = field(length=100)
    price: float = field(decimal=(10, 2))
    quantity: uint32
    active: bool
    created_at: datetime.datetime
    category: uint16

    class Meta:
        redis_cache = True


class BenchLocalItemEntity(Entity):
    """``BenchItemEntity`` with the process-local cache (and Redis, which invalidates it)."""

    id: uint64
    name: str = field(length=100)
    price: float = field(decimal=(10, 2))
    quantity: uint32
    active: bool
    created_at: datetime.datetime
    category: uint16

    class Meta:
        redis_cache = True
        local_cache = True


class BenchSearchItemEntity(Entity):
    """``BenchCachedItemEntity`` with Redis Search: the ``search_many_in_redis`` case.

    Its index lives on the ``search`` pool (database 0: RediSearch indexes no other);
    its row cache on the default pool, as ``BenchCachedItemEntity``'s.
    """

    id: uint64
    name: str = field(length=100, searchable=True)
    price: float = field(decimal=(10, 2), searchable=True, sortable=True)
    quantity: uint32 = field(searchable=True)
    active: bool
    created_at: datetime.datetime
    category: uint16

    class Meta:
        redis_cache = True
        redis_search = "search"


class BenchPlainEntity(Entity):
    """Plain columns only: two strings, a uint16, a double, a datetime, a bool.

    No decimal (its setter builds a ``Decimal``), no reference, no cache tier, and the
    datetime is not called ``created_at``/``updated_at`` (those are filled by flush).
    """

    id: uint64
    name: str = field(length=100)
    email: str = field(length=100)
    category: uint16
    score: float
    seen_at: datetime.datetime
    active: bool
