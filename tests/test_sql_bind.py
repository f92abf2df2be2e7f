"""``?`` placeholders: rewriting rules, and values always travelling as bound parameters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import MySQLdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxa_django import Registry
from fluxa_django.backends.mysql import MySQLPool
from fluxa_django.engine import Engine
from fluxa_django.sql import bind, placeholder_count
from tests.services import MYSQL_HOST, MYSQL_PORT, mysql_uri

# -- bind(): pure rewriting --------------------------------------------------------------


def test_placeholders_become_driver_markers() -> None:
    assert bind("SELECT a FROM t WHERE b = ? AND c > ?", [1, "x"]) == (
        "SELECT a FROM t WHERE b = %s AND c > %s",
        (1, "x"),
    )


def test_no_placeholders_still_escapes_percent_for_the_driver() -> None:
    assert bind("SELECT 1", []) == ("SELECT 1", ())
    # args is always a tuple, so the driver always %-formats: a literal % is doubled
    assert bind("SELECT 'a%'", ()) == ("SELECT 'a%%'", ())


@pytest.mark.parametrize("values", [[1, 2, 3], (1, 2, 3), frozenset({1, 2, 3})])
def test_in_list_expands(values: list[int] | tuple[int, ...] | frozenset[int]) -> None:
    sql, args = bind("SELECT * FROM t WHERE id IN ? AND x = ?", [values, "v"])
    assert sql == "SELECT * FROM t WHERE id IN (%s,%s,%s) AND x = %s"
    assert args is not None
    assert sorted(args[:3]) == [1, 2, 3]
    assert args[3] == "v"


def test_set_expands() -> None:
    sql, args = bind("SELECT * FROM t WHERE name IN ?", [{"a", "b"}])
    assert sql == "SELECT * FROM t WHERE name IN (%s,%s)"
    assert args is not None
    assert sorted(args) == ["a", "b"]


@pytest.mark.parametrize("empty", [[], (), set()])
def test_empty_list_becomes_an_empty_subquery(
    empty: list[int] | tuple[int, ...] | set[int],
) -> None:
    assert bind("SELECT * FROM t WHERE id IN ? AND x = ?", [empty, 5]) == (
        "SELECT * FROM t WHERE id IN (SELECT NULL FROM DUAL WHERE FALSE) AND x = %s",
        (5,),
    )


def test_empty_in_is_false_and_empty_not_in_is_true(pool: MySQLPool) -> None:
    assert pool.query_row("SELECT 1 IN ?, 1 NOT IN ?", [], []) == (0, 1)


def test_strings_and_bytes_are_scalars() -> None:
    assert bind("SELECT ?, ?", ["abc", b"xyz"]) == ("SELECT %s, %s", ("abc", b"xyz"))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT '?' , ?", "SELECT '?' , %s"),
        ('SELECT "?" , ?', 'SELECT "?" , %s'),
        ("SELECT `a?b` FROM t WHERE x = ?", "SELECT `a?b` FROM t WHERE x = %s"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', %s"),
        ("SELECT 'it\\'s ?', ?", "SELECT 'it\\'s ?', %s"),
        ('SELECT "say \\"?\\"", ?', 'SELECT "say \\"?\\"", %s'),
        ("SELECT ? -- why?\n", "SELECT %s -- why?\n"),
        ("SELECT ? -- why?", "SELECT %s -- why?"),
        ("SELECT ? # why?\n", "SELECT %s # why?\n"),
        ("SELECT /* a ? b */ ?", "SELECT /* a ? b */ %s"),
        ("SELECT ? --\twhy?", "SELECT %s --\twhy?"),
    ],
)
def test_question_marks_in_literals_and_comments_are_untouched(sql: str, expected: str) -> None:
    assert placeholder_count(sql) == 1
    assert bind(sql, ["v"]) == (expected, ("v",))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT ? LIKE 'a%'", "SELECT %s LIKE 'a%%'"),
        ("SELECT 7 % ?", "SELECT 7 %% %s"),
        ('SELECT "%s", ?', 'SELECT "%%s", %s'),
        ("SELECT `c%` FROM t WHERE x = ?", "SELECT `c%%` FROM t WHERE x = %s"),
        ("SELECT ? -- 100%\n", "SELECT %s -- 100%%\n"),
        ("SELECT ? /* 100% */", "SELECT %s /* 100%% */"),
    ],
)
def test_literal_percent_is_doubled(sql: str, expected: str) -> None:
    assert bind(sql, [1]) == (expected, (1,))


@pytest.mark.parametrize(
    ("sql", "params", "pattern"),
    [
        ("SELECT ?", [], r"1 placeholder\(s\) but 0 parameter"),
        ("SELECT 1", [1], r"0 placeholder\(s\) but 1 parameter"),
        ("SELECT ?, ?", [1], r"2 placeholder\(s\) but 1 parameter"),
        ("SELECT '?'", [1], r"0 placeholder\(s\) but 1 parameter"),
    ],
)
def test_placeholder_count_mismatch(sql: str, params: list[int], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        bind(sql, params)


# -- through a real MariaDB -----------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    name = f"fluxa_t_{uuid.uuid4().hex[:10]}"
    root = MySQLdb.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user="root", passwd="", autocommit=True
    )
    root.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        registry = Registry()
        registry.register_mysql(mysql_uri(name))
        engine = registry.validate()
        pool = engine.mysql()
        pool.exec("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB")
        pool.exec(
            "INSERT INTO items VALUES (?, ?), (?, ?), (?, ?), (?, ?)",
            1,
            "one",
            2,
            "two",
            3,
            "it's",
            4,
            "100%",
        )
        try:
            yield engine
        finally:
            engine.close()
    finally:
        root.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        root.close()


@pytest.fixture(scope="module")
def pool(engine: Engine) -> MySQLPool:
    return engine.mysql()


INJECTIONS = st.sampled_from(
    [
        "'; DROP TABLE items; --",
        "' OR '1'='1",
        '" OR ""="',
        "\\",
        "\\'",
        "?",
        "%s",
        "%%",
        "%(x)s",
        "a\x00b",
        "\n\r\t\x1a",
        "`items`",
        "/* ? */",
        "😀 ünïcödé ❤",
    ]
)


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.text(), INJECTIONS))
def test_text_values_are_bound_not_spliced(pool: MySQLPool, value: str) -> None:
    assert pool.query_row("SELECT ?", value) == (value,)


@settings(max_examples=50, deadline=None)
@given(a=st.one_of(st.text(), INJECTIONS), b=st.one_of(st.text(), INJECTIONS))
def test_several_values_with_literal_question_mark(pool: MySQLPool, a: str, b: str) -> None:
    assert pool.query_row("SELECT ?, '?', ?, '%'", a, b) == (a, "?", b, "%")


def test_injection_attempt_leaves_table_intact(pool: MySQLPool) -> None:
    assert pool.query("SELECT id FROM items WHERE name = ?", "x'; DROP TABLE items; --") == []
    row = pool.query_row("SELECT COUNT(*) FROM items")
    assert row == (4,)


def test_in_list_against_real_rows(pool: MySQLPool) -> None:
    rows = pool.query("SELECT id, name FROM items WHERE id IN ? ORDER BY id", [3, 1, 99])
    assert rows == [(1, "one"), (3, "it's")]
    names = pool.query("SELECT id FROM items WHERE name IN ? ORDER BY id", ("it's", "100%"))
    assert names == [(3,), (4,)]


def test_empty_in_list_matches_nothing(pool: MySQLPool) -> None:
    assert pool.query("SELECT id FROM items WHERE id IN ?", []) == []
    assert pool.query("SELECT id FROM items WHERE id NOT IN ? ORDER BY id", [2, 3]) == [(1,), (4,)]


def test_like_with_literal_percent_and_param(pool: MySQLPool) -> None:
    rows = pool.query("SELECT id FROM items WHERE name LIKE '%0%' AND id > ?", 0)
    assert rows == [(4,)]
    assert pool.query_row("SELECT 7 % ?", 4) == (3,)


def test_literal_percent_without_parameters_reaches_the_server_intact(pool: MySQLPool) -> None:
    assert pool.query_row("SELECT 'a%b'") == ("a%b",)
    assert pool.query_row("SELECT '100%' LIKE '%\\%'") == (1,)
    pool.exec("SET @fluxa_pct = '5%'")
    assert pool.query_row("SELECT @fluxa_pct") == ("5%",)
