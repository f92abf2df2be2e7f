"""The project a docs page runs in, and its Python session.

Projects (the page marker's ``project=``):

- ``none``: no Django project; commands run in the repository, python blocks in a bare
  Python session (a settings block configures Django there);
- ``shop``: a copy of example_project on the page's own database, after what ``make demo``
  does (schema, the demo's requests, ``fluxa_reindex``; ``output-of=demo`` compares a block
  with what the demo client printed);
- ``shop-empty``: the same before ``make demo``: its database exists and is empty;
- ``new``: an empty folder; with ``app=NAME`` also a ``django-admin startproject mysite``
  project whose settings use MySQL and list ``NAME.entities`` (the page's blocks write the
  rest);
- ``getting-started``: a copy of the project docs/getting-started.md builds, with its
  databases (that page runs once per session; its project is copied).

The databases named by a page's ``databases=`` are created empty for any project.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.docs.databases import (
    clone_database,
    create_clickhouse_databases,
    create_database,
    docs_databases,
)
from tests.docs.isolation import Isolation
from tests.services import CLICKHOUSE_URI, KAFKA_BROKER, mysql_uri

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHON_BIN = Path(sys.executable)
TIMEOUT = 300.0


class Worker:
    """A running tests/docs/worker.py (see its docstring for the protocol)."""

    def __init__(
        self, cwd: Path, env: dict[str, str], settings: str | None, rules: Any, log: Path
    ) -> None:
        read, write = os.pipe()
        self.log_path = log
        self.log = self.log_path.open("wb")
        config = json.dumps({"settings": settings, "rules": rules})
        self.process = subprocess.Popen(
            [str(PYTHON_BIN), str(HERE / "worker.py"), str(write), config],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            pass_fds=[write],
        )
        os.close(write)
        self.answers: IO[str] = os.fdopen(read, "r", encoding="utf-8")
        assert self.process.stdin is not None
        self.requests: IO[bytes] = self.process.stdin
        ready = self._answer()
        if not ready["ok"]:
            self.close()
            raise RuntimeError(f"the Python session did not start:\n{ready['detail']}")

    def _answer(self) -> dict[str, Any]:
        ready, _, _ = select.select([self.answers], [], [], TIMEOUT)
        line = self.answers.readline() if ready else ""
        if not line:
            self.process.kill()
            self.process.wait()
            self.log.flush()
            output = self.log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the Python session died or hung; its output:\n{output}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.requests.write(json.dumps(payload).encode() + b"\n")
        self.requests.flush()
        return self._answer()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.requests.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.answers.close()
        self.log.close()


# -- projects ------------------------------------------------------------------------------


@dataclass
class Project:
    kind: str
    dir: Path  # the Django project (manage.py), where python blocks run
    cwd: Path  # where commands start and file paths are relative to
    isolation: Isolation
    workdir: Path  # the page's own folder: logs
    env: dict[str, str] = field(default_factory=dict)
    demo_output: str = ""
    shown_root: str = ""  # the folder the page shows for `dir` (root=...)
    worker: Worker | None = None
    sessions: int = 0
    closed: bool = False

    def environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "PYTEST_", "FLUXA_EXAMPLE_"))
        }
        env["PATH"] = f"{PYTHON_BIN.parent}{os.pathsep}{env.get('PATH', '')}"
        env["CURL_HOME"] = str(HERE)  # tests/docs/.curlrc: silent, as curl is on a terminal
        env.update(self.env)
        return env

    def settings_module(self) -> str | None:
        manage = self.dir / "manage.py"
        if not manage.exists():
            return None
        match = re.search(r"DJANGO_SETTINGS_MODULE[\"'],\s*[\"']([\w.]+)", manage.read_text())
        return match[1] if match else None

    def session(self) -> Worker:
        if self.worker is None:
            self.sessions += 1
            self.worker = Worker(
                self.dir,
                self.environment(),
                self.settings_module(),
                self.isolation.rules(),
                self.workdir / f"session-{self.sessions}.log",
            )
        return self.worker

    def restart(self) -> None:
        """Files changed: the next python block starts a new session (a new shell)."""
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def close(self) -> None:
        """Stop the session; on Redis database 0, also drop the page's search indexes and keys
        (database 0 is shared: the next run cannot simply empty it). Once."""
        if self.closed:
            return
        self.closed = True
        if self.isolation.search and self.settings_module():
            with contextlib.suppress(Exception):
                self.session().request({"op": "cleanup"})
        self.restart()


def _copytree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.log"))


def shop_project(
    workdir: Path, isolation: Isolation, options: dict[str, str], demo: bool = True
) -> Project:
    folder = workdir / "example_project"
    _copytree(REPO / "example_project", folder)
    if isolation.search:  # Redis database 0: namespace the keys by app_name instead
        settings = folder / "example_project" / "settings.py"
        settings.write_text(isolation.text(settings.read_text()))
    database = isolation.db("fluxa_shop")
    redis = isolation.text("127.0.0.1:6380:0")
    project = Project(
        "shop",
        folder,
        (folder / options["cwd"]).resolve() if "cwd" in options else folder,
        isolation,
        workdir,
        env={
            "FLUXA_EXAMPLE_MYSQL": mysql_uri(database),
            "FLUXA_EXAMPLE_REDIS": redis,
            "FLUXA_EXAMPLE_KAFKA": KAFKA_BROKER,
            "FLUXA_EXAMPLE_CLICKHOUSE": isolation.text(CLICKHOUSE_URI),
        },
    )
    create_database(database)
    create_clickhouse_databases(isolation)
    if not demo:
        return project
    run = subprocess.run(
        [str(PYTHON_BIN), str(HERE / "shop_demo.py")],
        cwd=folder,
        env=project.environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"the example shop's demo failed:\n{run.stdout}\n{run.stderr}")
    project.demo_output = run.stdout
    return project


_APP_SETTINGS = """

# Added for the docs runner (project=new app={app}): fluxa_django on MySQL.
INSTALLED_APPS += ["fluxa_django"]
DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.mysql",
        "NAME": "{app}",
        "USER": "root",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": "3306",
    }}
}}
FLUXA = {{
    "POOLS": {{"default": {{"mysql": {{"database": "default"}}, "local_cache": 100_000}}}},
    "ENTITIES": ["{app}.entities"],
    "GENERATED_PACKAGE": "{app}.fluxa",
}}
MIDDLEWARE += ["fluxa_django.middleware.FluxaContextMiddleware"]
"""


def new_project(workdir: Path, isolation: Isolation, options: dict[str, str]) -> Project:
    folder = workdir / Path(options.get("root", "project")).name
    folder.mkdir(parents=True)
    project = Project("new", folder, folder, isolation, workdir)
    app = options.get("app")
    if app:
        create_database(isolation.db(app))
        subprocess.run(
            [str(PYTHON_BIN.parent / "django-admin"), "startproject", "mysite", "."],
            cwd=folder,
            env=project.environment(),
            check=True,
            capture_output=True,
        )
        settings = folder / "mysite" / "settings.py"
        text = settings.read_text() + _APP_SETTINGS.format(app=app)
        settings.write_text(isolation.text(text))
        (folder / app).mkdir()
        (folder / app / "__init__.py").write_text("")
    return project


def copy_project(source: Project, workdir: Path, isolation: Isolation) -> Project:
    """A copy of a finished project (files and databases) under another prefix."""
    old = source.isolation.prefix
    folder = workdir / source.dir.name
    _copytree(source.dir, folder)
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".ini", ".cfg", ".toml", ".txt"}:
            text = path.read_text()
            if old in text:
                path.write_text(text.replace(old, isolation.prefix))
    for name in docs_databases(old):
        if name.startswith(old):
            clone_database(name, isolation.prefix + name.removeprefix(old))
    cwd = folder / source.cwd.relative_to(source.dir)
    copy = Project(source.kind, folder, cwd, isolation, workdir, dict(source.env))
    copy.shown_root = source.shown_root
    return copy
