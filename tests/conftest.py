"""Shared fixtures. Services are real (`make services`); a missing one fails the test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import MySQLdb
import pytest

from tests.cache_helpers import RedisServer
from tests.services import MYSQL_HOST, MYSQL_PORT


def _root() -> MySQLdb.Connection:
    return MySQLdb.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user="root", passwd="", autocommit=True
    )


@pytest.fixture
def mysql_db() -> Iterator[str]:
    """A fresh, empty MySQL database for one test; dropped afterwards."""
    name = f"fluxa_t_{uuid.uuid4().hex[:10]}"
    conn = _root()
    try:
        conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield name
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A throwaway redis-server on a free loopback port, killed afterwards."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()
