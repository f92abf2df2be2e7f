"""``engine.redis(code)``: the redis-py client (measured, logged through a context), locks,
the sliding-window rate limiter, ``incr_with_expire`` and pipelines, on the real Redis.

Each test works in an application namespace of its own (a random ``app_name``) on the
suite's Redis database, and deletes its keys afterwards.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from fluxa_django import Context, Engine, PoolError, Registry, metrics
from fluxa_django.backends.redis import (
    Lock,
    RateLimit,
    RedisClient,
    RedisPool,
    quick_command,
    tool_namespace,
)
from fluxa_django.config import RedisOptions
from tests.cache_helpers import RedisServer
from tests.services import REDIS_ADDRESS, REDIS_TEST_DB


def make_pool(app_name: str, address: str = REDIS_ADDRESS, db: int = REDIS_TEST_DB) -> RedisPool:
    pool = RedisPool("default", address, db, RedisOptions(), app_name=app_name)
    pool.connect()
    return pool


@pytest.fixture
def app() -> str:
    return f"tools-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pool(app: str) -> Iterator[RedisPool]:
    """A pool in an application namespace of its own; its keys are deleted afterwards."""
    made = make_pool(app)
    try:
        yield made
    finally:
        ns = tool_namespace(app)
        for pattern in (f"fx:lock:{ns}:*", f"fx:rate:{ns}:*", f"{app}:*"):
            keys = list(made.client.scan_iter(match=pattern, count=1000))
            if keys:
                made.client.unlink(*keys)
        made.close()


@pytest.fixture
def engine() -> Iterator[Engine]:
    registry = Registry()
    registry.register_redis(REDIS_ADDRESS, REDIS_TEST_DB)
    built = registry.validate()
    try:
        yield built
    finally:
        built.close()


class Entries:
    """The Redis entries a context's query logger received."""

    def __init__(self, ctx: Context) -> None:
        self.items: list[dict[str, Any]] = []
        ctx.register_query_logger(self.items.append, mysql=False, local=False)

    def ops(self) -> list[tuple[str, str]]:
        return [(e["operation"], e["query"]) for e in self.items]


# -- the client ----------------------------------------------------------------------------


def test_engine_redis_is_the_redis_py_client_on_the_pool_connections(engine: Engine) -> None:
    pool = engine.redis()
    assert isinstance(pool, redis.Redis)
    key = f"tools-{uuid.uuid4().hex}"
    try:
        assert pool.set(key, "v", ex=30) is True
        assert pool.get(key) == b"v"
        assert pool.hset(f"{key}:h", mapping={"a": 1, "b": 2}) == 2
        assert pool.hgetall(f"{key}:h") == {b"a": b"1", b"b": b"2"}
        assert pool.client.get(key) == b"v"  # the plain client: same server, same database
        assert pool.client.connection_pool is pool.connection_pool
        assert pool.connection_pool.connection_kwargs["db"] == REDIS_TEST_DB
    finally:
        pool.delete(key, f"{key}:h")
    assert repr(pool) == f"<RedisPool 'default' {REDIS_ADDRESS}/{REDIS_TEST_DB}>"


def test_commands_are_logged_to_the_bound_context_without_values(
    pool: RedisPool, app: str, engine: Engine
) -> None:
    ctx = engine.new_context()
    seen = Entries(ctx)
    other = Entries(engine.new_context())
    client = pool.with_context(ctx)
    assert isinstance(client, RedisClient)
    assert client.connection_pool is pool.connection_pool
    key = f"{app}:secret"
    client.set(key, "s3cret-value", ex=30)
    assert client.get(key) == b"s3cret-value"
    assert client.get(f"{app}:missing") is None
    client.hset(f"{app}:h", "field", "hidden")
    with pytest.raises(redis.ResponseError):
        client.lpush(key, "x")  # WRONGTYPE: logged with its error
    pool.get(key)  # the pool itself reports to no context
    assert seen.ops() == [
        ("set", f"SET {key} (+3 args)"),
        ("get", f"GET {key}"),
        ("get", f"GET {app}:missing"),
        ("hset", f"HSET {app}:h (+2 args)"),
        ("lpush", f"LPUSH {key} (+1 args)"),
    ]
    assert [e["miss"] for e in seen.items] == [False, False, True, False, False]
    assert [e["error"] is not None for e in seen.items] == [False] * 4 + [True]
    assert "WRONGTYPE" in seen.items[-1]["error"]
    assert all(e["source"] == "redis" and e["pool"] == "default" for e in seen.items)
    assert all(e["microseconds"] >= 0 for e in seen.items)
    assert not any("s3cret" in str(e) or "hidden" in str(e) for e in seen.items)
    assert other.items == []


def test_a_logger_without_redis_sees_nothing(engine: Engine, app: str) -> None:
    ctx = engine.new_context()
    got: list[dict[str, Any]] = []
    ctx.register_query_logger(got.append, redis=False)
    client = engine.redis().with_context(ctx)
    client.get(f"{app}:nothing")
    assert got == []


def test_auth_is_never_shown(pool: RedisPool, engine: Engine) -> None:
    ctx = engine.new_context()
    seen = Entries(ctx)
    with pytest.raises(redis.RedisError):
        pool.with_context(ctx).execute_command("AUTH", "nobody", "pa55word")
    assert seen.ops() == [("auth", "AUTH")]
    assert "pa55word" not in str(seen.items)


@pytest.fixture
def sink() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    previous = metrics.METRICS
    metrics.METRICS = metrics.Metrics(registry)
    try:
        yield registry
    finally:
        metrics.METRICS = previous


def sample(sink: CollectorRegistry, name: str, **labels: str) -> float:
    return sink.get_sample_value(name, labels) or 0.0


def test_commands_and_tools_are_measured(
    pool: RedisPool, app: str, sink: CollectorRegistry
) -> None:
    pool.set(f"{app}:k", "1")
    pool.get(f"{app}:k")
    pool.get(f"{app}:k")
    with pytest.raises(redis.ResponseError):
        pool.lpush(f"{app}:k", "x")
    lock = pool.get_locker().obtain("job", ttl=5)
    assert lock is not None
    lock.release()
    pool.rate_limiter("api", 10, 1).allow()
    pool.incr_with_expire(f"{app}:n", 10)
    pipe = pool.pipeline()
    pipe.get(f"{app}:k")
    pipe.get(f"{app}:k")
    pipe.execute()
    seconds = "fluxa_queries_seconds_count"
    assert sample(sink, seconds, source="redis", pool="default", operation="get") == 2
    assert sample(sink, seconds, source="redis", pool="default", operation="set") == 1
    assert sample(sink, seconds, source="redis", pool="default", operation="multi") == 1
    for operation in ("lock obtain", "lock release", "rate limit", "incr_with_expire"):
        assert sample(sink, seconds, source="redis", pool="default", operation=operation) == 1
    assert sample(sink, "fluxa_query_errors_total", source="redis", pool="default") == 1
    # the plain client (the ORM's own calls, measured by the tiers) is not counted here
    pool.client.get(f"{app}:k")
    assert sample(sink, seconds, source="redis", pool="default", operation="get") == 2


# -- pipelines -----------------------------------------------------------------------------


def test_pipelines_run_in_one_round_trip_and_are_logged_once(
    pool: RedisPool, app: str, engine: Engine
) -> None:
    ctx = engine.new_context()
    seen = Entries(ctx)
    client = pool.with_context(ctx)
    pipe = client.pipeline(transaction=False)
    pipe.set(f"{app}:a", "1")
    pipe.incr(f"{app}:a")
    pipe.get(f"{app}:a")
    pipe.get(f"{app}:none")
    assert pipe.execute() == [True, 2, b"2", None]
    with client.pipeline() as tx:  # MULTI/EXEC
        tx.incr(f"{app}:a")
        tx.incr(f"{app}:a")
        assert tx.execute() == [3, 4]
    assert client.pipeline().execute() == []  # nothing queued: nothing sent, nothing logged
    assert seen.ops() == [("pipeline", "SET INCRBY GET GET"), ("multi", "INCRBY INCRBY")]


def test_watch_transactions_log_the_commands_sent_at_once(
    pool: RedisPool, app: str, engine: Engine
) -> None:
    ctx = engine.new_context()
    seen = Entries(ctx)
    client = pool.with_context(ctx)
    key = f"{app}:balance"
    client.set(key, 10)

    def spend(pipe: Any) -> None:
        balance = int(pipe.get(key))
        pipe.multi()
        pipe.set(key, balance - 3)

    assert client.transaction(spend, key) == [True]
    assert client.get(key) == b"7"
    assert seen.ops()[1:] == [
        ("watch", f"WATCH {key}"),
        ("get", f"GET {key}"),
        ("multi", "SET"),
        ("get", f"GET {key}"),
    ]


# -- locks ---------------------------------------------------------------------------------


def test_a_held_lock_is_refused_to_others_until_released(pool: RedisPool, app: str) -> None:
    locker = pool.get_locker()
    assert pool.get_locker() is locker
    lock = locker.obtain("report", ttl=10)
    assert isinstance(lock, Lock)
    assert lock.key == f"fx:lock:{tool_namespace(app)}:report" == locker.key("report")
    assert pool.get(lock.key) == lock.token
    started = time.monotonic()
    assert locker.obtain("report", ttl=10) is None
    assert locker.obtain("report", ttl=10, wait_timeout=0.3) is None
    assert 0.3 <= time.monotonic() - started < 1.0
    assert lock.release() is True
    assert pool.exists(lock.key) == 0
    assert lock.release() is False  # idempotent
    again = locker.obtain("report", ttl=10)
    assert again is not None
    again.release()


def test_a_waiter_gets_the_lock_soon_after_its_release(pool: RedisPool) -> None:
    locker = pool.get_locker()
    lock = locker.obtain("queue", ttl=10)
    assert lock is not None
    releaser = threading.Timer(0.3, lock.release)
    releaser.start()
    started = time.monotonic()
    second = locker.obtain("queue", ttl=10, wait_timeout=5)
    waited = time.monotonic() - started
    releaser.join()
    assert second is not None
    assert 0.25 <= waited < 0.6  # polled every <= 100 ms, not at the end of the wait
    second.release()


def test_only_the_owner_releases_or_refreshes(pool: RedisPool) -> None:
    locker = pool.get_locker()
    first = locker.obtain("owner", ttl=0.2)
    assert first is not None
    time.sleep(0.3)  # expired: another owner takes it
    second = locker.obtain("owner", ttl=10)
    assert second is not None
    assert first.release() is False  # leaves the new owner's lock alone
    assert pool.get(second.key) == second.token
    assert first.refresh(10) is False
    assert first.ttl() == 0.0
    assert 9 < second.ttl() <= 10
    assert second.release() is True


def test_refresh_sets_the_time_to_live_and_a_lost_lock_stays_lost(pool: RedisPool) -> None:
    locker = pool.get_locker()
    lock = locker.obtain("refresh", ttl=10)
    assert lock is not None
    assert lock.refresh(2) is True
    assert 1.5 < lock.ttl() <= 2.0  # set, not added to the 10 s
    assert lock.refresh(0.2) is True
    time.sleep(0.3)
    assert lock.ttl() == 0.0
    assert lock.refresh(5) is False  # expired: lost
    other = locker.obtain("refresh", ttl=5)
    assert other is not None  # nobody else was blocked by the lost lock
    assert lock.refresh(5) is False  # and it never comes back, even on a new owner's key
    assert pool.get(other.key) == other.token
    assert lock.release() is False
    other.release()


def test_with_block_releases(pool: RedisPool) -> None:
    locker = pool.get_locker()
    lock = locker.obtain("block", ttl=10)
    assert lock is not None
    with lock:
        assert locker.obtain("block", ttl=10) is None
    assert pool.exists(lock.key) == 0


def test_the_lock_excludes_concurrent_writers(pool: RedisPool, app: str) -> None:
    """Threads read-modify-write a counter with two separate commands: only mutual
    exclusion keeps every increment."""
    locker = pool.get_locker()
    counter = f"{app}:counter"
    pool.set(counter, 0)
    threads, rounds = 6, 25
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(rounds):
                lock = locker.obtain("counter", ttl=5, wait_timeout=10)
                assert lock is not None
                with lock:
                    value = int(pool.get(counter) or 0)
                    time.sleep(0.0005)
                    pool.set(counter, value + 1)
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert int(pool.get(counter) or 0) == threads * rounds


def test_lock_arguments_are_checked(pool: RedisPool) -> None:
    locker = pool.get_locker()
    with pytest.raises(ValueError, match="ttl"):
        locker.obtain("x", ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        locker.obtain("x", ttl=-1)
    with pytest.raises(ValueError, match="wait_timeout"):
        locker.obtain("x", ttl=1, wait_timeout=-1)
    with pytest.raises(TypeError, match="ttl"):
        locker.obtain("x", ttl="1")  # type: ignore[arg-type]
    lock = locker.obtain("x", ttl=1)
    assert lock is not None
    with pytest.raises(ValueError, match="ttl"):
        lock.refresh(0)
    lock.release()


def test_locks_and_limits_of_two_applications_never_meet(pool: RedisPool, app: str) -> None:
    other_app = make_pool(f"{app}-other")
    same_app = make_pool(app)
    try:
        mine = pool.get_locker().obtain("nightly", ttl=10)
        assert mine is not None
        theirs = other_app.get_locker().obtain("nightly", ttl=10)
        assert theirs is not None  # another application: another key
        assert theirs.key != mine.key
        assert same_app.get_locker().obtain("nightly", ttl=10) is None  # same app: contended
        theirs.release()
        mine.release()
        assert pool.rate_limiter("api", 1, 10).allow()
        assert other_app.rate_limiter("api", 1, 10).allow()
        assert not same_app.rate_limiter("api", 1, 10).allow()
        other_app.rate_limiter("api", 1, 10).reset()
    finally:
        other_app.close()
        same_app.close()


def test_lock_operations_are_logged(pool: RedisPool, engine: Engine) -> None:
    ctx = engine.new_context()
    seen = Entries(ctx)
    locker = pool.with_context(ctx).get_locker()
    lock = locker.obtain("logged", ttl=5)
    assert lock is not None
    assert locker.obtain("logged", ttl=5) is None
    lock.refresh(5)
    lock.ttl()
    lock.release()
    key = locker.key("logged")
    assert seen.ops() == [
        ("lock obtain", key),
        ("lock obtain", key),
        ("lock refresh", key),
        ("lock ttl", key),
        ("lock release", key),
    ]
    assert [e["miss"] for e in seen.items] == [False, True, False, False, False]


# -- incr_with_expire ----------------------------------------------------------------------


def test_incr_with_expire_counts_in_a_fixed_window(pool: RedisPool, app: str) -> None:
    key = f"{app}:hits"  # used as given
    assert pool.incr_with_expire(key, 10) == 1
    assert 9000 < pool.pttl(key) <= 10_000
    assert pool.incr_with_expire(key, 1000) == 2  # the expiry stays where the first call put it
    assert pool.pttl(key) <= 10_000
    pool.set(key, 5)  # a counter without an expiry (written by someone else) gets one
    assert pool.incr_with_expire(key, 0.5) == 6
    assert 0 < pool.pttl(key) <= 500
    time.sleep(0.6)
    assert pool.incr_with_expire(key, 10) == 1  # a new window


def test_incr_with_expire_never_leaves_a_counter_without_expiry(pool: RedisPool, app: str) -> None:
    keys = [f"{app}:c{i}" for i in range(20)]
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for key in keys:
                pool.incr_with_expire(key, 30)
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(5)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert [int(pool.get(k) or 0) for k in keys] == [5] * len(keys)
    assert all(pool.pttl(k) > 0 for k in keys)


# -- rate limiter --------------------------------------------------------------------------


def test_the_limiter_allows_limit_hits_per_window(pool: RedisPool, app: str) -> None:
    limiter = pool.rate_limiter("login:alice", limit=3, window=1.0)
    assert limiter.key == f"fx:rate:{tool_namespace(app)}:login:alice"
    answers = [limiter.hit() for _ in range(3)]
    assert [a.allowed for a in answers] == [True, True, True]
    assert [a.remaining for a in answers] == [2, 1, 0]
    refused = limiter.hit()
    assert refused == RateLimit(False, 0, refused.retry_after)
    assert 0.8 < refused.retry_after <= 1.0
    assert limiter.used() == 3  # a refused hit is not counted
    time.sleep(refused.retry_after + 0.02)
    assert limiter.allow()
    assert 0 < pool.pttl(limiter.key) <= 1000  # the key goes one window after the last hit


def test_the_window_slides(pool: RedisPool) -> None:
    """Hits leave the window one by one, when each one is ``window`` old: not all at
    once at a bucket boundary."""
    limiter = pool.rate_limiter("slide", limit=4, window=1.0)
    assert all(limiter.allow() for _ in range(2))
    time.sleep(0.5)
    assert all(limiter.allow() for _ in range(2))
    refused = limiter.hit()
    assert not refused.allowed
    assert 0.35 < refused.retry_after <= 0.5  # when the first two leave
    time.sleep(refused.retry_after + 0.02)
    assert limiter.used() == 2
    assert limiter.allow() and limiter.allow()
    assert not limiter.allow()  # the two of t=0.5 are still in the window


def test_cost_counts_several_hits_at_once(pool: RedisPool) -> None:
    limiter = pool.rate_limiter("bulk", limit=10, window=5)
    assert limiter.hit(cost=7) == RateLimit(True, 3, 0.0)
    refused = limiter.hit(cost=4)
    assert not refused.allowed and refused.remaining == 3
    assert limiter.hit(cost=3).allowed
    assert limiter.used() == 10
    limiter.reset()
    assert limiter.used() == 0
    with pytest.raises(ValueError, match="cost"):
        limiter.hit(cost=11)
    with pytest.raises(ValueError, match="cost"):
        limiter.hit(cost=0)
    with pytest.raises(ValueError, match="limit"):
        pool.rate_limiter("bad", limit=0, window=1)
    with pytest.raises(ValueError, match="window"):
        pool.rate_limiter("bad", limit=1, window=0)


def test_concurrent_hits_never_exceed_the_limit(pool: RedisPool, app: str) -> None:
    """Eight threads, each with its own pool (as other processes would be), hit one
    limiter: exactly ``limit`` hits are allowed."""
    pools = [make_pool(app) for _ in range(8)]
    allowed: list[int] = []
    failures: list[BaseException] = []

    def work(own: RedisPool) -> None:
        limiter = own.rate_limiter("shared", limit=100, window=30)
        try:
            allowed.append(sum(limiter.allow() for _ in range(40)))
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(p,)) for p in pools]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for own in pools:
        own.close()
    assert failures == []
    assert sum(allowed) == 100
    assert pool.rate_limiter("shared", limit=100, window=30).used() == 100


def test_limiter_hits_are_logged(pool: RedisPool, engine: Engine) -> None:
    ctx = engine.new_context()
    seen = Entries(ctx)
    limiter = pool.with_context(ctx).rate_limiter("logged", 1, 10)
    assert limiter.allow()
    assert not limiter.allow()
    assert seen.ops() == [("rate limit", limiter.key)] * 2
    assert [e["miss"] for e in seen.items] == [False, True]


# -- Redis down ----------------------------------------------------------------------------


def test_tools_raise_pool_error_when_redis_is_gone(redis_server: RedisServer) -> None:
    pool = make_pool("down", address=redis_server.address, db=0)
    try:
        lock = pool.get_locker().obtain("job", ttl=10)
        assert lock is not None
        limiter = pool.rate_limiter("api", 5, 1)
        redis_server.kill()
        started = time.monotonic()
        with pytest.raises(PoolError, match="redis pool 'default': lock obtain") as caught:
            pool.get_locker().obtain("job2", ttl=10)
        assert isinstance(caught.value.__cause__, redis.ConnectionError)
        with pytest.raises(PoolError, match="lock release"):
            lock.release()
        with pytest.raises(PoolError, match="rate limit"):
            limiter.allow()
        with pytest.raises(PoolError, match="incr_with_expire"):
            pool.incr_with_expire("n", 1)
        assert time.monotonic() - started < 2.0  # refused connections fail at once
        with pytest.raises(redis.ConnectionError):
            pool.get("k")  # the client itself raises what redis-py raises
    finally:
        pool.close()


def test_the_engine_gives_its_pools_the_app_name() -> None:
    registry = Registry()
    registry.set_option("app_name", "shop")
    registry.register_redis(REDIS_ADDRESS, REDIS_TEST_DB)
    engine = registry.validate()
    try:
        assert engine.redis().app_name == "shop"
        assert engine.redis().get_locker().key("x") == f"fx:lock:{tool_namespace('shop')}:x"
    finally:
        engine.close()


def test_the_hot_read_path_retries_a_broken_connection_once_and_keeps_a_good_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``quick_command`` (the row cache's and Redis Search's reads) follows the pool's
    retry rule without ``execute_command``: a connection that breaks while the reply is
    read is dropped and the command sent once more on a new one; a timeout is not
    retried (the connection is dropped); an error reply is raised as redis-py raises it
    and the connection stays in the pool; a server that is gone raises."""
    from redis.connection import AbstractConnection

    host, port = REDIS_ADDRESS.split(":")
    client = redis.Redis(host=host, port=int(port), db=REDIS_TEST_DB)
    key = f"quick:{uuid.uuid4().hex}"
    real = AbstractConnection.read_response
    real_send: Any = AbstractConnection.send_command
    failures: list[type[Exception]] = []  # raised by the reads of the next GETs' replies
    sent: list[str] = []  # the GETs sent (the handshakes of new connections left out)

    def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        if args[0] == "GET":
            sent.append("GET")
        return real_send(self, *args, **kwargs)

    def flaky(self: Any, *args: Any, **kwargs: Any) -> Any:
        if failures and sent and sent[-1] == "GET":
            sent[-1] = "GET (failed)"
            raise failures.pop()("injected")
        return real(self, *args, **kwargs)

    try:
        client.set(key, b"v")
        assert quick_command(client, "MGET", key, key + ":none") == [b"v", None]
        monkeypatch.setattr(AbstractConnection, "read_response", flaky)
        monkeypatch.setattr(AbstractConnection, "send_command", send)
        failures.append(redis.ConnectionError)
        assert quick_command(client, "GET", key) == b"v"  # dropped, sent again, answered
        assert sent == ["GET (failed)", "GET"]
        sent.clear()
        failures.append(redis.TimeoutError)
        with pytest.raises(redis.TimeoutError):
            quick_command(client, "GET", key)
        assert sent == ["GET (failed)"], "a timeout is not retried"
        sent.clear()
        failures.extend([redis.ConnectionError, redis.ConnectionError])
        with pytest.raises(redis.ConnectionError):
            quick_command(client, "GET", key)  # broken twice: raised after one retry
        assert sent == ["GET (failed)", "GET (failed)"]
        monkeypatch.setattr(AbstractConnection, "read_response", real)
        monkeypatch.setattr(AbstractConnection, "send_command", real_send)
        (mine,) = client.connection_pool._available_connections
        with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
            quick_command(client, "GET")
        (kept,) = client.connection_pool._available_connections
        assert kept is mine and kept._sock is not None  # the same connection, reused
    finally:
        monkeypatch.setattr(AbstractConnection, "read_response", real)
        monkeypatch.setattr(AbstractConnection, "send_command", real_send)
        client.delete(key)
        client.close()
    gone = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with pytest.raises(redis.ConnectionError):
        quick_command(gone, "GET", key)
