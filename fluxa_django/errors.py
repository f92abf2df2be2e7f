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


class _DatabaseError(FluxaError):
    """A statement failed on a MySQL pool; the driver's exception is ``__cause__``.

    ``pool``, ``entity`` and ``table`` name where it happened (``entity`` and
    ``table`` are empty for raw SQL); ``code`` is the server's error number
    (``0`` when the driver gave none).
    """

    def __init__(
        self, message: str, *, pool: str, entity: str = "", table: str = "", code: int = 0
    ) -> None:
        super().__init__(message)
        self.pool = pool
        self.entity = entity
        self.table = table
        self.code = code


class IntegrityError(_DatabaseError):
    """A write broke a constraint (duplicate key, ...). Its transaction was rolled back."""


class OperationalError(_DatabaseError):
    """Any other failure of a MySQL statement or connection (lost connection, timeout,
    unknown column, ...). A failed flush was rolled back."""


class HookError(FluxaError):
    """An after-insert/update/delete hook failed. The flush itself was committed."""


class EntityNotFound(FluxaError):
    """``must_get_by_id`` found no row."""
