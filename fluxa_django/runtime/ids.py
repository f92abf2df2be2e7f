"""``IdAllocator``: entity ids from a durable counter beside the entity's table.

Ids are reserved in blocks from the ``_fluxa_ids`` table of the entity's MySQL
database (one row per entity table: the first id not handed out yet), so most
``new()`` calls cost no round trip. A block starts above ``MAX(id)`` of the
table, above the counter and above every id this process handed out, and the
counter is committed before any id of the block is used: ids stay unique
across processes whatever happens to Redis (a restart without persistence, a
failover to a lagging replica, a restored snapshot), which a Redis counter
cannot promise. The table is created on first use when it does not exist.

A process creating entities fast (a block used up within a second) doubles its
block, up to 10,000 ids (less for small id types); after ten quiet seconds it
starts small again, so an idle process that exits leaves a small gap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fluxa_django.backends.mysql import DriverError, database_error
from fluxa_django.runtime.observe import OBSERVERS, notify

if TYPE_CHECKING:
    from fluxa_django.backends.mysql import MySQLPool

LEDGER = "_fluxa_ids"
CREATE_LEDGER = (
    f"CREATE TABLE IF NOT EXISTS `{LEDGER}` ("
    "`table_name` varchar(64) NOT NULL PRIMARY KEY, "
    "`next_id` bigint unsigned NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=ascii"
)
# The new counter is GREATEST(counter, MAX(id) + 1, this process's floor) + block;
# LAST_INSERT_ID(expr) hands it back in the statement's OK packet (one round trip).
_RESERVE = (
    f"INSERT INTO `{LEDGER}` (`table_name`, `next_id`) VALUES (%s, LAST_INSERT_ID(%s + %s)) "
    "ON DUPLICATE KEY UPDATE `next_id` = LAST_INSERT_ID(GREATEST(`next_id`, %s) + %s)"
)
_NO_TABLE = 1146  # ER_NO_SUCH_TABLE
T = TypeVar("T")


def on_ledger(pool: MySQLPool, work: Callable[[Any], T], entity: str = "") -> T:
    """``work(raw connection)`` on the ``_fluxa_ids`` table of ``pool``, creating the
    table first when it does not exist yet. Driver errors surface as ours, naming
    the table (and ``entity``). ``work`` runs through ``pool.read``: it may run twice
    (a dead pooled connection), so it must be safe to repeat.
    """
    try:
        try:
            return pool.read(work)
        except DriverError as exc:
            if not (exc.args and exc.args[0] == _NO_TABLE):
                raise
        pool.exec(CREATE_LEDGER)
        return pool.read(work)
    except DriverError as exc:
        raise database_error(exc, pool.code, entity, LEDGER) from exc


class IdAllocator:
    """Hands out ids for one table, reserving ``block`` ids per reservation."""

    def __init__(self, entity: str, table: str, mysql: MySQLPool, max_id: int) -> None:
        self.entity = entity
        self.table = table
        self.mysql = mysql
        self.max_id = max_id
        self.first_block = min(100, max_id)
        self.block = self.first_block
        self.max_block = max(self.first_block, min(10_000, max_id // 100_000))
        self._reserved_at = -1e9
        self._next = 1
        self._end = 0  # the last id of the current block
        self._lock = threading.Lock()
        self._max_sql = f"SELECT IFNULL(MAX(`id`), 0) FROM `{table}`"

    def next_id(self) -> int:
        with self._lock:
            if self._next > self._end:
                self._reserve()
            value = self._next
            self._next += 1
        if value > self.max_id:
            raise OverflowError(
                f"entity {self.entity}: id {value} exceeds the id type's maximum {self.max_id}"
            )
        return value

    def _reserve(self) -> None:
        now = time.monotonic()
        since = now - self._reserved_at
        if since < 1.0:
            block = min(self.block * 2, self.max_block)
        elif since > 10.0:
            block = self.first_block
        else:
            block = self.block
        end = self._reserve_block(block)
        self.block = block
        self._reserved_at = now
        self._end = end
        self._next = end - block + 1

    def _reserve_block(self, block: int) -> int:
        """Commit the next ``block`` ids on the server; returns the last one."""
        if OBSERVERS:
            notify("mysql", "reserve ids")
        # Running the reservation twice (a dead pooled connection) only leaves a gap.
        return on_ledger(self.mysql, lambda raw: self._reserve_on(raw, block), self.entity)

    def _reserve_on(self, raw: Any, block: int) -> int:
        cur = raw.cursor()
        try:
            cur.execute(self._max_sql)
            row = cur.fetchone()
            floor = max(int(row[0]) + 1 if row else 1, self._end + 1)
            cur.execute(_RESERVE, (self.table, floor, block, floor, block))
            return int(cur.lastrowid) - 1
        finally:
            cur.close()
