"""``IdAllocator``: entity ids from a Redis counter seeded from ``MAX(id)``.

Each process reserves blocks with ``INCRBY`` so that most ``new()`` calls cost
no round trip; ids are unique across processes, with gaps after a restart.
A process creating entities fast (a block used up within a second) doubles its
block, up to 10,000 ids (less for small id types); after ten quiet seconds it
starts small again, so an idle process that exits leaves a small gap.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import redis as redis_lib

from fluxa_django.errors import PoolError
from fluxa_django.runtime.observe import OBSERVERS, notify

if TYPE_CHECKING:
    from fluxa_django.backends.mysql import MySQLPool
    from fluxa_django.backends.redis import RedisPool

# KEYS[1] counter; ARGV[1] block size; ARGV[2] seed or "" when not known yet.
_RESERVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
    if ARGV[2] == '' then return -1 end
    redis.call('SET', KEYS[1], ARGV[2], 'NX')
end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


class IdAllocator:
    """Hands out ids for one table, reserving ``block`` ids per Redis round trip."""

    def __init__(
        self,
        entity: str,
        table: str,
        redis: RedisPool,
        mysql: MySQLPool,
        max_id: int,
        block: int = 100,
    ) -> None:
        self.entity = entity
        self.key = f"fluxa:id:{mysql.database}:{table}"
        self.table = table
        self.redis = redis
        self.mysql = mysql
        self.max_id = max_id
        self.block = block
        self.first_block = block
        self.max_block = max(block, min(10_000, max_id // 100_000))
        self._reserved_at = -1e9
        self._next = 1
        self._end = 0
        self._lock = threading.Lock()
        self._script = redis.client.register_script(_RESERVE)

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
            self.block = min(self.block * 2, self.max_block)
        elif since > 10.0:
            self.block = self.first_block
        self._reserved_at = now
        try:
            self._reserve_block()
        except (redis_lib.RedisError, OSError) as exc:
            raise PoolError(
                f"entity {self.entity}: new() cannot reserve ids: redis pool "
                f"{self.redis.code!r} is unreachable ({type(exc).__name__})",
                pool=self.redis.code,
            ) from exc

    def _reserve_block(self) -> None:
        if OBSERVERS:
            notify("redis", "reserve ids")
        end = int(self._script(keys=[self.key], args=[self.block, ""]))
        if end < 0:
            if OBSERVERS:
                notify("mysql", "max id")
                notify("redis", "reserve ids")
            row = self.mysql.query_row(f"SELECT IFNULL(MAX(`id`), 0) FROM `{self.table}`")
            # The counter is gone (new Redis, restart, FLUSHDB): never go below an id
            # this process already handed out, even one not flushed yet.
            seed = max(int(row[0]) if row else 0, self._end)
            end = int(self._script(keys=[self.key], args=[self.block, seed]))
        self._end = end
        self._next = end - self.block + 1
