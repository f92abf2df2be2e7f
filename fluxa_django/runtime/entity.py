"""``EntityBase``: the state every generated entity class shares, and its only writer.

An entity has three pieces of state, and only the methods of this class change
them (flush, the context and providers call these methods; they never assign
the fields themselves):

- ``_row``: the current values in database form. A tuple while the entity is
  clean (the tuple read from MySQL, never copied on load); a list while it has
  changes; a list from ``new()`` until its insert is flushed.
- ``_orig``: the loaded baseline, kept by the first change (``None`` while
  clean). Dirty columns are the positions where ``_row`` and ``_orig`` differ,
  so setting a value back to what was loaded undoes the change, and when the
  last change is undone the entity is clean again.
- ``_state``: ``LOADED``, ``NEW``, ``DELETE`` (soft delete scheduled),
  ``FORCE_DELETE`` or ``GONE`` (deleted by a flush, or a new entity dropped).

After a flush every written entity is clean: its row is the tuple that was
written, ``_orig`` is ``None`` and it is no longer tracked.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from fluxa_django.runtime.context import Context
    from fluxa_django.runtime.provider import ProviderBase

LOADED = 0
NEW = 1
DELETE = 2
FORCE_DELETE = 3
GONE = 4  # deleted by a flush: no longer tracked or flushable

_ZERO_DATETIME = datetime.datetime(1000, 1, 1)  # an auto timestamp not set yet

Self = TypeVar("Self", bound="EntityBase")


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

    # -- construction (providers) ----------------------------------------------------

    @classmethod
    def _loaded(cls: type[Self], ctx: Context, row: tuple[Any, ...]) -> Self:
        """An entity for a row read from the database (clean, untracked)."""
        entity = object.__new__(cls)
        entity._ctx = ctx
        entity._row = row
        entity._orig = None
        entity._state = LOADED
        return entity

    @classmethod
    def _loaded_many(
        cls: type[Self], ctx: Context, rows: Iterable[tuple[Any, ...]], cache: dict[int, Any] | None
    ) -> list[Self]:
        """Entities for rows read from the database, reusing those ``cache`` (the
        context cache of this type) holds and adding the new ones to it."""
        new = object.__new__
        out: list[Self] = []
        append = out.append
        held = cache.get if cache else None  # (an empty cache, as in a fresh context: no lookups)
        for row in rows:
            entity = held(row[0]) if held is not None else None
            if entity is None:
                entity = new(cls)
                entity._ctx = ctx
                entity._row = row
                entity._orig = None
                entity._state = LOADED
                if cache is not None:
                    cache[row[0]] = entity
            append(entity)
        return out

    @classmethod
    def _created(cls: type[Self], ctx: Context, row: list[Any]) -> Self:
        """A new entity (``new()``) with its default row; tracked at once."""
        entity = object.__new__(cls)
        entity._ctx = ctx
        entity._row = row
        entity._orig = None
        entity._state = NEW
        ctx._track(entity)
        return entity

    # -- reading ----------------------------------------------------------------------

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

    def changed_columns(self) -> list[int]:
        """Positions of the columns that differ from the loaded row."""
        orig = self._orig
        if orig is None:
            return []
        row = self._row
        return [
            i for i in range(1, len(row)) if row[i] != orig[i] or type(row[i]) is not type(orig[i])
        ]

    @property
    def _stored(self) -> tuple[Any, ...] | list[Any]:
        """The row as the database has it (the loaded baseline while dirty)."""
        orig = self._orig
        return self._row if orig is None else orig

    # -- changing (generated setters, delete) -------------------------------------------

    def _set(self, index: int, value: Any) -> None:
        if self._state == NEW:  # tracked since new(); its row is a list
            self._row[index] = value  # type: ignore[index]
            return
        row = self._row
        current = row[index]
        if current == value and type(current) is type(value):
            return
        if self._state == GONE:
            raise ValueError(f"{type(self).__name__} {row[0]} was deleted; it cannot be changed")
        orig = self._orig
        if orig is None:
            # First change since load/flush: keep the loaded row, start tracking.
            self._orig = orig = row  # type: ignore[assignment]
            self._row = row = list(row)
            self._ctx._track(self)
        elif (
            self._state == LOADED
            and value == orig[index]
            and type(value) is type(orig[index])
            and all(
                a == b and type(a) is type(b)
                for i, (a, b) in enumerate(zip(row, orig, strict=True))
                if i != index
            )
        ):
            # The last change is set back: the entity is clean again.
            self._row = orig
            self._orig = None
            self._ctx._untrack(self)
            return
        row[index] = value  # type: ignore[index]

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

    # -- flush and context (runtime/flush.py, Context.clear_flush) ------------------------

    def _insert_row(self, now: Any, created: int | None, updated: int | None) -> list[Any]:
        """The row to insert (a new entity); empty auto timestamps are set to ``now``."""
        row = self._row
        assert isinstance(row, list)
        if created is not None and row[created] == _ZERO_DATETIME:
            row[created] = now
        if updated is not None and row[updated] == _ZERO_DATETIME:
            row[updated] = now
        return row

    def _settle(self) -> None:
        """Nothing to write after all (every change set back, or a repeated soft
        delete): clean and loaded again."""
        if self._orig is not None:
            self._row = self._orig
            self._orig = None
        else:
            self._row = tuple(self._row)
        self._state = LOADED

    def _inserted(self) -> None:
        """Its insert was committed: clean, with the written row."""
        self._row = tuple(self._row)
        self._state = LOADED

    def _updated(self, row: list[Any]) -> None:
        """Its update was committed; ``row`` is what was written (auto timestamps included)."""
        self._row = tuple(row)
        self._orig = None
        self._state = LOADED

    def _deleted(self) -> None:
        """Its delete was committed: gone for good."""
        self._orig = None
        self._state = GONE

    def _discard(self) -> None:
        """Forget pending changes (``clear_flush``): back to the loaded row; a new entity is dropped."""
        if self._state == NEW:
            self._state = GONE
            return
        if self._orig is not None:
            self._row = self._orig
            self._orig = None
        if self._state != GONE:
            self._state = LOADED
