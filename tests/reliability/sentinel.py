"""A Redis Sentinel group a test starts itself: a master, a replica and three sentinels,
each a real redis-server process on a free loopback port (the binary of
``tests.cache_helpers.redis_server_command``), no persistence, killed afterwards."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.cache_helpers import free_port, redis_server_command

MASTER_NAME = "fluxa-master"


def _wait(what: str, predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate()`` holds (errors count as false); fails after ``timeout``."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(redis.RedisError, OSError, KeyError, IndexError):
            if predicate():
                return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"sentinel group: {what} not reached within {timeout} s")
        time.sleep(0.02)


class SentinelGroup:
    """Master, replica and three sentinels watching them (quorum 2)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="fluxa-sentinel-"))
        self.data_ports = [free_port(), free_port()]  # [initial master, initial replica]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def sentinels(self) -> tuple[str, ...]:
        """The sentinels' addresses, as ``RedisOptions(sentinels=...)`` takes them."""
        return tuple(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=1)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        master, replica = self.data_ports
        self._spawn(master, [])
        self._spawn(replica, ["--replicaof", "127.0.0.1", str(master)])
        for port in self.sentinel_ports:
            conf = self.folder / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\n"
                "bind 127.0.0.1\n"
                f"dir {self.folder}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 2000\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            self._spawn(port, [str(conf), "--sentinel"], data=False)
        self.wait_ready(timeout=60)

    def _spawn(self, port: int, extra: list[str], data: bool = True) -> None:
        command, env = redis_server_command()
        if data:
            args = [
                *command,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--dbfilename",
                f"dump-{port}.rdb",
                *extra,
            ]
        else:
            args = [*command, *extra]
        log = open(self.folder / f"{port}.log", "wb")  # noqa: SIM115 (the process owns it)
        self.processes[port] = subprocess.Popen(args, env=env, stdout=log, stderr=log)
        log.close()
        client = self.client(port)
        try:
            _wait(f"redis-server on port {port}", lambda: bool(client.ping()), 10)
        finally:
            client.close()

    def remove(self) -> None:
        for process in self.processes.values():
            process.kill()
        for process in self.processes.values():
            process.wait(timeout=30)
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of every process's log (shown when an assertion fails)."""
        out = []
        for path in sorted(self.folder.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"---- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    # -- state -------------------------------------------------------------------------------

    def master_seen_by(self, port: int) -> int:
        """The master port sentinel ``port`` names."""
        client = self.client(port)
        try:
            host_port: Any = client.sentinel_get_master_addr_by_name(MASTER_NAME)
            return int(host_port[1])
        finally:
            client.close()

    def agreed_master(self) -> int | None:
        """The master port every sentinel names, or ``None`` while they disagree."""
        seen = {self.master_seen_by(port) for port in self.sentinel_ports}
        return seen.pop() if len(seen) == 1 else None

    def role(self, port: int) -> str:
        client = self.client(port)
        try:
            role: Any = client.role()
            return str(role[0].decode() if isinstance(role[0], bytes) else role[0])
        finally:
            client.close()

    def replica_in_sync(self, port: int, master: int) -> bool:
        client = self.client(port)
        try:
            info: dict[str, Any] = client.info("replication")
            return (
                info.get("role") == "slave"
                and int(info.get("master_port", 0)) == master
                and info.get("master_link_status") == "up"
                and int(info.get("master_sync_in_progress", 1)) == 0
            )
        finally:
            client.close()

    def run_id(self, port: int) -> str:
        client = self.client(port)
        try:
            return str(client.info("server")["run_id"])
        finally:
            client.close()

    def wait_ready(self, timeout: float) -> None:
        """Until the sentinels agree on the master and each knows the other two and a
        replica that is in sync and fit to be promoted."""
        master = self.master_port()
        replica = self.replica_port()

        def ready() -> bool:
            if not self.replica_in_sync(replica, master):
                return False
            for port in self.sentinel_ports:
                client = self.client(port)
                try:
                    state: Any = client.sentinel_master(MASTER_NAME)
                    replicas: Any = client.sentinel_slaves(MASTER_NAME)
                finally:
                    client.close()
                if int(state["port"]) != master or int(state["num-other-sentinels"]) < 2:
                    return False
                fit = [
                    r
                    for r in replicas
                    if int(r["port"]) == replica
                    and r["flags"] == "slave"
                    and r["master-link-status"] == "ok"
                ]
                if not fit:
                    return False
            return True

        _wait("a ready sentinel group", ready, timeout)

    def master_port(self) -> int:
        master = self.agreed_master()
        assert master is not None, "the sentinels disagree on the master"
        return master

    def replica_port(self) -> int:
        master = self.master_port()
        (replica,) = [p for p in self.data_ports if p != master]
        return replica

    # -- failover ----------------------------------------------------------------------------

    def failover(self, timeout: float = 30.0) -> None:
        """``SENTINEL FAILOVER``: retried while the sentinel finds no replica fit yet
        (``NOGOODSLAVE``: its view of the replica is refreshed every few seconds)."""
        client = self.client(self.sentinel_ports[0])
        try:

            def sent() -> bool:
                try:
                    command = client.execute_command
                    return bool(command("SENTINEL FAILOVER", MASTER_NAME))  # type: ignore[no-untyped-call]
                except redis.ResponseError as exc:
                    if "NOGOODSLAVE" in str(exc) or "INPROG" in str(exc):
                        return False
                    raise AssertionError(f"SENTINEL FAILOVER: {exc}") from exc

            _wait("SENTINEL FAILOVER accepted", sent, timeout)
        finally:
            client.close()
