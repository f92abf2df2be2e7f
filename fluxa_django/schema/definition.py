"""What users write: the ``Entity`` base class, ``field()`` and reference markers.

A definition is metadata only. The schema builder (``builder.py``) turns it into
an ``EntitySchema``; the generated code, not the definition class, runs at
request time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

_E = TypeVar("_E", bound="Entity")


class Entity:
    """Base class of entity definitions.

    Subclass it, annotate the fields (``id`` first, an unsigned int type) and
    put table, pool, cache and index options in an inner ``class Meta``.
    """

    class Meta:
        pass

    def __init__(self, *args: object, **kwargs: object) -> None:
        name = type(self).__name__
        raise TypeError(
            f"{name} is a definition (the schema), not a row: create entities with "
            f"{name}Provider.new(ctx) from the generated package"
        )


class Reference(Generic[_E]):
    """Annotation marker: a column holding the id of one ``E`` (no foreign key)."""

    __slots__ = ()


class References(Generic[_E]):
    """Annotation marker: a JSON list of ``E`` ids in a ``text`` column."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class FieldOptions:
    """The tags of one field, as given to ``field()``."""

    required: bool = False
    length: int | Literal["max"] | None = None
    enum: tuple[str, ...] | None = None
    set: tuple[str, ...] | None = None
    decimal: tuple[int, int] | None = None
    precision: int | None = None
    unsigned: bool = False
    mediumint: bool = False
    mediumblob: bool = False
    longblob: bool = False
    searchable: bool | Literal["text", "tag", "both"] = False
    sortable: bool = False
    ignore: bool = False

    def given(self) -> list[str]:
        """Names of the tags set to something other than their default."""
        default = _DEFAULT_OPTIONS
        return [name for name in self.__slots__ if getattr(self, name) != getattr(default, name)]


_DEFAULT_OPTIONS = FieldOptions()


def field(
    *,
    required: bool = False,
    length: int | Literal["max"] | None = None,
    enum: tuple[str, ...] | list[str] | None = None,
    set: tuple[str, ...] | list[str] | None = None,
    decimal: tuple[int, int] | None = None,
    precision: int | None = None,
    unsigned: bool = False,
    mediumint: bool = False,
    mediumblob: bool = False,
    longblob: bool = False,
    searchable: bool | Literal["text", "tag", "both"] = False,
    sortable: bool = False,
    ignore: bool = False,
) -> Any:
    """Column options of one entity field (the seeds' struct tags).

    Returns ``Any`` so that ``name: str = field(length=100)`` type-checks.
    """
    return FieldOptions(
        required=required,
        length=length,
        enum=tuple(enum) if enum is not None else None,
        set=tuple(set) if set is not None else None,
        decimal=tuple(decimal) if decimal is not None else None,  # type: ignore[arg-type]
        precision=precision,
        unsigned=unsigned,
        mediumint=mediumint,
        mediumblob=mediumblob,
        longblob=longblob,
        searchable=searchable,
        sortable=sortable,
        ignore=ignore,
    )
