"""Read the live MySQL/MariaDB schema of one pool in three queries.

The result uses the same ``ColumnType``/``IndexSchema`` shapes as the entity
schema, normalised so that an unchanged definition compares equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fluxa_django.backends.mysql import MySQLPool
from fluxa_django.schema import ColumnType, IndexSchema

_INT_WIDTH = re.compile(r"^(tinyint|smallint|mediumint|int|bigint)\(\d+\)")


@dataclass
class LiveTable:
    name: str
    engine: str
    collation: str
    columns: dict[str, ColumnType] = field(default_factory=dict)
    indexes: dict[str, IndexSchema] = field(default_factory=dict)

    @property
    def charset(self) -> str:
        return self.collation.split("_", 1)[0]


def normalise_type(column_type: str) -> str:
    """``int(10) unsigned`` -> ``int unsigned``; ``tinyint(1)`` is kept (bool)."""
    sql = column_type.strip()
    low = sql.lower()
    if low.startswith("tinyint(1)") and "unsigned" not in low:
        return "tinyint(1)"
    if low.startswith(("enum(", "set(")):
        head, rest = sql.split("(", 1)
        return head.lower() + "(" + rest
    return _INT_WIDTH.sub(r"\1", low)


def normalise_default(raw: str | None, nullable: bool, mariadb: bool) -> tuple[bool, str | None]:
    """``information_schema.COLUMNS.COLUMN_DEFAULT`` -> ``(has_default, value)``."""
    if mariadb:
        if raw is None:
            return False, None
        if raw == "NULL":
            return True, None
        if len(raw) >= 2 and raw[0] == "'" and raw[-1] == "'":
            return True, raw[1:-1].replace("''", "'").replace("\\\\", "\\")
        return True, raw
    # MySQL 8: NULL means either no default or DEFAULT NULL (for nullable columns).
    if raw is None:
        return (True, None) if nullable else (False, None)
    return True, raw


def introspect(pool: MySQLPool) -> dict[str, LiveTable]:
    db = pool.database
    mariadb = pool.features.mariadb
    tables: dict[str, LiveTable] = {}
    for name, engine, collation in pool.query(
        "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
        db,
    ):
        tables[name] = LiveTable(name, engine or "", collation or "")
    for table, column, ctype, is_nullable, default, charset, collation in pool.query(
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, "
        "CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
        db,
    ):
        live = tables.get(table)
        if live is None:
            continue
        nullable = is_nullable == "YES"
        has_default, value = normalise_default(default, nullable, mariadb)
        live.columns[column] = ColumnType(
            normalise_type(ctype), nullable, has_default, value, charset or None, collation or None
        )
    grouped: dict[tuple[str, str], tuple[bool, list[str]]] = {}
    for table, index, non_unique, _seq, column in pool.query(
        "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME "
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? "
        "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        db,
    ):
        entry = grouped.setdefault((table, index), (not int(non_unique), []))
        entry[1].append(column)
    for (table, index), (unique, columns) in grouped.items():
        if table in tables:
            tables[table].indexes[index] = IndexSchema(index, tuple(columns), unique)
    return tables
