"""The databases of the docs runner: created, copied and dropped by name prefix.

Every MySQL and ClickHouse database the runner makes starts with
``<FLUXA_TEST_DATABASE>_d_`` (tests/docs/isolation.py), so a run can drop what an
interrupted run left behind without touching anything else.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import MySQLdb

from fluxa_django.runtime.namespace import IDENTITY_ROW
from tests.docs.isolation import Isolation
from tests.services import CLICKHOUSE_URI, MYSQL_HOST, MYSQL_PORT, REDIS_ADDRESS, REDIS_TEST_DB
from tests.settings import DATABASE

DOCS_DATABASES = f"{DATABASE}_d_"  # every database of the docs runner starts with this


def _mysql() -> Any:
    return MySQLdb.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user="root", passwd="", autocommit=True
    )


def docs_databases(prefix: str = DOCS_DATABASES) -> list[str]:
    """The databases a docs run made with this prefix (pytest's ``test_`` copies too)."""
    conn = _mysql()
    try:
        cur = conn.cursor()
        cur.execute("SHOW DATABASES")
        names = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    return [n for n in names if n.startswith(prefix) or n.startswith("test_" + prefix)]


def drop_databases(prefix: str = DOCS_DATABASES) -> None:
    """Drop the MySQL and ClickHouse databases whose names start with ``prefix``."""
    names = docs_databases(prefix)
    if names:
        conn = _mysql()
        try:
            for name in names:
                conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()
    client = _clickhouse()
    try:
        for (name,) in client.execute("SHOW DATABASES"):
            if name.startswith(prefix):
                client.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        client.disconnect()


def reset_services() -> None:
    """Before the docs run: no database of an earlier run, the suite's Redis database empty."""
    import redis

    from fluxa_django.testing.plugin import clear_redis_db

    drop_databases()
    host, port = REDIS_ADDRESS.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), db=REDIS_TEST_DB)
    try:
        clear_redis_db(client)  # not FLUSHDB: that would drop every search index of the server
    finally:
        client.close()


def _clickhouse() -> Any:
    from clickhouse_driver import Client

    url = urllib.parse.urlsplit(CLICKHOUSE_URI)
    return Client(host=url.hostname or "127.0.0.1", port=url.port or 9000)


def create_clickhouse_databases(isolation: Isolation) -> None:
    """Create the ClickHouse databases the page's rewritten URIs named so far."""
    if not isolation.clickhouse - isolation.created:
        return
    client = _clickhouse()
    try:
        for name in sorted(isolation.clickhouse - isolation.created):
            client.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
            isolation.created.add(name)
    finally:
        client.disconnect()


def create_database(name: str) -> None:
    conn = _mysql()
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        conn.close()


def clone_database(source: str, target: str) -> None:
    """A copy of every table; the copy gets its own identity (so its own cache namespace)."""
    create_database(target)
    conn = _mysql()
    try:
        cur = conn.cursor()
        cur.execute(f"SHOW TABLES FROM `{source}`")
        for (table,) in cur.fetchall():
            cur.execute(f"CREATE TABLE `{target}`.`{table}` LIKE `{source}`.`{table}`")
            cur.execute(f"INSERT INTO `{target}`.`{table}` SELECT * FROM `{source}`.`{table}`")
            if table == "_fluxa_ids":
                cur.execute(
                    f"DELETE FROM `{target}`.`_fluxa_ids` WHERE table_name = %s", (IDENTITY_ROW,)
                )
    finally:
        conn.close()
