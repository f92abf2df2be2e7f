"""ClickHouse pools and ``ClickhouseTable`` migrations, against the real ClickHouse server
(``make services``: 18.16 at 127.0.0.1:9000; a missing server fails) and chDB (embedded).

chDB allows one data path per process: every chDB test of this process uses ``CHDB_PATH``.
"""

from __future__ import annotations

import datetime
import decimal
import io
import os
import sys
import tempfile
import threading
import time
import types
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
from tests.services import CLICKHOUSE_URI, REDIS_TEST_DB

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


def test_errors_are_ours(pool: ClickhousePool) -> None:
    """(Their logging on a context: test_calls_are_logged_on_a_context.)"""
    with pytest.raises(OperationalError) as raised:
        pool.query("SELECT nope_column")
    assert raised.value.pool == "analytics"
    assert raised.value.code == 47
    assert raised.value.__cause__ is not None


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


# -- manage.py fluxa_migrate with ClickhouseTable definitions ---------------------------


@pytest.fixture(params=["server", "chdb"])
def migrate_uri(request: pytest.FixtureRequest) -> Iterator[str]:
    """A ClickHouse URI whose current database holds only what the test makes (the
    server: a database of its own; chDB: the process's path, shared with other tests)."""
    if request.param == "chdb":
        yield URIS["chdb"]
        return
    database = f"fluxa_cmd_{uuid.uuid4().hex[:8]}"
    admin = open_clickhouse_pool("admin", CLICKHOUSE_URI, ClickhouseOptions())
    admin.exec(f"CREATE DATABASE {database}")
    try:
        yield CLICKHOUSE_URI.rsplit("/", 1)[0] + "/" + database
    finally:
        admin.exec(f"DROP DATABASE IF EXISTS {database}")
        admin.close()


def _migrate(uri: str, module: str, *args: str) -> str:
    from django.core.management import call_command
    from django.test import override_settings

    from fluxa_django import conf

    setting = {
        "POOLS": {"analytics": {"clickhouse": {"uri": uri}}},
        "ENTITIES": [],
        "CLICKHOUSE_TABLES": [module],
    }
    out = io.StringIO()
    conf.reset_engine()
    try:
        with override_settings(FLUXA=setting):
            call_command("fluxa_migrate", *args, stdout=out)
    finally:
        conf.reset_engine()
    return out.getvalue()


def test_fluxa_migrate_applies_clickhouse_table_definitions(
    migrate_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"fluxa_cmd_{uuid.uuid4().hex[:8]}"
    stranger = f"fluxa_stranger_{uuid.uuid4().hex[:8]}"
    module = types.ModuleType(f"tests._clickhouse_tables_{name}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    pool = open_clickhouse_pool("analytics", migrate_uri, ClickhouseOptions())
    pool.exec(f"CREATE TABLE {stranger} (x UInt8) ENGINE = Memory")
    pool.close()  # chDB: the command's engine opens the same path
    try:
        module.EVENTS = _events(name)  # type: ignore[attr-defined]
        out = _migrate(migrate_uri, module.__name__, "--plan")
        lines = out.splitlines()
        unmanaged = [line for line in lines if line.startswith("Unmanaged ClickHouse tables")]
        assert len(unmanaged) == 1 and f"analytics.{stranger}" in unmanaged[0], out
        assert "never dropped" in unmanaged[0]
        assert f"analytics.{name}" not in unmanaged[0]
        start = lines.index("ClickHouse changes (1):")
        assert lines[start + 1] == f"  [analytics] CREATE TABLE `{name}` (", out
        assert lines[-1] == "--plan: nothing applied.", out
        assert "Applying" not in out

        out = _migrate(migrate_uri, module.__name__, "--noinput")
        assert f"Applying ClickHouse 1/1 [analytics] create {name}" in out, out
        assert "Applied 1 change(s)." in out
        out = _migrate(migrate_uri, module.__name__, "--noinput")
        assert "No changes" in out and "Applying" not in out, out

        module.EVENTS = _events(name, ("channel", "String"))  # type: ignore[attr-defined]
        out = _migrate(migrate_uri, module.__name__, "--noinput")
        assert f"Applying ClickHouse 1/1 [analytics] add column {name}.channel" in out, out

        narrower = _events(name)
        narrower.columns[2] = type(narrower.columns[2])("amount", "Decimal(18, 4)", "0")
        module.EVENTS = narrower  # type: ignore[attr-defined]
        out = _migrate(migrate_uri, module.__name__, "--noinput")
        assert "ClickHouse destructive changes (2):" in out, out
        assert "2 destructive change(s) held back; rerun with --allow-destructive" in out
        assert "Applying" not in out
        out = _migrate(migrate_uri, module.__name__, "--noinput")
        assert "ClickHouse destructive changes (2):" in out, "nothing was applied"

        out = _migrate(migrate_uri, module.__name__, "--noinput", "--allow-destructive")
        applied = [line for line in out.splitlines() if line.startswith("Applying")]
        assert len(applied) == 2, out
        # the server shows the default as it stores it (18.16: CAST(0, 'Decimal(12, 2)'))
        assert applied[0].startswith(
            f"Applying ClickHouse 1/2 [analytics] modify column {name}.amount: "
            "Decimal(12, 2) DEFAULT "
        ), out
        assert applied[1] == f"Applying ClickHouse 2/2 [analytics] drop column {name}.channel"
        out = _migrate(migrate_uri, module.__name__, "--noinput", "--allow-destructive")
        assert "Applying" not in out and f"analytics.{stranger}" in out, out
    finally:
        pool = open_clickhouse_pool("analytics", migrate_uri, ClickhouseOptions())
        pool.exec(f"DROP TABLE IF EXISTS {name}")
        pool.exec(f"DROP TABLE IF EXISTS {stranger}")
        pool.close()


# -- chDB's one connection; query logging on a real context ------------------------------


def test_a_busy_chdb_connection_fails_after_the_read_timeout() -> None:
    pool = ChdbPool("analytics", f"chdb://{CHDB_PATH}", ClickhouseOptions(read_timeout=0.5))
    pool.connect()
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with pool._session():  # another call holds the one connection
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        with pytest.raises(PoolError, match=r"'analytics'.*busy for 0.5s") as raised:
            pool.query("SELECT 1")
        waited = time.monotonic() - started
        assert raised.value.pool == "analytics"
        assert 0.4 <= waited < 2.0, waited
    finally:
        release.set()
        thread.join()
    assert pool.query("SELECT 1") == [(1,)], "free again once the other call is done"
    pool.close()


def test_calls_are_logged_on_a_context(pool: ClickhousePool) -> None:
    registry = Registry()
    registry.register_redis("127.0.0.1:6380", db=REDIS_TEST_DB)
    engine = registry.validate()
    try:
        ctx = engine.new_context()
        entries: list[dict[str, Any]] = []
        ctx.register_query_logger(entries.append)
        quiet: list[dict[str, Any]] = []
        ctx.register_query_logger(quiet.append, mysql=False)
        pool.insert(TABLE, [ROW], COLUMNS, ctx=ctx)
        assert pool.query_row(
            f"SELECT count() FROM {TABLE} WHERE id = {{id:UInt64}}", {"id": 1}, ctx=ctx
        ) == (1,)
        pool.exec(f"ALTER TABLE {TABLE} DELETE WHERE id = 0", ctx=ctx)
        with pytest.raises(OperationalError):
            pool.query("SELECT nope_column", ctx=ctx)
        assert [(e["source"], e["pool"], e["operation"]) for e in entries] == [
            ("clickhouse", "analytics", "INSERT"),
            ("clickhouse", "analytics", "SELECT"),
            ("clickhouse", "analytics", "EXEC"),
            ("clickhouse", "analytics", "SELECT"),
        ]
        assert [e["error"] is not None for e in entries] == [False, False, False, True]
        assert entries[0]["query"] == (
            f"INSERT INTO `{TABLE}` (`id`, `name`, `day`, `at`, `amount`, `tags`, `note`) (1 rows)"
        )
        assert "{id:UInt64}" in entries[1]["query"], "the SQL as written, values apart"
        assert [e["error"] is not None for e in entries] == [False, False, False, True]
        assert all(e["microseconds"] >= 0 and e["finished"] >= e["started"] for e in entries)
        assert quiet == [], "ClickHouse calls go to the loggers registered with mysql=True"
    finally:
        engine.close()
