"""Untimed probes of the cache tiers: which tier served a call, and where Redis keeps a row.

``RoundTrips`` counts the round trips fluxa reports to its process-wide observers
(``fluxa_django.runtime.observe.OBSERVERS``), so a case can check that a warm call
was served by the tier it is about. ``find_cache_keys`` finds the Redis key of each
cached row without knowing fluxa's key format, for the raw redis-py baseline.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import redis
from redis.connection import AbstractConnection

from fluxa_django.runtime.observe import OBSERVERS

if TYPE_CHECKING:
    from fluxa_django import Engine

# Provider methods that may give the Redis key of a cached row, ``method(id)``: used
# when the provider has one (``provider.tiers(engine).key(id)`` is tried too), instead
# of searching Redis for the keys.
KEY_METHODS = ("cache_key", "redis_key", "redis_cache_key", "row_cache_key")
# Every bench row's name starts with "item <id, 5 digits> " (``make_records``).
_NAME_ID = re.compile(rb"item (\d{5}) ")
STAND_IN_PREFIX = "bench:stand-in"


class RoundTrips:
    """Counts the MySQL and Redis round trips fluxa reports while it is active (``with``)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, source: str, operation: str) -> None:
        self.counts[source] += 1

    def __enter__(self) -> RoundTrips:
        OBSERVERS.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        OBSERVERS.remove(self)

    @property
    def mysql(self) -> int:
        return self.counts["mysql"]

    @property
    def redis(self) -> int:
        return self.counts["redis"]

    def describe(self) -> str:
        return f"{self.mysql} MySQL and {self.redis} Redis round trip(s)"


class RedisCommands:
    """The commands sent to Redis, on any connection (pipelines aside), while active (``with``).

    Counted below fluxa and below redis-py's client, at the connection's
    ``send_command``: what fluxa reports to its observers (``RoundTrips``) may leave
    some out, and fluxa's hot reads do not go through ``Redis.execute_command``.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self._original: Callable[..., Any] | None = None

    def __enter__(self) -> RedisCommands:
        original: Callable[..., Any] = AbstractConnection.send_command
        self._original = original
        names = self.names

        def counting(connection: AbstractConnection, *args: Any, **options: Any) -> Any:
            name = args[0]
            names.append((name.decode() if isinstance(name, bytes) else str(name)).upper())
            return original(connection, *args, **options)

        setattr(AbstractConnection, "send_command", counting)  # noqa: B010
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        setattr(AbstractConnection, "send_command", self._original)  # noqa: B010


def check_tier(tier: str, call: Callable[[], object], mysql: int, redis: int) -> list[str]:
    """``[]`` when one ``call()`` made exactly ``mysql``/``redis`` round trips, else why not."""
    try:
        with RoundTrips() as trips:
            call()
    except Exception as exc:  # reported in the result, not raised: the run goes on
        return [f"not served by the {tier}: a warm call raised {type(exc).__name__}: {exc}"]
    if trips.mysql == mysql and trips.redis == redis:
        return []
    return [
        f"not served by the {tier}: a warm call made {trips.describe()}, "
        f"expected {mysql} MySQL and {redis} Redis"
    ]


def redis_keys(client: redis.Redis) -> set[bytes]:
    """Every key of the client's database (SCAN, not KEYS)."""
    return {bytes(key) for key in client.scan_iter(match="*", count=1000)}


@dataclass(frozen=True)
class CacheKeys:
    """The Redis key holding each id's cache entry (empty when none was found)."""

    keys: dict[int, bytes]
    how: str  # how they were found, or why not


def _key_bytes(key: object) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()


def _key_methods(provider: object, engine: Engine) -> Iterator[tuple[str, Callable[[int], object]]]:
    """The ways the provider may give a row's Redis key, as ``(description, key(id))``."""
    for name in KEY_METHODS:
        method = getattr(provider, name, None)
        if callable(method):
            yield f"provider.{name}(id)", method
    tiers = getattr(provider, "tiers", None)  # fluxa's per-engine tiers object, if any
    if callable(tiers):
        try:
            found = tiers(engine)
        except Exception:  # another signature: not the tiers accessor
            found = None
        key = getattr(found, "key", None)
        if callable(key):
            yield "provider.tiers(engine).key(id)", key


def _holds_rows(values: list[Any], ids: list[int], names: Mapping[int, str]) -> bool:
    return all(
        isinstance(value, bytes) and names[id_].encode() in value
        for id_, value in zip(ids, values, strict=True)
    )


def _keys_from_provider(
    client: redis.Redis, provider: object, engine: Engine, ids: list[int], names: Mapping[int, str]
) -> CacheKeys | None:
    """Keys the provider names, if every one exists and holds its row."""
    for how, method in _key_methods(provider, engine):
        try:
            keys = {id_: _key_bytes(method(id_)) for id_ in ids}
        except Exception:  # not a key method after all (other signature): search instead
            continue
        if _holds_rows(list(client.mget(list(keys.values()))), ids, names):
            return CacheKeys(keys, how)
    return None


def find_cache_keys(
    client: redis.Redis,
    provider: object,
    engine: Engine,
    ids: list[int],
    names: Mapping[int, str],
    before: Iterable[bytes],
) -> CacheKeys:
    """The key of each id's cache entry, after the entries were written.

    Uses a key method of the provider when it has one (``KEY_METHODS``, or
    ``provider.tiers(engine).key``) and its keys hold the rows. Otherwise
    it scans the database for the string keys that appeared since ``before`` was
    taken and picks, for each id, the key whose value holds that row (its name, the
    bench's unique marker), so the key format never has to be known here.
    """
    found = _keys_from_provider(client, provider, engine, ids, names)
    if found is not None:
        return found
    known = set(before)
    new = sorted(redis_keys(client) - known)
    pipe = client.pipeline(transaction=False)
    for key in new:
        pipe.type(key)
    strings = [key for key, kind in zip(new, pipe.execute(), strict=True) if kind == b"string"]
    for key in strings:
        pipe.get(key)
    wanted = set(ids)
    candidates: dict[int, list[bytes]] = {}
    for key, value in zip(strings, pipe.execute(), strict=True):
        match = _NAME_ID.search(value or b"")
        if match is None:
            continue
        id_ = int(match.group(1))
        if id_ in wanted and names[id_].encode() in value:
            candidates.setdefault(id_, []).append(key)
    keys = {id_: found_keys[0] for id_, found_keys in candidates.items() if len(found_keys) == 1}
    if len(keys) == len(ids):
        return CacheKeys(keys, "SCAN of the keys new since warming, value holding the row")
    ambiguous = sum(1 for found_keys in candidates.values() if len(found_keys) > 1)
    return CacheKeys(
        {},
        f"no cache entry found for {len(ids) - len(keys)} of {len(ids)} ids "
        f"({len(new)} new key(s), {len(strings)} string(s), {ambiguous} id(s) with several keys)",
    )


def write_stand_ins(
    client: redis.Redis, table: str, rows: Mapping[int, tuple[Any, ...]]
) -> CacheKeys:
    """Keys the bench writes itself (the row as JSON), for the raw baseline when fluxa has none."""
    keys = {id_: f"{STAND_IN_PREFIX}:{table}:{id_}".encode() for id_ in rows}
    pipe = client.pipeline(transaction=False)
    for id_, row in rows.items():
        pipe.set(keys[id_], json.dumps(row, default=str, separators=(",", ":")))
    pipe.execute()
    return CacheKeys(keys, "stand-in keys written by the bench (the row as JSON)")
