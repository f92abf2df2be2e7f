"""Process-wide round-trip observers (tests pin query counts with them).

``OBSERVERS`` is empty in production, so the hot paths pay one truthiness check.
"""

from __future__ import annotations

from collections.abc import Callable

Observer = Callable[[str, str], None]  # (source "mysql"/"redis", operation)
OBSERVERS: list[Observer] = []


def notify(source: str, operation: str) -> None:
    for observer in OBSERVERS:
        observer(source, operation)
