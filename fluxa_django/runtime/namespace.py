"""Namespaces of the Redis keys and channels the ORM owns (SPEC §5).

Two applications sharing one Redis database must never read each other's rows.
A key prefix covers, hashed:

- the identity of the MySQL data: a random token kept in the database itself
  (row ``#identity`` of the ``_fluxa_ids`` table, created on first use). Two
  servers never share it, even with the same database name; every node of a
  replicated cluster (primary, replicas, Galera nodes behind a load balancer)
  reads the same token, so every process of one application agrees on the
  namespace whichever node its connection lands on (a host name or server id
  would split it, and invalidations would then miss the readers);
- the database name and the table;
- ``OPTIONS["app_name"]`` when set.

Keys are ``fx:{<32 hex>}:<id>`` (rows) and ``fx:{<32 hex>}:u:<index>:<token>``
(cached unique indexes): the braces are a Redis Cluster hash tag, so all keys of
one table live in one hash slot and the scripts that touch several of them stay
valid on a cluster. The invalidation channel is ``fx:inv:<db>:<app hash>``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from typing import TYPE_CHECKING

from fluxa_django.runtime.ids import LEDGER, on_ledger

if TYPE_CHECKING:
    from fluxa_django.backends.mysql import MySQLPool

IDENTITY_ROW = "#identity"
_lock = threading.Lock()


def database_identity(pool: MySQLPool) -> str:
    """The random token identifying the data of ``pool``'s database (cached per pool)."""
    found = pool.identity
    if found is not None:
        return found
    with _lock:
        if pool.identity is None:
            pool.identity = _read_or_create(pool)
        return pool.identity


def _read_or_create(pool: MySQLPool) -> str:
    select = f"SELECT `next_id` FROM `{LEDGER}` WHERE `table_name` = %s"
    insert = f"INSERT IGNORE INTO `{LEDGER}` (`table_name`, `next_id`) VALUES (%s, %s)"
    token = secrets.randbits(63)  # the first process to insert it wins

    def work(raw: object) -> int:
        cur = raw.cursor()  # type: ignore[attr-defined]
        try:
            cur.execute(select, (IDENTITY_ROW,))
            row = cur.fetchone()
            if row is None:
                cur.execute(insert, (IDENTITY_ROW, token))
                cur.execute(select, (IDENTITY_ROW,))
                row = cur.fetchone()
            return int(row[0])
        finally:
            cur.close()

    value = on_ledger(pool, work)
    return f"{value:016x}"


def key_prefix(identity: str, database: str, table: str, app_name: str) -> str:
    """The key prefix of one table's cache entries: ``fx:{<32 hex>}:``."""
    text = "\x00".join((identity, database, table, app_name))
    return "fx:{" + hashlib.sha256(text.encode()).hexdigest()[:32] + "}:"


def channel(db: int, app_name: str) -> str:
    """The local-cache invalidation channel of one Redis database and application."""
    return f"fx:inv:{db}:{hashlib.sha256(app_name.encode()).hexdigest()[:12]}"


def hash_tag(key: str) -> str:
    """The Redis Cluster hash tag of a key (``""`` when it has none)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start >= 0 and end > start + 1 else ""
