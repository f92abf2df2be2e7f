"""The entity of the Redis Search command tests (``FLUXA["ENTITIES"]`` of an override):
one searchable entity, on a database of its own (tests/test_search.py)."""

from __future__ import annotations

from fluxa_django import Entity, field, uint16, uint32


class Novel(Entity):
    id: uint32
    title: str = field(required=True, length=100, searchable=True, sortable=True)
    pages: uint16 = field(searchable=True)

    class Meta:
        table = "Novel"
        redis_search = "search"
