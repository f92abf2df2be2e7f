"""Entities of the async flush reliability tests (``test_async_*.py``).

Their providers are generated when the tests run (``async_helpers.generated``), into
``.fluxa/async_generated/``, which the consumer processes import too. Records are keyed
``default:<table>``: on 6 partitions ``AsyncEventEntity`` and ``AsyncVisitEntity``
land on partitions 0 and 1, ``AsyncItemEntity`` and ``AsyncNoteEntity`` on 4 and 5, so
two consumers of the group (partitions 0-2 and 3-5) both get work.
"""

from __future__ import annotations

import datetime

from fluxa_django import Entity, field, int64, uint32, uint64


class AsyncItemEntity(Entity):
    """Cached in Redis and locally, a cached unique name, soft deletes."""

    id: uint64
    name: str = field(required=True, length=100)
    price: float = field(decimal=(10, 2))
    stock: uint32
    tags: str | None = field(set=("new", "sale", "gift"))
    fake_delete: bool

    class Meta:
        redis_cache = True
        local_cache = True
        unique_indexes = {"Name": ["name"]}
        cached_unique_indexes = {"Name": ["name"]}


class AsyncEventEntity(Entity):
    """No cache tier; hard deletes."""

    id: uint64
    kind: str = field(enum=("view", "cart", "order"))
    payload: str = field(length="max")
    amount: int64
    happened: datetime.datetime


class AsyncNoteEntity(Entity):
    """Cached in Redis; bytes and dates."""

    id: uint32
    title: str = field(length=200)
    body: bytes | None
    day: datetime.date | None

    class Meta:
        redis_cache = True


class AsyncVisitEntity(Entity):
    """Inserted in bulk (page views), no hooks."""

    id: uint64
    page: str = field(length=100)
    visitor: uint32
    seen: datetime.datetime


class AsyncHookCallEntity(Entity):
    """One after-hook call, written by the hook through the context it is given."""

    id: uint64
    entity: str = field(length=40)
    kind: str = field(length=1)
    entity_id: uint64
    changed: str = field(length=200)


WORKLOAD = ("AsyncItemEntity", "AsyncEventEntity", "AsyncNoteEntity", "AsyncVisitEntity")
