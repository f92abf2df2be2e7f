"""A second, throwaway MariaDB server for fault tests: its own data directory and
loopback port, started, stopped (SIGSTOP), killed and restarted by the test."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import MySQLdb

from tests.cache_helpers import ServerProcess, free_port


class MariaDBServer(ServerProcess):
    """``mariadb-install-db`` into a temporary folder, then ``mariadbd`` on a free port."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="fluxa-mariadb-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        assert installer, "mariadb-install-db is not installed (make services installs MariaDB)"
        result = subprocess.run(
            [
                installer,
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                f"--user={getpass.getuser()}",
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]

    def uri(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        server = shutil.which("mariadbd", path=f"/usr/sbin:{os.environ.get('PATH', '')}")
        assert server, "mariadbd is not installed"
        self.process = subprocess.Popen(
            [
                server,
                "--no-defaults",
                f"--datadir={self.data}",
                f"--socket={self.folder / 'mysqld.sock'}",
                f"--pid-file={self.folder / 'mysqld.pid'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--user={getpass.getuser()}",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--skip-log-bin",
                "--max-connections=50",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise AssertionError(f"mariadbd exited at once: {err[-2000:]}")
            try:
                self.connect().close()
                return
            except MySQLdb.OperationalError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"mariadbd on port {self.port} did not come up") from None
                time.sleep(0.05)

    def connect(self, database: str | None = None) -> MySQLdb.Connection:
        kwargs: dict[str, object] = {"database": database} if database else {}
        return MySQLdb.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            passwd="",
            autocommit=True,
            connect_timeout=2,
            **kwargs,
        )

    def execute(self, sql: str) -> None:
        conn = self.connect()
        try:
            conn.cursor().execute(sql)
        finally:
            conn.close()

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
