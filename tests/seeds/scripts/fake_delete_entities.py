"""The entity of shared/seeds/03-fake-delete.txt, in its own module.

Imported by ``seed_03_fake_delete.py`` (a plain script: no Django anywhere).
"""

from __future__ import annotations

from fluxa_django import Entity, uint64


class UserEntity(Entity):
    id: uint64
    name: str
    email: str
    fake_delete: bool
