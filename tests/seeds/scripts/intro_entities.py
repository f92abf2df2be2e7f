"""Step 1 of shared/seeds/01-introduction.txt: the entity definition, in its own module.

Imported by ``seed_01_introduction.py`` (a plain script: no Django anywhere).
"""

from __future__ import annotations

from fluxa_django import Entity, field, uint8, uint64


class UserEntity(Entity):
    id: uint64
    name: str = field(required=True)
    email: str = field(required=True)
    age: uint8

    class Meta:
        redis_cache = True
        unique_indexes = {"Email": ["email"]}
