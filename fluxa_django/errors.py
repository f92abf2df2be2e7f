"""Exceptions raised by fluxa_django.

Every error names what is at fault (entity, field, pool) and never carries a
credential: messages are built from parsed, password-free descriptions only.
"""

from __future__ import annotations


class FluxaError(Exception):
    """Base class of every exception fluxa_django raises on purpose."""


class ConfigError(FluxaError):
    """Bad settings: an unknown key, a malformed URI, a missing pool."""


class DefinitionError(FluxaError):
    """An entity definition is invalid.

    ``code`` is the stable system-check id suffix (``fluxa.E0xx``); ``entity``
    and ``field`` name the culprit when there is one.
    """

    def __init__(self, message: str, *, code: str, entity: str = "", field: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.entity = entity
        self.field = field


class DefinitionErrors(DefinitionError):
    """Several definition errors found in one pass; ``errors`` lists them all."""

    def __init__(self, errors: list[DefinitionError]) -> None:
        self.errors = errors
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}", code=first.code, entity=first.entity, field=first.field)


class PoolError(FluxaError):
    """A pool could not be reached or does not meet the requirements."""

    def __init__(self, message: str, *, pool: str) -> None:
        super().__init__(message)
        self.pool = pool


class HookError(FluxaError):
    """An after-insert/update/delete hook failed. The flush itself was committed."""


class EntityNotFound(FluxaError):
    """``must_get_by_id`` found no row."""
