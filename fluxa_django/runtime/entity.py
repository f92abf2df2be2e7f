"""``EntityBase``: the state every generated entity class shares.

An entity holds its row in database form: ``_row`` is the tuple read from MySQL
(never copied on load); the first setter call keeps that tuple as ``_orig`` and
switches ``_row`` to a list. Dirty columns are the positions where the two
differ, so setting a value back to what was loaded undoes the change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from fluxa_django.runtime.context import Context
    from fluxa_django.runtime.provider import ProviderBase

LOADED = 0
NEW = 1
DELETE = 2
FORCE_DELETE = 3
GONE = 4  # deleted by a flush: no longer tracked or flushable


class EntityBase:
    """Base of generated entity classes (slotted; no per-instance dict)."""

    __slots__ = ("_ctx", "_orig", "_row", "_state")
    _provider: ClassVar[ProviderBase[Any]]

    _ctx: Context
    _row: tuple[Any, ...] | list[Any]
    _orig: tuple[Any, ...] | None
    _state: int

    def __repr__(self) -> str:
        state = ("", " new", " deleted", " force-deleted", " gone")[self._state]
        dirty = " dirty" if self.is_dirty else ""
        return f"<{type(self).__name__} id={self._row[0]}{state}{dirty}>"

    @property
    def id(self) -> int:
        value: int = self._row[0]
        return value

    @property
    def is_new(self) -> bool:
        return self._state == NEW

    @property
    def is_dirty(self) -> bool:
        """True when a flush would write something for this entity."""
        if self._state in (NEW, DELETE, FORCE_DELETE):
            return True
        orig = self._orig
        return orig is not None and tuple(self._row) != orig

    def _set(self, index: int, value: Any) -> None:
        row = self._row
        current = row[index]
        if current == value and type(current) is type(value):
            return
        if self._state == GONE:
            raise ValueError(f"{type(self).__name__} {row[0]} was deleted; it cannot be changed")
        if self._orig is None and self._state != NEW:
            # First change since load/flush: keep the loaded row, start tracking.
            # (A new entity is tracked from new() and its row is already a list.)
            self._orig = row  # type: ignore[assignment]
            self._row = row = list(row)
            self._ctx._tracked[id(self)] = self
        row[index] = value  # type: ignore[index]

    def changed_columns(self) -> list[int]:
        """Positions of the columns that differ from the loaded row."""
        orig = self._orig
        if orig is None:
            return []
        row = self._row
        return [
            i for i in range(1, len(row)) if row[i] != orig[i] or type(row[i]) is not type(orig[i])
        ]

    def delete(self) -> None:
        """Delete on the next flush (a soft delete on entities with ``fake_delete``)."""
        index = self._provider.fake_delete_index
        if self._mark_deleted(FORCE_DELETE if index is None else DELETE) and index is not None:
            self._set(index, self._row[0])  # soft delete: the row stores its own id

    def _force_delete(self) -> None:
        self._mark_deleted(FORCE_DELETE)

    def _mark_deleted(self, state: int) -> bool:
        """Schedule a delete; a new entity is simply forgotten. True when scheduled."""
        if self._state == GONE:
            return False
        if self._state == NEW:
            self._state = GONE
            self._ctx._untrack(self)
            return False
        self._state = state
        self._ctx._track(self)
        return True
