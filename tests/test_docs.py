"""Every runnable example of docs/*.md runs against the real services (tests/docs/).

Each page names its project in a ``<!-- docs-test: project=... -->`` marker; each
python, pycon and console block is run (its shown output compared) or carries
``<!-- docs-test: skip reason="..." -->``. A page or block that is neither fails here, so
new docs cannot escape. docs/testing.md ("How these docs are tested") describes the markers.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from tests.docs.databases import drop_databases, reset_services
from tests.docs.pages import all_pages
from tests.docs.runner import DocsSession

PAGES = all_pages()
# Pages whose project others copy go first; two pages run at a time (each in its own
# folder and databases).
FIRST = ["getting-started.md"]
PARALLEL = 2


def _order(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: (n not in FIRST, n))


@pytest.fixture(scope="module")
def docs(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[DocsSession]:
    reset_services()  # databases an interrupted run left behind; the Redis database emptied
    session = DocsSession(tmp_path_factory.mktemp("docs"))
    here = __name__.replace(".", "/") + ".py::test_page["
    selected = [
        item.nodeid.split("[", 1)[1].rstrip("]")
        for item in request.session.items
        if item.nodeid.startswith(here)
    ]
    queue = _order(selected)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not queue:
                    return
                name = queue.pop(0)
            with contextlib.suppress(BaseException):  # reported by the page's test
                session.results(name)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    yield session
    with lock:
        queue.clear()
    for thread in threads:
        thread.join()
    session.close()
    drop_databases()


def test_every_page_says_how_its_examples_run() -> None:
    problems = [problem for page in PAGES for problem in page.problems]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", [p.name for p in PAGES])
def test_page(docs: DocsSession, page: str) -> None:
    results = docs.results(page)
    answered = {r.block.lineno for r in results}
    blocks = next(p for p in PAGES if p.name == page).blocks
    missing = [b.where for b in blocks if b.runnable and b.lineno not in answered]
    assert not missing, f"blocks neither run nor skipped: {missing}"
    failures = [r for r in results if r.status == "failed"]
    report = "\n\n".join(f"{r.block.where} ({r.block.lang}):\n{r.detail}" for r in failures)
    assert not failures, f"{len(failures)} example(s) of docs/{page} failed:\n\n{report}"
