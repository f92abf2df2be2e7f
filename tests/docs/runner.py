"""Runs a docs page: builds its project (tests/docs/projects.py), then its blocks in order.

Blocks: ``pycon`` runs as a doctest; ``python`` whose first line is ``# some/path.py``
writes that file (a file that exists gets the block's top-level definitions replaced or
added); ``python`` made only of UPPERCASE assignments is a settings fragment (exec'd, its
``FLUXA`` built into a registry; with the ``settings`` marker it also becomes the Django
settings of the following blocks); other ``python`` runs in the session and must not print;
``console`` runs its ``$ `` commands (tests/docs/console.py). ``excerpt-of=PATH`` compares a
block with a file of the repository instead (``...`` elides); ``skip reason="..."`` skips it.
A block marked ``project=KIND`` runs in a project of that kind of its own, while the rest of
the page runs in the page's project.
"""

from __future__ import annotations

import doctest
import subprocess
import threading
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.docs import console
from tests.docs.databases import create_clickhouse_databases, create_database, drop_databases
from tests.docs.files import file_header, is_settings_fragment, write_file
from tests.docs.isolation import Isolation, page_prefix
from tests.docs.pages import CONSOLE, PYTHON, SESSION, Block, Page, read_page
from tests.docs.projects import (
    PYTHON_BIN,
    REPO,
    TIMEOUT,
    Project,
    copy_project,
    new_project,
    shop_project,
)
from tests.services import MYSQL_HOST, MYSQL_PORT, REDIS_TEST_DB


@dataclass
class Result:
    block: Block
    status: str  # "passed", "failed" or "skipped"
    detail: str = ""


# -- running a page ------------------------------------------------------------------------


class PageRun:
    def __init__(self, page: Page, workdir: Path, session: DocsSession) -> None:
        self.page = page
        self.workdir = workdir
        self.session = session
        self.projects: dict[str, Project] = {}

    def isolation(self, number: int, kind: str) -> Isolation:
        options = self.page.options if number == 0 else {}
        # the example shop's database name stands alone in commands (`mariadb fluxa_shop`)
        shop = kind in ("shop", "shop-empty")
        databases = ("fluxa_shop",) if shop else ()
        # The example shop has searchable fields, and RediSearch indexes database 0 only.
        search = options.get("redis-db") == "0" or shop
        return Isolation(
            page_prefix(self.page.name, number),
            redis_db=0 if search else REDIS_TEST_DB,
            databases=databases,
            rewrite=options.get("rewrite", "yes") != "no",
            search=search,
        )

    def project(self, kind: str) -> Project:
        if kind in self.projects:
            return self.projects[kind]
        number = len(self.projects)
        isolation = self.isolation(number, kind)
        workdir = self.workdir / f"project-{number}"
        workdir.mkdir(parents=True)
        drop_databases(isolation.prefix)
        options = self.page.options if number == 0 else {}
        for name in (n for n in options.get("databases", "").split(",") if n):
            create_database(isolation.db(name))
        if kind == "none":
            project = Project("none", REPO, REPO, isolation, workdir)
        elif kind == "shop":
            project = shop_project(workdir, isolation, options)
        elif kind == "shop-empty":
            project = shop_project(workdir, isolation, options, demo=False)
        elif kind == "new":
            project = new_project(workdir, isolation, options)
        elif kind == "getting-started":
            project = copy_project(
                self.session.project_of("getting-started.md"), workdir, isolation
            )
        else:
            raise ValueError(f"unknown project {kind!r}")
        root = options.get("root") or project.shown_root
        if root and kind != "none":
            project.shown_root = root
            isolation.paths[str(project.dir)] = root
        self.projects[kind] = project
        return project

    def run(self) -> list[Result]:
        results: list[Result] = []
        try:
            main = self.project(self.page.project)
        except Exception:
            detail = "the page's project could not be built:\n" + traceback.format_exc()
            return [Result(b, "failed", detail) for b in self.page.blocks if b.runnable]
        for block in self.page.blocks:
            if "skip" in block.options:
                results.append(Result(block, "skipped", block.options.get("reason", "")))
                continue
            if not (block.runnable or "excerpt-of" in block.options or file_header(block)):
                continue
            try:
                kind = block.options.get("project", self.page.project)
                project = main if kind == self.page.project else self.project(kind)
                results.append(self.run_block(project, block))
            except Exception:
                results.append(Result(block, "failed", traceback.format_exc()))
        return results

    def close(self) -> None:
        for project in self.projects.values():
            project.close()

    def run_block(self, project: Project, block: Block) -> Result:
        options = block.options
        project.isolation.text(block.text)  # the ClickHouse databases it names must exist
        create_clickhouse_databases(project.isolation)
        if "excerpt-of" in options:
            return self.excerpt(block, REPO / options["excerpt-of"])
        if "output-of" in options:
            if options["output-of"] != "demo" or project.kind != "shop":
                return Result(block, "failed", "output-of=demo needs a project=shop page")
            return self.compare_output(block, block.text, project.demo_output, project)
        if "pytest" in options:
            return self.pytest_module(project, block)
        if block.lang in CONSOLE:
            return self.console(project, block)
        if block.lang in SESSION:
            return self.pycon(project, block)
        path = file_header(block)
        if path is not None:
            if project.kind == "none":
                return Result(block, "failed", "a file block needs a project (not project=none)")
            write_file(project, path, block.text)
            return Result(block, "passed")
        assert block.lang in PYTHON
        source = project.isolation.text(block.text)
        name = block.where
        if is_settings_fragment(source):
            payload = {
                "op": "settings",
                "source": source,
                "name": name,
                "apply": "settings" in options,
            }
        else:
            payload = {"op": "exec", "source": source, "name": name}
        return self.answer(block, project.session().request(payload))

    def answer(self, block: Block, answer: dict[str, Any]) -> Result:
        if answer["ok"]:
            return Result(block, "passed")
        return Result(block, "failed", answer["detail"])

    def pycon(self, project: Project, block: Block) -> Result:
        examples = doctest.DocTestParser().get_examples(block.text, block.where)
        if not examples:
            return Result(block, "failed", "a pycon block without any `>>> ` line")
        payload = {
            "op": "doctest",
            "name": block.where,
            "lineno": block.lineno,
            "examples": [
                {
                    "source": project.isolation.text(e.source),
                    "want": e.want,
                    "exc_msg": e.exc_msg,
                    "lineno": e.lineno,
                    "indent": e.indent,
                    "options": e.options,
                }
                for e in examples
            ],
        }
        return self.answer(block, project.session().request(payload))

    def console(self, project: Project, block: Block) -> Result:
        commands = console.parse(block.text, block.lineno + 1)
        for command in commands:
            command.text = project.isolation.text(command.text)
        outputs = console.run(commands, project.cwd, project.environment(), self.workdir, TIMEOUT)
        problems: list[str] = []
        for command, (output, status) in zip(commands, outputs, strict=False):
            got = project.isolation.normalize(output).strip("\n") + "\n"
            if command.expected is None:
                if status != 0:
                    problems.append(
                        f"line {command.lineno}: `{command.text}` exited with status {status} "
                        f"(the page shows no output for it):\n{got}"
                    )
            elif not console.matches(command.expected, got):
                problems.append(
                    f"line {command.lineno}: `{command.text.splitlines()[0]}`\n"
                    + console.difference(command.expected, got)
                )
        if len(outputs) < len(commands):
            problems.append(f"the block stopped after {len(outputs)} command(s)")
        return Result(block, "failed" if problems else "passed", "\n".join(problems))

    def pytest_module(self, project: Project, block: Block) -> Result:
        """A test module: pytest runs it in the project, on test settings with a database of
        their own (pytest-django needs ``DATABASES["default"]``), and it must pass."""
        settings = project.settings_module()
        if settings is None:
            return Result(block, "failed", "a pytest block needs a Django project")
        number = block.lineno
        (project.dir / f"docs_pytest_settings_{number}.py").write_text(
            f"from {settings} import *  # noqa: F403\n\n"
            "if not DATABASES.get('default'):  # noqa: F405\n"
            "    DATABASES = {'default': {'ENGINE': 'django.db.backends.mysql', "
            f"'NAME': {project.isolation.db(f'pytest_{number}')!r}, 'USER': 'root', "
            f"'HOST': {MYSQL_HOST!r}, 'PORT': {str(MYSQL_PORT)!r}}}}}\n"
        )
        ds = f"docs_pytest_settings_{number}"
        test = project.dir / f"test_docs_{number}.py"
        test.write_text(project.isolation.text(block.text))
        run = subprocess.run(
            [
                str(PYTHON_BIN),
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--ds={ds}",
                test.name,
            ],
            cwd=project.dir,
            env=project.environment(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if run.returncode == 0:
            return Result(block, "passed")
        return Result(block, "failed", project.isolation.normalize(run.stdout + run.stderr))

    def compare_output(self, block: Block, expected: str, got: str, project: Project) -> Result:
        got = project.isolation.normalize(got)
        if console.matches(expected, got):
            return Result(block, "passed")
        return Result(block, "failed", console.difference(expected, got))

    def excerpt(self, block: Block, path: Path) -> Result:
        """The block appears in the file, ``...`` standing for what it leaves out."""
        if not path.exists():
            return Result(block, "failed", f"excerpt-of: {path} does not exist")
        text = path.read_text()
        if console.matches("...\n" + block.text + "...\n", text):
            return Result(block, "passed")
        lines = [line.strip() for line in text.splitlines()]
        position = 0
        missing = f"docs/{block.page}:{block.lineno}: the lines are there, but not as a whole"
        for number, line in enumerate(block.text.splitlines(), block.lineno + 1):
            wanted = line.strip()
            if not wanted or "..." in wanted:
                continue
            if wanted not in lines[position:]:
                missing = f"line {number} is not there (in this order): {wanted}"
                break
            position = lines.index(wanted, position) + 1
        return Result(block, "failed", f"not an excerpt of {path.relative_to(REPO)}: {missing}")


# -- the session ---------------------------------------------------------------------------


class DocsSession:
    """Every page of one pytest session: each runs once, in its own folder and databases."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.lock = threading.Lock()
        self.futures: dict[str, Future[tuple[list[Result], PageRun]]] = {}

    def _run(self, name: str) -> tuple[list[Result], PageRun]:
        with self.lock:
            future = self.futures.get(name)
            owner = future is None
            if future is None:
                future = self.futures[name] = Future()
        if owner:
            page = read_page(REPO / "docs" / name)
            run = PageRun(page, self.workdir / name.removesuffix(".md"), self)
            try:
                results = run.run()
            except BaseException as exc:
                future.set_exception(exc)
                raise
            finally:
                if name != "getting-started.md":  # copied by other pages: kept open
                    run.close()
            future.set_result((results, run))
        return future.result()

    def results(self, name: str) -> list[Result]:
        return self._run(name)[0]

    def project_of(self, name: str) -> Project:
        """The finished project of a page (stopped: other pages copy its files)."""
        run = self._run(name)[1]
        with self.lock:
            project = run.project(run.page.project)
            project.restart()
        return project

    def close(self) -> None:
        """Stop what the pages kept running (the project of Getting started)."""
        for future in self.futures.values():
            if future.done() and future.exception() is None:
                future.result()[1].close()
