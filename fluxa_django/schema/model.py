"""The resolved schema: ``EntitySchema``, ``ColumnSchema``, ``IndexSchema``.

Everything here is immutable and derived once by the builder. The DDL strings
are the exact column definitions ``fluxa_migrate`` writes and compares.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fluxa_django.inttypes import IntWidth

if TYPE_CHECKING:
    from fluxa_django.schema.definition import Entity


class FieldKind(enum.Enum):
    """What a column holds, as Python sees it."""

    ID = "id"
    INT = "int"
    BOOL = "bool"
    FLOAT = "float"
    STR = "str"
    BYTES = "bytes"
    DATE = "date"
    DATETIME = "datetime"
    ENUM = "enum"
    SET = "set"
    REFERENCE = "reference"
    REFERENCES = "references"
    FAKE_DELETE = "fake_delete"


def quote_literal(value: str) -> str:
    """A SQL string literal for a value taken from an entity definition."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def quote_name(name: str) -> str:
    """A backtick-quoted identifier (identifiers are validated by the builder)."""
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True, slots=True)
class ColumnType:
    """The comparable parts of a column definition.

    ``sql_type`` is normalised (lower case, no integer display width except
    ``tinyint(1)``); ``default`` is the default's value (``None`` = ``DEFAULT
    NULL``) and only meaningful when ``has_default``.
    """

    sql_type: str
    nullable: bool
    has_default: bool
    default: str | None
    charset: str | None = None
    collation: str | None = None

    def ddl(self, name: str) -> str:
        parts = [quote_name(name), self.sql_type]
        if self.charset is not None:
            parts.append(f"CHARACTER SET {self.charset} COLLATE {self.collation}")
        if not self.nullable:
            parts.append("NOT NULL")
        if self.has_default:
            parts.append(
                "DEFAULT NULL" if self.default is None else f"DEFAULT {quote_literal(self.default)}"
            )
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """One column of an entity table (one non-ignored field)."""

    name: str
    kind: FieldKind
    definition: ColumnType
    position: int
    int_width: IntWidth | None = None
    length: int | None = None  # varchar length; None for mediumtext
    enum_values: tuple[str, ...] = ()
    enum_class: type[enum.StrEnum] | None = None
    decimal: tuple[int, int] | None = None
    precision: int | None = None
    unsigned: bool = False
    reference: str | None = None  # name of the referenced entity
    searchable: bool = False
    sortable: bool = False
    # how Redis Search indexes it: "NUMERIC", "TAG", "TEXT" or "TEXT+TAG" (None: not indexed)
    search_type: str | None = None

    @property
    def nullable(self) -> bool:
        return self.definition.nullable

    @property
    def ddl(self) -> str:
        return self.definition.ddl(self.name)


@dataclass(frozen=True, slots=True)
class IndexSchema:
    """A MySQL index; ``cached`` marks a cached unique index (value -> id in Redis)."""

    name: str
    columns: tuple[str, ...]
    unique: bool
    cached: bool = False

    @property
    def ddl(self) -> str:
        cols = ",".join(quote_name(c) for c in self.columns)
        return f"{'UNIQUE ' if self.unique else ''}INDEX {quote_name(self.name)} ({cols})"


@dataclass(frozen=True, slots=True)
class TableOptions:
    """Charset and collation of a table (from its MySQL pool's options)."""

    charset: str
    collation: str
    engine: str = "InnoDB"

    @property
    def ddl(self) -> str:
        return f"ENGINE={self.engine} DEFAULT CHARSET={self.charset} COLLATE={self.collation}"


@dataclass(frozen=True)
class EntitySchema:
    """Everything fluxa_django knows about one entity, resolved and validated."""

    name: str
    cls: type[Entity] = field(repr=False, compare=False)
    table: str
    mysql_pool: str
    columns: tuple[ColumnSchema, ...]
    indexes: tuple[IndexSchema, ...]
    table_options: TableOptions
    redis_cache: str | None = None
    local_cache: str | None = None
    redis_search: str | None = None
    debezium: str | None = None
    fake_delete: bool = False

    @property
    def id_column(self) -> ColumnSchema:
        return self.columns[0]

    def column(self, name: str) -> ColumnSchema:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"entity {self.name} has no field {name!r}")

    def stamp(self) -> str:
        """12 hex digits identifying what generated code depends on: table, pools (caches,
        search, Debezium), each column's name, kind, SQL type and value rules (not its
        character set or collation, which are pool options) and the indexes. Generated providers carry
        it (``schema_stamp``)."""
        parts = [
            self.table,
            self.mysql_pool,
            str(self.redis_cache),
            str(self.local_cache),
            str(self.redis_search),
            str(self.debezium),
        ]
        for c in self.columns:
            enum_class = c.enum_class.__qualname__ if c.enum_class else ""
            parts.append(
                f"{c.name}:{c.kind.name}:{c.definition.sql_type}:{c.nullable}:{c.int_width}:"
                f"{c.length}:{c.enum_values}:{enum_class}:{c.decimal}:{c.precision}:"
                f"{c.unsigned}:{c.reference}:{c.searchable}:{c.sortable}:{c.search_type}"
            )
        parts += [f"{i.name}:{','.join(i.columns)}:{i.unique}:{i.cached}" for i in self.indexes]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]

    def create_table_sql(self) -> str:
        lines = [f"  {c.ddl}," for c in self.columns]
        lines += [f"  {i.ddl}," for i in sorted(self.indexes, key=lambda i: i.name)]
        lines.append(f"  PRIMARY KEY ({quote_name(self.id_column.name)})")
        body = "\n".join(lines)
        return f"CREATE TABLE {quote_name(self.table)} (\n{body}\n) {self.table_options.ddl}"
