"""Entities for the fluxa_migrate command tests (kept small)."""

from __future__ import annotations

from fluxa_django import Entity, field, uint32


class ShopItem(Entity):
    id: uint32
    title: str = field(length=80)

    class Meta:
        unique_indexes = {"Title": ["title"]}
