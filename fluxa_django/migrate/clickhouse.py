"""ClickHouse tables in ``fluxa_migrate``: ``ClickhouseTable`` definitions, what to change
on each ClickHouse pool (server or chDB), and changing it.

Per pool with at least one definition, against ``system.tables`` (views excluded) and
``system.columns`` of the pool's current database:

- a defined table that is missing is created (``CREATE TABLE``: columns, ``ENGINE``,
  ``PARTITION BY``, ``ORDER BY``, ``PRIMARY KEY``, ``TTL``, ``SETTINGS``), a safe change;
  a ``TTL`` on a server older than 19.6 (which has none) is *held back*, with the reason;
- a defined column that is missing is added (``ADD COLUMN``, safe);
- a column whose type or default differs is modified (``MODIFY COLUMN``, destructive: it
  rewrites the data and may lose precision); a column no definition has any more is
  dropped (``DROP COLUMN``, destructive); both only with ``--allow-destructive``;
- another engine, ``ORDER BY`` or ``PARTITION BY`` cannot be changed in place: held back
  ("recreate the table by hand"), listed on every run, never applied;
- a table that no definition owns is listed, never dropped.

The ``TTL`` of an existing table is not compared (ClickHouse rewrites the expression):
change it with ``ALTER TABLE ... MODIFY TTL`` by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fluxa_django.backends.clickhouse import ClickhousePool, ClickhouseServerPool, quote_identifier
from fluxa_django.errors import ConfigError

if TYPE_CHECKING:
    from fluxa_django.engine import Engine

_TTL_SINCE = (19, 6)


@dataclass(frozen=True)
class ClickhouseColumn:
    name: str
    type: str
    default: str | None = None
    default_kind: str = "DEFAULT"  # DEFAULT, MATERIALIZED or ALIAS
    comment: str = ""

    def sql(self) -> str:
        text = f"{quote_identifier(self.name)} {self.type}"
        if self.default is not None:
            text += f" {self.default_kind} {self.default}"
        if self.comment:
            escaped = self.comment.replace("\\", "\\\\").replace("'", "\\'")
            text += f" COMMENT '{escaped}'"
        return text


class ClickhouseTable:
    """Builder of a table definition::

        ClickhouseTable("order_events", "analytics")
            .column("day", "Date").column("order_id", "UInt64").column("amount", "Decimal(12, 2)")
            .engine("MergeTree").partition_by("toYYYYMM(day)").order_by("day, order_id")
            .ttl("day + INTERVAL 1 YEAR")

    ``engine`` and ``order_by`` are required (``order_by("tuple()")`` for none). Types and
    expressions are ClickHouse SQL, written by the developer, never user input.
    """

    def __init__(self, name: str, pool: str = "default") -> None:
        quote_identifier(name)
        self.name = name
        self.pool = pool
        self.columns: list[ClickhouseColumn] = []
        self.engine_spec = ""
        self.order = ""
        self.partition = ""
        self.primary = ""
        self.ttl_expression = ""
        self.settings: dict[str, str | int] = {}

    def __repr__(self) -> str:
        return f"ClickhouseTable({self.name!r}, {self.pool!r}, columns={len(self.columns)})"

    def column(
        self,
        name: str,
        type: str,
        *,
        default: str | None = None,
        materialized: str | None = None,
        alias: str | None = None,
        comment: str = "",
    ) -> ClickhouseTable:
        quote_identifier(name)
        if any(c.name == name for c in self.columns):
            raise ConfigError(f"clickhouse table {self.name!r}: column {name!r} defined twice")
        kind, expr = "DEFAULT", default
        if materialized is not None:
            kind, expr = "MATERIALIZED", materialized
        elif alias is not None:
            kind, expr = "ALIAS", alias
        self.columns.append(ClickhouseColumn(name, type, expr, kind, comment))
        return self

    def engine(self, spec: str) -> ClickhouseTable:
        self.engine_spec = spec if "(" in spec else f"{spec}()"
        return self

    def order_by(self, expression: str) -> ClickhouseTable:
        self.order = expression
        return self

    def partition_by(self, expression: str) -> ClickhouseTable:
        self.partition = expression
        return self

    def primary_key(self, expression: str) -> ClickhouseTable:
        self.primary = expression
        return self

    def ttl(self, expression: str) -> ClickhouseTable:
        self.ttl_expression = expression
        return self

    def setting(self, key: str, value: str | int) -> ClickhouseTable:
        if not re.match(r"^\w+$", key):
            raise ConfigError(f"clickhouse table {self.name!r}: bad setting name {key!r}")
        self.settings[key] = value
        return self

    def check(self) -> None:
        missing = [
            what
            for what, value in (
                ("columns", self.columns),
                ("engine", self.engine_spec),
                ("order_by", self.order),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"clickhouse table {self.name!r} needs {', '.join(missing)}")

    def create_sql(self, with_ttl: bool = True) -> str:
        cols = ",\n    ".join(c.sql() for c in self.columns)
        sql = f"CREATE TABLE {quote_identifier(self.name)} (\n    {cols}\n) ENGINE = {self.engine_spec}"
        if self.partition:
            sql += f"\nPARTITION BY {self.partition}"
        sql += f"\nORDER BY ({_strip_parens(self.order)})"
        if self.primary:
            sql += f"\nPRIMARY KEY ({_strip_parens(self.primary)})"
        if self.ttl_expression and with_ttl:
            sql += f"\nTTL {self.ttl_expression}"
        if self.settings:
            pairs = ", ".join(
                f"{k} = {v if isinstance(v, int) else repr(str(v))}"
                for k, v in self.settings.items()
            )
            sql += f"\nSETTINGS {pairs}"
        return sql


@dataclass
class ClickhouseChange:
    pool: str
    table: str
    description: str
    sql: str = ""
    destructive: bool = False
    held_back: str = ""  # why it is not made (shown, never applied)

    def __str__(self) -> str:
        text = f"[{self.pool}] {self.sql};" if self.sql else f"[{self.pool}] {self.description}"
        return f"{text}  -- {self.held_back}" if self.held_back else text


@dataclass
class ClickhousePlan:
    changes: list[ClickhouseChange] = field(default_factory=list)
    unmanaged: list[tuple[str, str]] = field(default_factory=list)  # (pool, table)

    @property
    def safe(self) -> list[ClickhouseChange]:
        return [c for c in self.changes if not c.destructive and not c.held_back]

    @property
    def destructive(self) -> list[ClickhouseChange]:
        return [c for c in self.changes if c.destructive and not c.held_back]

    @property
    def held_back(self) -> list[ClickhouseChange]:
        return [c for c in self.changes if c.held_back]


def _strip_parens(expression: str) -> str:
    text = expression.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _norm(expression: str | None) -> str:
    text = re.sub(r"[\s`]", "", _strip_parens(expression or ""))
    # A server stores a default as CAST(expr AS Type) / CAST(expr, 'Type'): compare expr.
    found = re.fullmatch(r"CAST\((.*?)(?:AS[A-Za-z].*|,'[^']*')\)", text)
    return _strip_parens(found.group(1)) if found else text


def _supports_ttl(pool: ClickhousePool) -> bool:
    if isinstance(pool, ClickhouseServerPool):
        return pool.server_version()[:2] >= _TTL_SINCE
    return True


def plan_clickhouse(engine: Engine) -> ClickhousePlan:
    """Compare every pool that has table definitions with its server."""
    plan = ClickhousePlan()
    by_pool: dict[str, list[ClickhouseTable]] = {}
    for table in engine.registry.clickhouse_tables.values():
        by_pool.setdefault(table.pool, []).append(table)
    for code, tables in sorted(by_pool.items()):
        pool = engine.clickhouse(code)
        existing = {
            str(r[0]): r
            for r in pool.query(
                "SELECT name, engine, sorting_key, partition_key FROM system.tables "
                "WHERE database = currentDatabase() AND engine NOT LIKE '%View' "
                "AND is_temporary = 0"
            )
        }
        columns: dict[str, dict[str, tuple[str, str, str]]] = {}
        for table_name, name, type_, kind, expr in pool.query(
            "SELECT table, name, type, default_kind, default_expression FROM system.columns "
            "WHERE database = currentDatabase() ORDER BY table, position"
            if not isinstance(pool, ClickhouseServerPool)
            else "SELECT table, name, type, default_kind, default_expression FROM system.columns "
            "WHERE database = currentDatabase()"
        ):
            columns.setdefault(str(table_name), {})[str(name)] = (str(type_), str(kind), str(expr))
        ttl_ok: bool | None = None
        for table in sorted(tables, key=lambda t: t.name):
            _plan_table(plan, pool, table, existing.get(table.name), columns.get(table.name, {}))
            if table.name not in existing and table.ttl_expression:
                if ttl_ok is None:
                    ttl_ok = _supports_ttl(pool)
                if not ttl_ok:
                    create = next(
                        c for c in plan.changes if c.table == table.name and c.pool == code
                    )
                    create.sql = table.create_sql(with_ttl=False)
                    plan.changes.append(
                        ClickhouseChange(
                            code,
                            table.name,
                            f"TTL {table.ttl_expression} on {table.name}",
                            held_back="this server has no TTL (ClickHouse 19.6+): the table is "
                            "created without it",
                        )
                    )
        owned = {t.name for t in tables}
        plan.unmanaged.extend((code, name) for name in sorted(existing) if name not in owned)
    return plan


def _plan_table(
    plan: ClickhousePlan,
    pool: ClickhousePool,
    table: ClickhouseTable,
    live: tuple[Any, ...] | None,
    live_columns: dict[str, tuple[str, str, str]],
) -> None:
    code, name = pool.code, table.name
    target = quote_identifier(name)
    if live is None:
        plan.changes.append(ClickhouseChange(code, name, f"create {name}", table.create_sql()))
        return
    _, live_engine, sorting_key, partition_key = live
    wanted_engine = table.engine_spec.split("(", 1)[0]
    mismatches = []
    if str(live_engine) != wanted_engine:
        mismatches.append(f"engine {live_engine} -> {wanted_engine}")
    if _norm(str(sorting_key)) != _norm(table.order if table.order != "tuple()" else ""):
        mismatches.append(f"ORDER BY ({sorting_key}) -> ({_strip_parens(table.order)})")
    if _norm(str(partition_key)) != _norm(table.partition):
        mismatches.append(f"PARTITION BY ({partition_key}) -> ({table.partition})")
    if mismatches:
        plan.changes.append(
            ClickhouseChange(
                code,
                name,
                f"table {name}: {'; '.join(mismatches)}",
                held_back="ClickHouse cannot change this in place: recreate the table by hand",
            )
        )
    previous = None
    for column in table.columns:
        have = live_columns.get(column.name)
        after = f" AFTER {quote_identifier(previous)}" if previous else ""
        previous = column.name
        if have is None:
            plan.changes.append(
                ClickhouseChange(
                    code,
                    name,
                    f"add column {name}.{column.name}",
                    f"ALTER TABLE {target} ADD COLUMN {column.sql()}{after}",
                )
            )
            continue
        live_type, live_kind, live_expr = have
        wanted_kind = column.default_kind if column.default is not None else ""
        if (
            _norm(live_type) != _norm(column.type)
            or live_kind != wanted_kind
            or _norm(live_expr) != _norm(column.default)
        ):
            plan.changes.append(
                ClickhouseChange(
                    code,
                    name,
                    f"modify column {name}.{column.name}: {live_type} {live_kind} {live_expr}".rstrip(),
                    f"ALTER TABLE {target} MODIFY COLUMN {column.sql()}",
                    destructive=True,
                )
            )
    defined = {c.name for c in table.columns}
    for gone in live_columns:
        if gone not in defined:
            plan.changes.append(
                ClickhouseChange(
                    code,
                    name,
                    f"drop column {name}.{gone}",
                    f"ALTER TABLE {target} DROP COLUMN {quote_identifier(gone)}",
                    destructive=True,
                )
            )


def apply_clickhouse(
    engine: Engine,
    changes: list[ClickhouseChange],
    progress: Callable[[int, int, ClickhouseChange], None] | None = None,
) -> int:
    todo = [c for c in changes if c.sql and not c.held_back]
    for number, change in enumerate(todo, 1):
        if progress is not None:
            progress(number, len(todo), change)
        engine.clickhouse(change.pool).exec(change.sql)
    return len(todo)
