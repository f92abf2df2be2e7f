"""Helpers of the async flush reliability tests (``test_async_*.py``).

- ``generated()``: the providers of ``async_entities``, generated into
  ``.fluxa/async_generated/`` (the consumer processes import them from there);
- ``build_engine``: an engine on one MySQL database, the suite's Redis database and a
  Kafka broker, with the async flush registered (its own app name and consumer group);
- ``Workload``: a seeded random sequence of flushes mixing inserts, updates, soft and
  hard deletes on four tables (and records that fail for good), applied the same way
  with ``flush_async`` to one database and with ``flush`` to another;
- ``install_hooks``: after-hooks that record each call twice: as an
  ``AsyncHookCallEntity`` written through the hook's context, and as a line appended to
  a file (``os.write`` on an ``O_APPEND`` descriptor: once written, a SIGKILL of the
  process does not lose it);
- ``Consumer``: a consumer process (``python -m tests.reliability.async_worker``) whose
  progress lines are read as they come;
- ``table_rows``: a table's rows in id order, for comparing two databases.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import MySQLdb

from fluxa_django import AsyncFlushOptions, Context, Engine, Registry
from fluxa_django.codegen import generate
from fluxa_django.errors import IntegrityError
from tests.reliability import async_entities
from tests.services import MYSQL_HOST, MYSQL_PORT, REDIS_ADDRESS, REDIS_TEST_DB, mysql_uri

REPO = Path(__file__).resolve().parents[2]
GENERATED_ROOT = REPO / ".fluxa" / "async_generated"
PACKAGE = "fluxa_async_entities"
# The consumer processes' session: Tansu hands a killed member's partitions out only once
# its session expired (a restart takes about this plus 1.5 s), and gives a new group its
# partitions after about a second.
SESSION_MS = 1000
ENTITIES = (
    async_entities.AsyncItemEntity,
    async_entities.AsyncEventEntity,
    async_entities.AsyncNoteEntity,
    async_entities.AsyncVisitEntity,
    async_entities.AsyncHookCallEntity,
)
HOOKED = ("AsyncItemEntity", "AsyncEventEntity", "AsyncNoteEntity")


def registry_for(database: str, broker: str, group: str, app_name: str) -> Registry:
    registry = Registry()
    registry.set_option("app_name", app_name)
    registry.register_mysql(mysql_uri(database))
    registry.register_redis(REDIS_ADDRESS, REDIS_TEST_DB)
    registry.register_local_cache("default", 10_000)
    registry.register_kafka([broker], "events")
    registry.register_async_flush(
        "events", AsyncFlushOptions(topic_partitions=6, consumer_group=group)
    )
    registry.register_entity(*ENTITIES)
    return registry


def build_engine(database: str, broker: str, group: str, app_name: str) -> Engine:
    return registry_for(database, broker, group, app_name).validate()


_generated: ModuleType | None = None


def generated() -> ModuleType:
    """The generated package of the async entities (generated once per process)."""
    global _generated
    if _generated is None:
        registry = registry_for("unused", "127.0.0.1:9", "unused", "unused")
        generate(registry, GENERATED_ROOT / PACKAGE)
        if str(GENERATED_ROOT) not in sys.path:
            sys.path.insert(0, str(GENERATED_ROOT))
        importlib.invalidate_caches()
        _generated = importlib.import_module(PACKAGE)
    return _generated


def providers() -> dict[str, Any]:
    module = generated()
    return {name: getattr(module, f"{name}Provider") for name in (*async_entities.WORKLOAD,)}


def all_providers() -> dict[str, Any]:
    module = generated()
    return {e.__name__: getattr(module, f"{e.__name__}Provider") for e in ENTITIES}


# -- databases ------------------------------------------------------------------------------


def _root() -> Any:
    return MySQLdb.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user="root", passwd="", autocommit=True
    )


@contextlib.contextmanager
def databases(count: int) -> Iterator[list[str]]:
    """``count`` fresh MySQL databases, dropped afterwards."""
    names = [f"fluxa_ta_{uuid.uuid4().hex[:10]}" for _ in range(count)]
    conn = _root()
    try:
        for name in names:
            conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield names
    finally:
        for name in names:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def table_rows(database: str, table: str) -> list[tuple[Any, ...]]:
    conn = _root()
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM `{database}`.`{table}` ORDER BY `id`")
        return list(cur.fetchall())
    finally:
        conn.close()


def scalar(database: str, sql: str) -> Any:
    conn = _root()
    try:
        cur = conn.cursor()
        cur.execute(f"USE `{database}`")
        cur.execute(sql)
        return cur.fetchone()[0]
    finally:
        conn.close()


def hook_calls(database: str) -> list[tuple[str, str, int, str]]:
    """The hook calls written through the hooks' contexts, sorted (ids apart)."""
    rows = table_rows(database, "AsyncHookCallEntity")
    return sorted((str(e), str(k), int(i), str(c)) for _, e, k, i, c in rows)


# -- hooks ---------------------------------------------------------------------------------------


def install_hooks(log_path: Path) -> Callable[[], None]:
    """After-hooks on the hooked tables (see the module docstring); returns the function
    that removes them."""
    module = generated()
    calls = module.AsyncHookCallEntityProvider
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(ctx: Context, name: str, kind: str, entity_id: int, changed: str) -> None:
        os.write(fd, f"{name} {kind} {entity_id} {changed}\n".encode())
        call = calls.new(ctx)
        call.entity = name
        call.kind = kind
        call.entity_id = entity_id
        call.changed = changed

    def inserted(name: str, ctx: Context, entity: Any) -> None:
        record(ctx, name, "i", entity.id, "")

    def updated(name: str, ctx: Context, entity: Any, changes: dict[str, Any]) -> None:
        record(ctx, name, "u", entity.id, ",".join(sorted(changes)))

    def deleted(name: str, ctx: Context, entity: Any) -> None:
        record(ctx, name, "d", entity.id, "")

    hooked = [getattr(module, f"{name}Provider") for name in HOOKED]
    for name, provider in zip(HOOKED, hooked, strict=True):
        provider.on_after_insert(partial(inserted, name))
        provider.on_after_update(partial(updated, name))
        provider.on_after_delete(partial(deleted, name))

    def remove() -> None:
        for provider in hooked:
            provider._after_insert = provider._after_update = provider._after_delete = None
        os.close(fd)

    return remove


def logged_calls(log_path: Path) -> list[tuple[str, str, int, str]]:
    out = []
    for line in log_path.read_text().splitlines():
        name, kind, entity_id, *changed = line.split(" ")
        out.append((name, kind, int(entity_id), " ".join(changed)))
    return out


# -- the workload --------------------------------------------------------------------------------

Op = tuple[Any, ...]  # (kind, table, id[, values])
TEXT = "abcdefghijklmnopqrstuvwxyz ABC 0123456789 'quote' \"dq\" back\\slash é ü 中 \U0001f600"


@dataclass
class Workload:
    """A seeded random sequence of flushes (see the module docstring).

    ``writes`` row changes in flushes of 1-40 changes over the four tables; a changed id
    appears once per flush; ``poison`` flushes of their own insert an event whose id is
    taken (a record that fails for good, and a synchronous flush that fails).
    """

    writes: int
    seed: int
    poison: int = 0
    flushes: list[list[Op]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        live = {t: _Ids() for t in async_entities.WORKLOAD}
        gone = {t: _Ids() for t in async_entities.WORKLOAD}
        next_id = dict.fromkeys(async_entities.WORKLOAD, 1)
        versions: dict[tuple[str, int], int] = {}
        poison_at = set(rng.sample(range(5, max(6, self.writes // 60)), self.poison))
        done = 0
        while done < self.writes:
            if len(self.flushes) in poison_at and live["AsyncEventEntity"].ids:
                poison_at.discard(len(self.flushes))
                victim = rng.choice(live["AsyncEventEntity"].ids)
                self.flushes.append([("poison", "AsyncEventEntity", victim, _event(rng))])
                continue
            ops: list[Op] = []
            used: set[tuple[str, int]] = set()
            for _ in range(min(rng.randint(1, 40), self.writes - done)):
                table = rng.choices(async_entities.WORKLOAD, weights=(4, 3, 2, 3))[0]
                kind = rng.choices(("insert", "update", "delete"), weights=(5, 4, 2))[0]
                if table == "AsyncVisitEntity" and kind == "update":
                    kind = "insert"
                free = live[table].pick(rng, table, used)
                if kind != "insert" and free is None:
                    kind = "insert"
                if kind == "insert":
                    back = gone[table].pick(rng, table, used) if rng.random() < 0.05 else None
                    if back is not None:
                        # an id deleted by an earlier flush comes back (same partition:
                        # the delete is applied first)
                        id_ = back
                        gone[table].discard(id_)
                    else:
                        id_ = next_id[table]
                        next_id[table] += 1
                    version = versions[(table, id_)] = versions.get((table, id_), -1) + 1
                    ops.append(("insert", table, id_, _values(rng, table, id_, version)))
                    live[table].add(id_)
                elif kind == "update":
                    assert free is not None
                    id_ = free
                    version = versions[(table, id_)] = versions[(table, id_)] + 1
                    ops.append(("update", table, id_, _changes(rng, table, id_, version)))
                else:
                    assert free is not None
                    id_ = free
                    hard = table != "AsyncItemEntity" or rng.random() < 0.5
                    ops.append(("force" if hard else "delete", table, id_))
                    live[table].discard(id_)
                    if hard and table != "AsyncItemEntity":
                        gone[table].add(id_)
                used.add((table, id_))
            done += len(ops)
            self.flushes.append(ops)

    @property
    def records(self) -> int:
        """How many records publishing it makes (one per flush and table)."""
        return sum(len({op[1] for op in ops}) for ops in self.flushes)


class _Ids:
    """A set of ids with a uniform random pick in O(1) (list + positions)."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.at: dict[int, int] = {}

    def add(self, id_: int) -> None:
        if id_ not in self.at:
            self.at[id_] = len(self.ids)
            self.ids.append(id_)

    def discard(self, id_: int) -> None:
        index = self.at.pop(id_, None)
        if index is None:
            return
        last = self.ids.pop()
        if last != id_:
            self.ids[index] = last
            self.at[last] = index

    def pick(self, rng: random.Random, table: str, used: set[tuple[str, int]]) -> int | None:
        """A random id not in ``used`` (None when there is none, or none was found)."""
        for _ in range(20):
            if not self.ids:
                return None
            id_ = self.ids[rng.randrange(len(self.ids))]
            if (table, id_) not in used:
                return id_
        return None


def _event(rng: random.Random) -> dict[str, Any]:
    return {
        "kind": rng.choice(("view", "cart", "order")),
        "payload": "".join(rng.choices(TEXT, k=rng.randrange(0, 300))),
        "amount": rng.randrange(-(10**12), 10**12),
        "happened": datetime.datetime(2024, 1, 1)
        + datetime.timedelta(seconds=rng.randrange(10**8)),
    }


def _values(rng: random.Random, table: str, id_: int, version: int) -> dict[str, Any]:
    if table == "AsyncItemEntity":
        return {
            "name": f"item-{id_}-{version}",
            "price": rng.randrange(100, 10**6) / 100,
            "stock": rng.randrange(0, 10**6),
            "tags": rng.choice((None, {"new"}, {"sale"}, {"new", "sale"}, {"gift"})),
        }
    if table == "AsyncEventEntity":
        return _event(rng)
    if table == "AsyncNoteEntity":
        return {
            "title": "".join(rng.choices(TEXT, k=rng.randrange(1, 120))),
            "body": rng.choice((None, rng.randbytes(rng.randrange(0, 200)))),
            "day": rng.choice(
                (None, datetime.date(2020, 1, 1) + datetime.timedelta(rng.randrange(2000)))
            ),
        }
    return {
        "page": f"/products/{rng.randrange(1, 500)}",
        "visitor": rng.randrange(1, 10**6),
        "seen": datetime.datetime(2024, 6, 1) + datetime.timedelta(seconds=rng.randrange(10**7)),
    }


def _changes(rng: random.Random, table: str, id_: int, version: int) -> dict[str, Any]:
    values = _values(rng, table, id_, version)
    keys = sorted(values)
    if table == "AsyncItemEntity" and rng.random() < 0.7:
        keys.remove("name")  # most updates keep the name
    chosen = rng.sample(keys, rng.randint(1, len(keys)))
    return {k: values[k] for k in chosen}


class Applier:
    """Applies a workload's flushes to one engine, holding its entities between flushes
    (one context for the whole run, as the rows are never read back)."""

    def __init__(self, engine: Engine, synchronous: bool) -> None:
        self.engine = engine
        self.synchronous = synchronous
        self.providers = providers()
        self.ctx = engine.new_context()
        self.ctx.disable_context_cache()
        self.live: dict[tuple[str, int], Any] = {}
        self.failed = 0  # synchronous flushes that failed (poison)

    def apply(self, ops: list[Op]) -> None:
        ctx = self.ctx
        for op in ops:
            kind, table, id_ = op[0], op[1], op[2]
            provider = self.providers[table]
            if kind in ("insert", "poison"):
                entity = provider.new_with_id(ctx, id_)
                for name, value in op[3].items():
                    setattr(entity, name, value)
                if kind == "insert":
                    self.live[(table, id_)] = entity
            elif kind == "update":
                entity = self.live[(table, id_)]
                for name, value in op[3].items():
                    setattr(entity, name, value)
            elif kind == "delete":
                self.live.pop((table, id_)).delete()
            else:  # a hard delete (delete() is one on entities without fake_delete)
                entity = self.live.pop((table, id_))
                getattr(entity, "force_delete", entity.delete)()
        if not self.synchronous:
            ctx.flush_async(update_cache=False)
            return
        try:
            ctx.flush()
        except IntegrityError:
            assert ops[0][0] == "poison", ops
            ctx.clear_flush()
            self.failed += 1
        while ctx.tracked:  # what the hooks made
            ctx.flush()


# -- consumer processes --------------------------------------------------------------------------


class Consumer:
    """A consumer process: ``python -m tests.reliability.async_worker`` (see there)."""

    def __init__(
        self,
        database: str,
        broker: str,
        group: str,
        app_name: str,
        hook_log: Path,
        log_dir: Path,
        *,
        batch: int = 500,
        idle_timeout: float = 2.0,
        kafka_commit: bool = True,
    ) -> None:
        self.log_path = log_dir / f"consumer-{uuid.uuid4().hex[:6]}.log"
        args = [
            sys.executable,
            "-m",
            "tests.reliability.async_worker",
            "--database",
            database,
            "--broker",
            broker,
            "--group",
            group,
            "--app-name",
            app_name,
            "--hook-log",
            str(hook_log),
            "--batch",
            str(batch),
            "--idle-timeout",
            str(idle_timeout),
            *([] if kafka_commit else ["--no-kafka-commit"]),
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(GENERATED_ROOT)])}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log
            )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.last: dict[str, Any] = {}
        self.started = time.monotonic()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.events.put(json.loads(line))

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        try:
            event = self.events.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        self.last = event
        return event

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """Read events until one satisfies ``predicate`` (False: timeout or exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.next_event(min(0.2, deadline - time.monotonic()))
            if event is not None and predicate(event):
                return True
            if event is None and self.process.poll() is not None and self.events.empty():
                return False
        return False

    def partitions(self) -> list[int]:
        """Its partitions after the events so far (read now)."""
        while self.next_event(0.0) is not None:
            pass
        return sorted(self.last.get("partitions", []))

    def terminate(self) -> None:
        """SIGTERM: the consumer stops after the batch it is applying."""
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def finish(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for the process to stop by itself; its last ``stopped`` event."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)  # its threads' stacks to its log
            time.sleep(1.0)
            self.kill()
            raise AssertionError(
                f"the consumer did not stop within {timeout} s; its last event "
                f"{self.last}; its log:\n{self.output()}"
            ) from None
        while self.next_event(0.5) is not None:
            pass
        assert self.process.returncode == 0, self.output()
        assert self.last.get("event") == "stopped", self.output()
        return self.last

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]
