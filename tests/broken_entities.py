"""Entities with definition errors, for the system-check tests."""

from __future__ import annotations

from fluxa_django import Entity, field, uint64


class GoodEntity(Entity):
    id: uint64
    name: str


class BadLengthEntity(Entity):
    id: uint64
    name: str = field(length=0)


class BadIndexEntity(Entity):
    id: uint64
    name: str

    class Meta:
        indexes = {"Missing": ["nope"]}
