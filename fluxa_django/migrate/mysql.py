"""Plan and apply MySQL schema changes for the registered entities.

One ``Alter`` per unit of change, each marked safe or destructive. Destructive
means data or an index can be lost: dropping a table, column or index, or
narrowing a column. Tables no entity owns are reported, never dropped unless
named explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fluxa_django.engine import Engine
from fluxa_django.migrate.introspect import LiveTable, introspect
from fluxa_django.runtime.ids import LEDGER
from fluxa_django.schema import ColumnType, EntitySchema, IndexSchema
from fluxa_django.schema.model import quote_name

_RANK = {
    "create_table": 0,
    "table_options": 5,
    "add_column": 10,
    "modify_column": 15,
    "add_index": 20,
    "rebuild_index": 30,
    "drop_index": 50,
    "drop_column": 60,
    "drop_table": 80,
}


@dataclass(frozen=True)
class Alter:
    """One schema statement for one pool."""

    pool: str
    table: str
    kind: str
    sql: str
    destructive: bool
    reason: str = ""

    @property
    def rank(self) -> int:
        return _RANK[self.kind]


@dataclass
class MigrationPlan:
    alters: list[Alter] = field(default_factory=list)
    unmanaged: list[tuple[str, str]] = field(default_factory=list)  # (pool, table)

    @property
    def safe(self) -> list[Alter]:
        return [a for a in self.alters if not a.destructive]

    @property
    def destructive(self) -> list[Alter]:
        return [a for a in self.alters if a.destructive]


def plan_mysql(
    engine: Engine, drop_tables: Iterable[str] = (), pools: Iterable[str] | None = None
) -> MigrationPlan:
    """Compare every entity table with the live databases."""
    drop = set(drop_tables)
    plan = MigrationPlan()
    wanted_pools = set(pools) if pools is not None else set(engine.mysql_pools)
    for code in sorted(wanted_pools):
        pool = engine.mysql(code)
        live = introspect(pool)
        schemas = sorted(
            (s for s in engine.schemas.values() if s.mysql_pool == code), key=lambda s: s.table
        )
        owned = {s.table for s in schemas}
        for schema in schemas:
            plan.alters.extend(_table_alters(code, schema, live.get(schema.table)))
        # the id counters (runtime/ids.py) and the async consumer's tables (async_consume.py)
        ignored = {
            *pool.options.ignored_tables,
            LEDGER,
            "_fluxa_async_applied",
            "_fluxa_async_hooks",
        }
        for table in sorted(set(live) - owned - ignored):
            if table in drop:
                plan.alters.append(
                    Alter(
                        code,
                        table,
                        "drop_table",
                        f"DROP TABLE {quote_name(table)}",
                        True,
                        "asked by name",
                    )
                )
            else:
                plan.unmanaged.append((code, table))
    # Stable sort: within one rank the planned order stands (new columns in
    # declaration order, so each `AFTER` names a column that already exists).
    plan.alters.sort(key=lambda a: (a.pool, a.table, a.rank))
    return plan


def apply_alters(
    engine: Engine,
    alters: Iterable[Alter],
    progress: Callable[[int, int, Alter], None] | None = None,
) -> int:
    todo = list(alters)
    for number, alter in enumerate(todo, 1):
        if progress is not None:
            progress(number, len(todo), alter)
        engine.mysql(alter.pool).exec(alter.sql)
    return len(todo)


def _table_alters(pool: str, schema: EntitySchema, live: LiveTable | None) -> list[Alter]:
    table = quote_name(schema.table)
    if live is None:
        return [
            Alter(
                pool, schema.table, "create_table", schema.create_table_sql(), False, "new entity"
            )
        ]
    alters: list[Alter] = []

    def add(kind: str, sql: str, destructive: bool, reason: str) -> None:
        alters.append(
            Alter(pool, schema.table, kind, f"ALTER TABLE {table} {sql}", destructive, reason)
        )

    opts = schema.table_options
    if live.engine.lower() != opts.engine.lower():
        add("table_options", f"ENGINE={opts.engine}", False, f"engine was {live.engine}")
    if live.collation != opts.collation:
        add(
            "table_options",
            f"DEFAULT CHARACTER SET {opts.charset} COLLATE {opts.collation}",
            False,
            f"default collation was {live.collation}",
        )
    previous: str | None = None
    for column in schema.columns:
        current = live.columns.get(column.name)
        if current is None:
            where = f" AFTER {quote_name(previous)}" if previous else " FIRST"
            add(
                "add_column",
                f"ADD COLUMN {column.ddl}{where}",
                column.kind.value == "id",
                "new field",
            )
        elif not _same_column(current, column.definition):
            add(
                "modify_column",
                f"MODIFY COLUMN {column.ddl}",
                is_narrowing(current, column.definition),
                f"was {current.ddl(column.name)}",
            )
        previous = column.name
    expected_names = {c.name for c in schema.columns}
    for name, ctype in live.columns.items():
        if name not in expected_names:
            add(
                "drop_column",
                f"DROP COLUMN {quote_name(name)}",
                True,
                f"no field for {ctype.ddl(name)}",
            )
    wanted = {i.name: i for i in schema.indexes}
    primary = live.indexes.get("PRIMARY")
    id_name = schema.id_column.name
    if primary is None or primary.columns != (id_name,):
        drop = "DROP PRIMARY KEY, " if primary is not None else ""
        add(
            "rebuild_index",
            f"{drop}ADD PRIMARY KEY ({quote_name(id_name)})",
            primary is not None,
            "primary key",
        )
    for name, index in wanted.items():
        have = live.indexes.get(name)
        if have is None:
            add("add_index", f"ADD {index.ddl}", False, "new index")
        elif not _same_index(have, index):
            add(
                "rebuild_index",
                f"DROP INDEX {quote_name(name)}, ADD {index.ddl}",
                True,
                f"was {have.ddl}",
            )
    for name, have in live.indexes.items():
        if name != "PRIMARY" and name not in wanted:
            add(
                "drop_index",
                f"DROP INDEX {quote_name(name)}",
                True,
                f"no definition for {have.ddl}",
            )
    return alters


def _same_column(live: ColumnType, wanted: ColumnType) -> bool:
    if (live.sql_type, live.nullable, live.has_default) != (
        wanted.sql_type,
        wanted.nullable,
        wanted.has_default,
    ):
        return False
    if wanted.has_default and live.default != wanted.default:
        return False
    return wanted.charset is None or (live.charset, live.collation) == (
        wanted.charset,
        wanted.collation,
    )


def _same_index(live: IndexSchema, wanted: IndexSchema) -> bool:
    return live.columns == wanted.columns and live.unique == wanted.unique


# -- narrowing ------------------------------------------------------------------

_INTS = ["tinyint", "smallint", "mediumint", "int", "bigint"]
_TEXTS = {"text": 65535, "mediumtext": 16777215, "longtext": 4294967295}
_BLOBS = ["blob", "mediumblob", "longblob"]
_TYPE = re.compile(r"^(?P<base>[a-z]+)(?:\((?P<args>.*)\))?(?P<unsigned> unsigned)?$")


def _parse(sql_type: str) -> tuple[str, str, bool]:
    if sql_type == "tinyint(1)":
        return "tinyint", "", False
    match = _TYPE.match(sql_type)
    if match is None:
        return sql_type, "", False
    return match["base"], match["args"] or "", bool(match["unsigned"])


def _values(args: str) -> set[str]:
    return {v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'", args)}


def is_narrowing(old: ColumnType, new: ColumnType) -> bool:
    """True when changing ``old`` into ``new`` may lose or reject existing data."""
    if old.nullable and not new.nullable:
        return True
    if (
        new.charset is not None
        and old.charset is not None
        and (old.charset, old.collation) != (new.charset, new.collation)
    ):
        return True
    if old.sql_type == new.sql_type:
        return False
    (ob, oa, ou), (nb, na, nu) = _parse(old.sql_type), _parse(new.sql_type)
    if ob in _INTS and nb in _INTS:
        orank, nrank = _INTS.index(ob), _INTS.index(nb)
        if ou == nu:
            return nrank < orank
        return not (ou and not nu and nrank > orank)
    if ob == "varchar" and nb == "varchar":
        return int(na) < int(oa)
    if ob == "varchar" and nb in _TEXTS:
        return _TEXTS[nb] < int(oa) * 4
    if ob in _TEXTS and nb in _TEXTS:
        return _TEXTS[nb] < _TEXTS[ob]
    if ob in _BLOBS and nb in _BLOBS:
        return _BLOBS.index(nb) < _BLOBS.index(ob)
    if ob == "decimal" and nb == "decimal":
        (op, os_), (np_, ns) = (tuple(int(x) for x in a.split(",")) for a in (oa, na))
        return (np_ - ns) < (op - os_) or ns < os_ or (nu and not ou)
    if ob == "float" and nb == "double":
        return nu and not ou
    if ob in ("enum", "set") and nb == ob:
        return not _values(oa) <= _values(na)
    return not (ob == "date" and nb == "datetime")
