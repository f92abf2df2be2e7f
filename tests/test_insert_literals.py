"""Insert flushes format their rows in one pass (``backends.mysql.row_literals``)
instead of through the driver's per-value ``literal``: the literals must be the
ones the driver would send (its own escaping for any string that needs it), in
either backslash mode of the server, and what a flush writes must read back
exactly. Rows on a connection that is not utf8 are bound by the driver.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import MySQLdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fluxa_django import Context, MySQLOptions, Registry
from fluxa_django.backends.mysql import row_literals
from fluxa_django.testing.plugin import clear_redis_db
from tests.generated import CategoryEntityProvider, EveryTypeEntityProvider
from tests.services import MYSQL_HOST, MYSQL_PORT, REDIS_ADDRESS, REDIS_TEST_DB, mysql_uri

# Values of every type a row holds (what the generated setters store).
_VALUES = st.one_of(
    st.none(),
    st.text(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, max_value=10**9),
    st.datetimes(min_value=datetime.datetime(1000, 1, 1)),
    st.dates(),
)
_SPECIAL = "'\"\\\x00\n\r\x1a%s%%"


@pytest.fixture(scope="module")
def raw() -> Iterator[Any]:
    conn = MySQLdb.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user="root", passwd="", charset="utf8mb4"
    )
    yield conn
    conn.close()


def _driver_row(conn: Any, row: list[Any]) -> str:
    return "(" + ",".join(conn.literal(v).decode() for v in row) + ")"


def _set_backslash_escapes(conn: Any, on: bool) -> None:
    cur = conn.cursor()
    if on:
        cur.execute("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
    else:
        cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
    cur.close()


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(_VALUES, min_size=1, max_size=6), min_size=1, max_size=4))
@example(rows=[[_SPECIAL, "%s", "it's", 'a "b"', "c:\\d", "\x00\x1a\r\n"]])
def test_rows_are_the_literals_the_driver_sends(raw: Any, rows: list[list[Any]]) -> None:
    for backslashes in (True, False):
        _set_backslash_escapes(raw, backslashes)
        assert row_literals(raw, rows) == [_driver_row(raw, row) for row in rows]
    _set_backslash_escapes(raw, True)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=64))
def test_bytes_are_hex_literals_the_server_reads_back_exactly(raw: Any, data: bytes) -> None:
    (values,) = row_literals(raw, [[data]]) or [""]
    assert values.startswith("(X'")
    cur = raw.cursor()
    cur.execute("SELECT " + values[1:-1])
    assert cur.fetchone()[0] == data
    cur.close()


def test_other_types_and_other_charsets_are_left_to_the_driver(raw: Any) -> None:
    assert row_literals(raw, [[1, "a"], [2, object()]]) is None
    assert row_literals(raw, [[float("inf")]]) is None, "the driver raises for inf"
    assert row_literals(raw, [[Decimal("NaN")]]) is None
    aware = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    assert row_literals(raw, [[aware]]) is None
    latin1 = MySQLdb.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user="root", passwd="", charset="latin1"
    )
    try:
        assert row_literals(latin1, [[1, "a"]]) is None
    finally:
        latin1.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=255), data=st.binary(max_size=300), ratio=st.floats(-1e300, 1e300))
@example(text=_SPECIAL, data=b"'\\\x00", ratio=0.1 + 0.2)
def test_what_a_flush_inserts_reads_back_exactly(
    fluxa_ctx: Context, text: str, data: bytes, ratio: float
) -> None:
    ctx = fluxa_ctx.engine.new_context()
    entity = EveryTypeEntityProvider.new(ctx)
    entity.category_id = 1
    entity.short = str(entity.id)  # unique
    entity.text = text
    entity.long_text = text * 3
    entity.data = data
    entity.ratio = ratio
    ctx.flush()
    row = ctx.engine.mysql().query_row(
        "SELECT `text`,`long_text`,`data`,`ratio` FROM `every_type` WHERE `id` = ?", entity.id
    )
    assert row == (text, text * 3, data, ratio)


def test_query_loggers_see_placeholders_not_the_inserted_values(fluxa_ctx: Context) -> None:
    queries: list[str] = []
    fluxa_ctx.register_query_logger(lambda e: queries.append(e["query"]), redis=False)
    category = CategoryEntityProvider.new(fluxa_ctx)
    category.name = "secret-name-7f3a"
    fluxa_ctx.flush()
    (insert,) = [q for q in queries if q.startswith("INSERT")]
    assert "secret-name-7f3a" not in insert and "(%s,%s)" in insert


def test_a_connection_that_is_not_utf8_inserts_through_the_driver(mysql_db: str) -> None:
    from fluxa_django.conf import entity_classes
    from fluxa_django.migrate import apply_alters, plan_mysql

    registry = Registry()
    options = MySQLOptions(default_encoding="latin1", default_collate="swedish_ci")
    registry.register_mysql(mysql_uri(mysql_db), options=options)
    registry.register_redis(REDIS_ADDRESS, REDIS_TEST_DB)
    registry.register_redis(REDIS_ADDRESS, 0, "search")
    registry.register_local_cache("default", 10)
    registry.register_entity(*entity_classes(["tests.entities"]))
    engine = registry.validate()
    try:
        apply_alters(engine, plan_mysql(engine).alters)
        ctx = engine.new_context()
        names = ["café", "it's \\ %s"]
        ids = []
        for name in names:
            category = CategoryEntityProvider.new(ctx)
            category.name = name
            ids.append(category.id)
        ctx.flush()
        rows = engine.mysql().query("SELECT `id`,`name` FROM `CategoryEntity` ORDER BY `id`")
        assert rows == list(zip(ids, names, strict=True))
    finally:
        clear_redis_db(engine.redis().client)
        engine.close()


def test_big_inserts_are_split_below_the_packet_limit(fluxa_ctx: Context) -> None:
    statements: list[str] = []
    fluxa_ctx.register_query_logger(
        lambda e: statements.append(e["operation"]), redis=False, local=False
    )
    text = "é" * 60_000  # 120 KB of UTF-8 per row: 300 rows would be 36 MB in one statement
    ids = []
    for i in range(300):
        entity = EveryTypeEntityProvider.new(fluxa_ctx)
        entity.category_id = 1
        entity.short = f"big{i}"
        entity.long_text = text
        ids.append(entity.id)
    fluxa_ctx.flush()
    inserts = statements.count("insert")
    assert 300 * 60_000 // 1_000_000 <= inserts < 300, inserts
    row = fluxa_ctx.engine.mysql().query_row(
        "SELECT COUNT(*), MIN(CHAR_LENGTH(`long_text`)) FROM `every_type`"
    )
    assert row == (300, 60_000)
