"""One worker process of ``test_concurrent_tiers`` (``python -m tests.reliability.worker``).

The worker builds its own engine by hand (its own local tier, invalidation
listener, MySQL and Redis connections) and obeys JSON commands, one per line
on stdin; it answers with one JSON event per line on stdout:

- ``{"cmd": "run", "products": [...], "users": [...]}``: a random mix of
  reads, updates, soft deletes, hard deletes and re-creations of these rows
  until the next command arrives (random pauses before round trips widen the
  race windows);
- ``{"cmd": "stop"}``: answers ``stopped`` with the operation counts, once no
  flush of this worker is in flight any more;
- ``{"cmd": "warm"|"watch"|"write", "id": n}``: the invalidation-latency probe
  (``watch`` answers ``watching``, then polls the local tier until the row is
  evicted and answers ``evicted`` with the ``time.time()`` of the eviction;
  ``write`` changes the row and answers the time of its commit);
- ``{"cmd": "report", "names": {id: name}}``: what every tier of this process
  serves for each hot id (local entry, Redis entry, ``get_by_id`` on a fresh
  context, the cached unique-index lookup of the given current name);
- ``{"cmd": "exit"}`` (or end of stdin).

Anything unexpected is answered with an ``error`` event and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fluxa_django import Context, Engine
    from fluxa_django.runtime.tiers import Tiers

# A flush that loses against a concurrent writer: duplicate id on a re-creation,
# InnoDB deadlock, lock wait timeout. Anything else is a failure.
# (1020: "record has changed since last read", MariaDB 11.6+ with innodb_snapshot_isolation.)
_RETRYABLE_MYSQL_CODES = {1020, 1062, 1205, 1213}
# While running, a round trip is preceded by a random pause: (chance, longest pause in s).
JITTER = {
    "fill": (0.6, 0.004),  # a reader about to fill: the widest race window
    "release": (0.0, 0.0),  # committed: publish at once, or the window closes again
}
JITTER_DEFAULT = (0.2, 0.002)


def build_engine(database: str, redis_address: str, redis_db: int) -> Engine:
    """An engine built by hand: the test MySQL database, the suite's Redis db, a local tier."""
    from fluxa_django import Registry
    from tests.entities import CategoryEntity, ProductEntity, UserEntity
    from tests.services import mysql_uri

    registry = Registry()
    registry.register_mysql(mysql_uri(database))
    registry.register_redis(redis_address, redis_db)
    registry.register_local_cache("default", 1000)
    registry.register_entity(CategoryEntity, ProductEntity, UserEntity)
    return registry.validate()


def show(row: Any) -> str:
    """A row in comparable text form (the parent compares it with MySQL's row)."""
    return repr(tuple(row))


def emit(event: str, **data: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


class Worker:
    def __init__(self, engine: Engine, args: argparse.Namespace) -> None:
        from fluxa_django.runtime.observe import OBSERVERS
        from tests.generated import ProductEntityProvider, UserEntityProvider

        self.engine = engine
        self.name: str = args.name
        self.rng = random.Random(args.seed)
        self.products: list[int] = [int(i) for i in args.products.split(",")]
        self.users: list[int] = [int(i) for i in args.users.split(",")]
        self.category: int = args.category
        self.hot = self.products  # the rows run() works on
        self.hot_users = self.users
        product_tiers = ProductEntityProvider.tiers(engine)
        user_tiers = UserEntityProvider.tiers(engine)
        assert product_tiers is not None and user_tiers is not None
        assert product_tiers.local is not None, "ProductEntity has a local tier"
        self.product_tiers: Tiers = product_tiers
        self.user_tiers: Tiers = user_tiers
        self.ops: Counter[str] = Counter()
        self.reads: Counter[str] = Counter()  # single-row reads by the tier that answered
        self.round_trips: Counter[str] = Counter()
        self.serial = 0
        self.commit_time = 0.0
        self.jitter = False  # random pauses before round trips, during run() only
        OBSERVERS.append(self._observe)

    def _observe(self, source: str, operation: str) -> None:
        self.round_trips[f"{source}:{operation}"] += 1
        if source == "redis" and operation == "release":
            self.commit_time = time.time()  # right after COMMIT, before DEL + PUBLISH
        if self.jitter:
            # Widen the race windows: a pause between a reader's MySQL read and its fills
            # lets another process's whole flush (and its invalidation) run in between.
            chance, longest = JITTER.get(operation, JITTER_DEFAULT)
            if self.rng.random() < chance:
                time.sleep(self.rng.random() * longest)

    def context(self) -> Context:
        return self.engine.new_context()

    def unique(self, what: str) -> str:
        self.serial += 1
        return f"{what}-{self.name}-{self.serial}"

    # -- the workload ---------------------------------------------------------------

    def run(
        self, commands: queue.Queue[dict[str, Any]], products: list[int], users: list[int]
    ) -> None:
        """Random operations on these rows (a subset of the hot rows) until the next command."""
        self.hot = products
        self.hot_users = users
        operations = [
            (self.get_product, 18),
            (self.get_products, 10),
            (self.search_products, 6),
            (self.unique_lookup, 8),
            (self.get_users, 8),
            (self.update_product, 16),
            (self.batch_update, 5),
            (self.delete_product, 5),
            (self.revive_product, 5),
            (self.update_user, 8),
            (self.delete_user, 3),
            (self.create_user, 3),
        ]
        functions = [f for f, _ in operations]
        weights = [w for _, w in operations]
        deadline = time.monotonic() + 60  # a safety net; the parent stops us after seconds
        self.jitter = True
        try:
            while commands.empty() and time.monotonic() < deadline:
                operation = self.rng.choices(functions, weights)[0]
                try:
                    operation()
                except Exception as exc:
                    if not _lost_race(exc):
                        raise
                    self.ops["lost race (flush failed)"] += 1
        finally:
            self.jitter = False

    def answered_by(self, read: Callable[[], object]) -> str:
        """Run a one-row read on a fresh context; the tier that answered it."""
        trips = self.round_trips
        mysql, redis = trips["mysql:select"], trips["redis:get"]
        read()
        if trips["mysql:select"] > mysql:
            return "mysql"
        return "redis" if trips["redis:get"] > redis else "local"

    def get_product(self) -> None:
        from tests.generated import ProductEntityProvider

        id_ = self.rng.choice(self.hot)
        tier = self.answered_by(lambda: ProductEntityProvider.get_by_id(self.context(), id_))
        self.ops["read get_by_id"] += 1
        self.reads[f"product get_by_id from {tier}"] += 1

    def get_products(self) -> None:
        from tests.generated import ProductEntityProvider

        ids = self.rng.sample(self.hot, self.rng.randint(2, len(self.hot)))
        ProductEntityProvider.get_by_ids(self.context(), ids)
        self.ops["read get_by_ids"] += 1

    def search_products(self) -> None:
        from fluxa_django import Query
        from tests.generated import ProductEntityProvider

        fields = ProductEntityProvider.fields
        ids = self.rng.sample(self.hot, min(8, len(self.hot)))
        query = Query().filter(fields.category.eq(self.category), fields.id.in_(ids))
        found = ProductEntityProvider.search_many(self.context(), query.sort_by_asc(fields.id))
        # The ids are selected first, then loaded through the tiers: a row soft-deleted in
        # between comes back deleted (test_search_race.py reproduces it). Counted here; the
        # report checks the quiet state strictly.
        self.ops["race: search_many returned a row soft-deleted meanwhile"] += sum(
            1 for p in found if p.fake_delete
        )
        self.ops["read search_many"] += 1

    def unique_lookup(self) -> None:
        from tests.generated import ProductEntityProvider

        product = ProductEntityProvider.get_by_id(self.context(), self.rng.choice(self.hot))
        if product is None:
            return
        name = product.name
        found = ProductEntityProvider.get_by_unique_index_name(self.context(), name)
        # Always true, whatever the races: the lookup verifies the row it returns.
        assert found is None or (found.name == name and not found.fake_delete), (
            f"unique lookup of {name!r} returned {found!r}"
        )
        self.ops["read unique index"] += 1

    def get_users(self) -> None:
        from tests.generated import UserEntityProvider

        if self.rng.random() < 0.5:
            id_ = self.rng.choice(self.hot_users)
            tier = self.answered_by(lambda: UserEntityProvider.get_by_id(self.context(), id_))
            self.ops["read user get_by_id"] += 1
            self.reads[f"user get_by_id from {tier}"] += 1
        else:
            UserEntityProvider.get_by_ids(
                self.context(), self.rng.sample(self.hot_users, min(6, len(self.hot_users)))
            )
            self.ops["read user get_by_ids"] += 1

    def _change_product(self, product: Any) -> None:
        from tests.entities import Status, Tag

        rng = self.rng
        changes = rng.sample(["name", "price", "status", "description", "weight", "tags"], 2)
        for change in changes:
            if change == "name":
                product.name = self.unique("name")
            elif change == "price":
                product.price = rng.randint(100, 99_999) / 100
            elif change == "status":
                product.status = rng.choice(list(Status))
            elif change == "description":
                product.description = self.unique("text")
            elif change == "weight":
                product.weight = rng.choice([None, 0.5, 1.25, 3.0, 10.75])
            else:
                product.tags = rng.choice([None, set(), {Tag.NEW}, {Tag.NEW, Tag.SALE}])

    def update_product(self) -> None:
        from tests.generated import ProductEntityProvider

        ctx = self.context()
        product = ProductEntityProvider.get_by_id(ctx, self.rng.choice(self.hot))
        if product is None:
            return
        self._change_product(product)
        ctx.flush()
        self.ops["write update product"] += 1

    def batch_update(self) -> None:
        """Several products and a user in one flush (multi-row UPDATE, two tables)."""
        from tests.generated import ProductEntityProvider, UserEntityProvider

        ctx = self.context()
        for product in ProductEntityProvider.get_by_ids(
            ctx, self.rng.sample(self.hot, min(3, len(self.hot)))
        ):
            product.price = self.rng.randint(100, 99_999) / 100
            if self.rng.random() < 0.5:
                product.name = self.unique("name")
        user = UserEntityProvider.get_by_id(ctx, self.rng.choice(self.hot_users))
        if user is not None:
            user.age = self.rng.randint(0, 120)
        ctx.flush()
        self.ops["write batch update"] += 1

    def delete_product(self) -> None:
        from tests.generated import ProductEntityProvider

        ctx = self.context()
        product = ProductEntityProvider.get_by_id(ctx, self.rng.choice(self.hot))
        if product is None or product.fake_delete:
            return
        product.delete()
        ctx.flush()
        self.ops["write soft delete product"] += 1

    def revive_product(self) -> None:
        """Soft deletes cannot be undone: delete for real, then insert again with the id."""
        from tests.entities import Status
        from tests.generated import ProductEntityProvider

        id_ = self.rng.choice(self.hot)
        ctx = self.context()
        product = ProductEntityProvider.get_by_id(ctx, id_)
        if product is not None:
            if not product.fake_delete:
                return
            product.force_delete()
            ctx.flush()
            self.ops["write force delete product"] += 1
        ctx = self.context()
        product = ProductEntityProvider.new_with_id(ctx, id_)
        product.name = self.unique("name")
        product.category_id = self.category
        product.status = Status.ACTIVE
        product.price = self.rng.randint(100, 99_999) / 100
        ctx.flush()
        self.ops["write re-create product"] += 1

    def update_user(self) -> None:
        from tests.generated import UserEntityProvider

        ctx = self.context()
        user = UserEntityProvider.get_by_id(ctx, self.rng.choice(self.hot_users))
        if user is None:
            return
        if self.rng.random() < 0.5:
            user.name = self.unique("user")
        else:
            user.age = self.rng.randint(0, 120)
        ctx.flush()
        self.ops["write update user"] += 1

    def delete_user(self) -> None:
        from tests.generated import UserEntityProvider

        ctx = self.context()
        user = UserEntityProvider.get_by_id(ctx, self.rng.choice(self.hot_users))
        if user is None:
            return
        user.delete()  # UserEntity has no fake_delete: a real DELETE
        ctx.flush()
        self.ops["write delete user"] += 1

    def create_user(self) -> None:
        from tests.generated import UserEntityProvider

        id_ = self.rng.choice(self.hot_users)
        ctx = self.context()
        if UserEntityProvider.get_by_id(ctx, id_) is not None:
            return
        ctx = self.context()
        user = UserEntityProvider.new_with_id(ctx, id_)
        user.name = self.unique("user")
        user.email = self.unique("mail") + "@example.com"
        user.age = self.rng.randint(0, 120)
        ctx.flush()
        self.ops["write re-create user"] += 1

    # -- the invalidation latency probe ------------------------------------------------

    def local_entry(self, id_: int) -> Any:
        local = self.product_tiers.local
        assert local is not None
        return local.get_row((self.product_tiers.prefix, id_), time.monotonic())

    def warm(self, id_: int) -> bool:
        from fluxa_django.backends.localcache import MISSING
        from tests.generated import ProductEntityProvider

        for _ in range(50):
            ProductEntityProvider.get_by_id(self.context(), id_)
            if self.local_entry(id_) is not MISSING:
                return True
            time.sleep(0.01)  # a fill refused by a concurrent invalidation: read again
        return False

    def watch(self, id_: int, timeout: float) -> float | None:
        """Poll the local tier until the row is evicted; the ``time.time()`` of the eviction."""
        from fluxa_django.backends.localcache import MISSING

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.local_entry(id_) is MISSING:
                return time.time()
            time.sleep(0.0001)
        return None

    def write(self, id_: int) -> float:
        from tests.generated import ProductEntityProvider

        ctx = self.context()
        product = ProductEntityProvider.must_get_by_id(ctx, id_)
        product.description = self.unique("probe")
        self.commit_time = 0.0
        ctx.flush()
        assert self.commit_time > 0
        return self.commit_time

    # -- the final report -----------------------------------------------------------------

    def report(self, names: dict[str, str]) -> dict[str, Any]:
        from fluxa_django import Query
        from fluxa_django.backends.localcache import MISSING
        from tests.generated import ProductEntityProvider, UserEntityProvider

        products: dict[str, dict[str, Any]] = {}
        for id_ in self.products:
            entry: dict[str, Any] = {}
            local = self.local_entry(id_)
            entry["local"] = (
                "missing" if local is MISSING else None if local is None else show(local)
            )
            entry["redis"] = self.redis_entry(self.product_tiers, id_)
            entity = ProductEntityProvider.get_by_id(self.context(), id_)
            entry["entity"] = None if entity is None else show(entity._row)
            name = names.get(str(id_))
            if name is not None:
                found = ProductEntityProvider.get_by_unique_index_name(self.context(), name)
                entry["unique"] = None if found is None else [found.id, show(found._row)]
            products[str(id_)] = entry
        users: dict[str, dict[str, Any]] = {}
        for id_ in self.users:
            user = UserEntityProvider.get_by_id(self.context(), id_)
            users[str(id_)] = {
                "redis": self.redis_entry(self.user_tiers, id_),
                "entity": None if user is None else show(user._row),
            }
        fields = ProductEntityProvider.fields
        query = Query().filter(fields.category.eq(self.category), fields.id.in_(self.products))
        found_ids = [
            p.id
            for p in ProductEntityProvider.search_many(self.context(), query.sort_by_asc(fields.id))
        ]
        bus = self.product_tiers.bus
        assert bus is not None
        return {
            "search": found_ids,
            "products": products,
            "users": users,
            "bus_healthy": bus.healthy,
            "messages_received": bus.received,
        }

    def redis_entry(self, tiers: Tiers, id_: int) -> str | None:
        """``None`` (nothing cached), ``"not found"``, ``"control:<kind>"``, ``"stale stamp"`` or a row."""
        from fluxa_django.runtime import codec

        value = tiers.client.get(tiers.key(id_))
        if value is None:
            return None
        assert isinstance(value, bytes)
        if value == codec.NOT_FOUND:
            return "not found"
        if codec.is_control(value):
            return f"control:{value[1:2].decode()}"
        row = codec.decode_row(tiers.stamp, value)
        return "stale stamp" if row is None else show(row)


def _lost_race(exc: BaseException) -> bool:
    from fluxa_django import IntegrityError, OperationalError

    if isinstance(exc, IntegrityError | OperationalError):
        return exc.code in _RETRYABLE_MYSQL_CODES
    return False


def _read_commands(commands: queue.Queue[dict[str, Any]]) -> None:
    for line in sys.stdin:
        if line.strip():
            commands.put(json.loads(line))
    commands.put({"cmd": "exit"})  # the parent went away


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--redis-db", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--products", required=True)
    parser.add_argument("--users", required=True)
    parser.add_argument("--category", type=int, required=True)
    args = parser.parse_args()
    try:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
        import django

        django.setup()
        engine = build_engine(args.database, args.redis, args.redis_db)
        worker = Worker(engine, args)
        bus = worker.product_tiers.bus
        assert bus is not None
        if not bus.ensure_started(wait=10.0):
            raise RuntimeError("the invalidation listener did not subscribe within 10 s")
        commands: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=_read_commands, args=(commands,), daemon=True).start()
        emit("ready", pid=os.getpid())
        while True:
            command = commands.get(timeout=300)
            cmd = command["cmd"]
            if cmd == "run":
                worker.run(commands, command["products"], command["users"])
            elif cmd == "stop":
                local = worker.product_tiers.local
                assert local is not None
                emit(
                    "stopped",
                    ops=dict(worker.ops),
                    reads=dict(worker.reads),
                    round_trips=dict(worker.round_trips),
                    local_hits=local.hits,
                    local_misses=local.misses,
                )
            elif cmd == "warm":
                emit("warm", ok=worker.warm(command["id"]))
            elif cmd == "watch":
                emit("watching")
                emit("evicted", t=worker.watch(command["id"], command["timeout"]))
            elif cmd == "write":
                emit("written", t=worker.write(command["id"]))
            elif cmd == "report":
                emit("report", **worker.report(command["names"]))
            elif cmd == "exit":
                engine.close()
                return 0
            else:
                raise ValueError(f"unknown command {cmd!r}")
    except BaseException:
        emit("error", traceback=traceback.format_exc())
        return 1


if __name__ == "__main__":
    sys.exit(main())
