"""The entity the benchmarks measure (its typed provider is generated at run time)."""

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
