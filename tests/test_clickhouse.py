"""ClickHouse pools and ``ClickhouseTable`` migrations, against the real ClickHouse server
(``make services``: 18.16 at 127.0.0.1:9000; a missing server fails) and chDB (embedded).

chDB allows one data path per process: every chDB test of this process uses ``CHDB_PATH``.
"""

from __future__ import annotations

import datetime
import decimal
import os
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from fluxa_django import Registry
from fluxa_django.backends.clickhouse import ChdbPool, ClickhousePool, open_clickhouse_pool
from fluxa_django.config import ClickhouseOptions
from fluxa_django.engine import Engine
from fluxa_django.errors import ConfigError, DefinitionErrors, OperationalError, PoolError
from fluxa_django.migrate.clickhouse import ClickhouseTable, apply_clickhouse, plan_clickhouse
from tests.services import CLICKHOUSE_URI

CHDB_PATH = os.path.join(tempfile.gettempdir(), f"fluxa_chdb_tests_{os.getpid()}")
URIS = {"server": CLICKHOUSE_URI, "chdb": f"chdb://{CHDB_PATH}"}
TABLE = f"fluxa_t_{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["server", "chdb"])
def pool(request: pytest.FixtureRequest) -> Iterator[ClickhousePool]:
    p = open_clickhouse_pool("analytics", URIS[request.param], ClickhouseOptions())
    p.connect()
    p.exec(f"DROP TABLE IF EXISTS {TABLE}")
    p.exec(
        f"CREATE TABLE {TABLE} (id UInt64, name String, day Date, at DateTime, "
        "amount Decimal(10, 2), tags Array(String), note Nullable(String)) "
        "ENGINE = MergeTree() ORDER BY id"
    )
    yield p
    p.exec(f"DROP TABLE IF EXISTS {TABLE}")
    p.close()


ROW = (
    1,
    "it's 100% \\ tab\there",
    datetime.date(2024, 1, 2),
    datetime.datetime(2024, 1, 2, 3, 4, 5),
    decimal.Decimal("1.25"),
    ["x", "y"],
    None,
)
COLUMNS = ["id", "name", "day", "at", "amount", "tags", "note"]


def test_insert_rows_and_columns_then_query_the_same_python_values(pool: ClickhousePool) -> None:
    assert pool.insert(TABLE, [ROW], COLUMNS) == 1
    columns: list[list[Any]] = [[2, 3], ["b", "c"], [datetime.date(2024, 1, 3)] * 2]
    columns += [[datetime.datetime(2024, 1, 3)] * 2, [decimal.Decimal("2.5")] * 2]
    columns += [[[], ["z"]], ["n", None]]
    assert pool.insert(TABLE, columns, COLUMNS, columnar=True) == 2
    assert pool.query(f"SELECT * FROM {TABLE} WHERE id = {{id:UInt64}}", {"id": 1}) == [ROW]
    assert pool.query_row(f"SELECT count(), sum(amount) FROM {TABLE}") == (
        3,
        decimal.Decimal("6.25"),
    )
    assert pool.query_row(f"SELECT id FROM {TABLE} WHERE id = 99") is None


def test_parameters_are_bound_not_spliced(pool: ClickhousePool) -> None:
    pool.insert(TABLE, [ROW], COLUMNS)
    hostile = "x' OR 1 = 1 --"
    assert pool.query(f"SELECT id FROM {TABLE} WHERE name = {{n:String}}", {"n": hostile}) == []
    found = pool.query(
        f"SELECT id, name FROM {TABLE} WHERE name = {{n:String}} AND day >= {{d:Date}} "
        "AND has({ids:Array(UInt64)}, id) AND name LIKE '%100%'",
        {"n": ROW[1], "d": datetime.date(2024, 1, 1), "ids": [1, 7]},
    )
    assert found == [(1, ROW[1])]
    # a placeholder inside a quoted literal is text, not a parameter
    assert pool.query_row("SELECT '{n:String}'", {"n": "no"}) == ("{n:String}",)


def test_errors_are_ours_and_logged_on_the_context(pool: ClickhousePool) -> None:
    entries: list[dict[str, Any]] = []

    class Ctx:
        _loggers = [(entries.append, True, True, True)]

        def _log(
            self,
            source: str,
            pool: str,
            operation: str,
            query: str,
            started: float,
            error: BaseException | None = None,
            miss: bool = False,
        ) -> None:
            entries.append(
                {
                    "source": source,
                    "pool": pool,
                    "operation": operation,
                    "query": query,
                    "error": error,
                }
            )

    with pytest.raises(OperationalError) as raised:
        pool.query("SELECT nope_column", ctx=Ctx())
    assert raised.value.pool == "analytics"
    assert raised.value.code == 47
    assert raised.value.__cause__ is not None
    pool.insert(TABLE, [ROW], COLUMNS, ctx=Ctx())
    assert [(e["source"], e["operation"], e["error"] is not None) for e in entries] == [
        ("clickhouse", "SELECT", True),
        ("clickhouse", "INSERT", False),
    ]


def test_chdb_allows_one_data_path_per_process() -> None:
    first = ChdbPool("a", f"chdb://{CHDB_PATH}", ClickhouseOptions())
    first.connect()
    try:
        other = ChdbPool("b", f"chdb://{CHDB_PATH}_other", ClickhouseOptions())
        with pytest.raises(ConfigError, match="one data path per process"):
            other.connect()
        registry = Registry()
        registry.register_clickhouse(f"chdb://{CHDB_PATH}", "a")
        with pytest.raises(ConfigError, match="one data path per process"):
            registry.register_clickhouse(f"chdb://{CHDB_PATH}_other", "b")
    finally:
        first.close()


def test_an_unreachable_server_fails_within_the_connect_timeout() -> None:
    pool = open_clickhouse_pool(
        "gone", "clickhouse://127.0.0.1:1/default", ClickhouseOptions(connect_timeout=0.5)
    )
    with pytest.raises(PoolError, match="gone"):
        pool.query("SELECT 1")


# -- ClickhouseTable and fluxa_migrate --------------------------------------------------


def _engine(uri: str, *tables: ClickhouseTable) -> Engine:
    registry = Registry()
    registry.register_clickhouse(uri, "analytics")
    for table in tables:
        registry.register_clickhouse_table(table)
    return registry.validate()


def _events(name: str, *extra: tuple[str, str]) -> ClickhouseTable:
    table = (
        ClickhouseTable(name, "analytics")
        .column("day", "Date")
        .column("order_id", "UInt64")
        .column("amount", "Decimal(12, 2)", default="0")
    )
    for column, type_ in extra:
        table.column(column, type_)
    return table.engine("MergeTree").partition_by("toYYYYMM(day)").order_by("(day, order_id)")


@pytest.mark.parametrize("kind", ["server", "chdb"])
def test_tables_are_created_altered_and_unowned_ones_listed(kind: str) -> None:
    name = f"fluxa_mig_{uuid.uuid4().hex[:8]}"
    stranger = f"fluxa_stranger_{uuid.uuid4().hex[:8]}"
    engine = _engine(URIS[kind], _events(name).ttl("day + INTERVAL 1 YEAR"))
    pool = engine.clickhouse("analytics")
    try:
        pool.exec(f"CREATE TABLE {stranger} (x UInt8) ENGINE = Memory")
        plan = plan_clickhouse(engine)
        assert (("analytics", stranger)) in plan.unmanaged
        creates = [c for c in plan.safe if c.table == name]
        assert len(creates) == 1
        assert creates[0].sql.startswith(f"CREATE TABLE `{name}`")
        held = [c for c in plan.held_back if c.table == name]
        assert bool(held) is (kind == "server")  # 18.16 has no TTL; chDB has
        assert apply_clickhouse(engine, plan.safe) == len(plan.safe)
        assert [c for c in plan_clickhouse(engine).changes if not c.held_back] == []
        engine.close()

        engine = _engine(URIS[kind], _events(name, ("channel", "String")))
        plan = plan_clickhouse(engine)
        assert [c.sql for c in plan.safe if c.table == name] == [
            f"ALTER TABLE `{name}` ADD COLUMN `channel` String AFTER `amount`"
        ]
        apply_clickhouse(engine, plan.safe)
        engine.close()

        narrower = _events(name)
        narrower.columns[2] = type(narrower.columns[2])("amount", "Decimal(18, 4)", "0")
        engine = _engine(URIS[kind], narrower)
        plan = plan_clickhouse(engine)
        assert sorted(c.sql for c in plan.destructive if c.table == name) == [
            f"ALTER TABLE `{name}` DROP COLUMN `channel`",
            f"ALTER TABLE `{name}` MODIFY COLUMN `amount` Decimal(18, 4) DEFAULT 0",
        ]
        apply_clickhouse(engine, plan.destructive)
        assert [c for c in plan_clickhouse(engine).changes if not c.held_back] == []
        assert ("analytics", stranger) in plan_clickhouse(engine).unmanaged

        reordered = _events(name).order_by("order_id")
        engine.close()
        engine = _engine(URIS[kind], reordered)
        held = plan_clickhouse(engine).held_back
        assert any("ORDER BY" in c.description and "recreate" in c.held_back for c in held)
    finally:
        pool = engine.clickhouse("analytics")
        pool.exec(f"DROP TABLE IF EXISTS {name}")
        pool.exec(f"DROP TABLE IF EXISTS {stranger}")
        engine.close()


def test_table_definition_errors() -> None:
    registry = Registry()
    with pytest.raises(ConfigError, match="needs engine, order_by"):
        registry.register_clickhouse_table(ClickhouseTable("t").column("a", "UInt8"))
    with pytest.raises(ConfigError, match="plain ClickHouse identifier"):
        ClickhouseTable("t; DROP")
    registry.register_clickhouse_table(
        ClickhouseTable("t", "nowhere").column("a", "UInt8").engine("Memory").order_by("a")
    )
    with pytest.raises(DefinitionErrors, match="nowhere"):
        registry.build_schemas()
