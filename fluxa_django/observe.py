"""Process-wide round-trip observers (tests pin query counts with them), and what a pool
needs of a context to log its calls on it.

``OBSERVERS`` is empty in production, so the hot paths pay one truthiness check. This
module sits below the backends and the runtime: both report through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Observer = Callable[[str, str], None]  # (source "mysql"/"redis"/"kafka", operation)
OBSERVERS: list[Observer] = []


def notify(source: str, operation: str) -> None:
    for observer in OBSERVERS:
        observer(source, operation)


class QueryLog(Protocol):
    """What a backend may do with a context: log a call on its query loggers
    (``runtime.context.Context`` is one)."""

    _loggers: list[Any]

    @property
    def logging(self) -> bool: ...

    def _log(
        self,
        source: str,
        pool: str,
        operation: str,
        query: str,
        started: float,
        error: BaseException | None = None,
        miss: bool = False,
    ) -> None: ...
