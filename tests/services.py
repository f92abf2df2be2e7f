"""Addresses of the real services `make services` starts (see scripts/services.sh)."""

from __future__ import annotations

import os

MYSQL_HOST = os.environ.get("FLUXA_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("FLUXA_TEST_MYSQL_PORT", "3306"))
REDIS_ADDRESS = os.environ.get("FLUXA_TEST_REDIS", "127.0.0.1:6380")
# The Redis database the suite owns (fluxa_ctx flushes it); parallel runs use their own.
REDIS_TEST_DB = int(os.environ.get("FLUXA_TEST_REDIS_DB", "1"))
PLAIN_REDIS_ADDRESS = os.environ.get("FLUXA_TEST_PLAIN_REDIS", "127.0.0.1:6379")
KAFKA_BROKER = os.environ.get("FLUXA_TEST_KAFKA", "127.0.0.1:9092")
CLICKHOUSE_URI = os.environ.get("FLUXA_TEST_CLICKHOUSE", "clickhouse://127.0.0.1:9000/default")


def mysql_uri(database: str) -> str:
    return f"root:@tcp({MYSQL_HOST}:{MYSQL_PORT})/{database}"
