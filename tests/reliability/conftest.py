"""Shows what the reliability tests measured at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fluxa_django import Context, Engine
from tests.cache_helpers import build_engine, bus_of
from tests.reliability.mariadb import MariaDBServer
from tests.reliability.summary import LINES
from tests.services import REDIS_ADDRESS, REDIS_TEST_DB


@pytest.fixture(scope="session")
def _mariadb_server() -> Iterator[MariaDBServer]:
    server = MariaDBServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def second_mariadb(_mariadb_server: MariaDBServer) -> Iterator[MariaDBServer]:
    """A second MariaDB server on another loopback port (its own data directory, one per
    session). A test may stop or kill it: it is running again for the next test."""
    yield _mariadb_server
    if _mariadb_server.process is not None:
        _mariadb_server.resume()
    else:
        _mariadb_server.start()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LINES:
        terminalreporter.section("fluxa reliability figures")
        for line in LINES:
            terminalreporter.write_line(line)


@pytest.fixture
def reader(fluxa_ctx: Context) -> Iterator[Engine]:
    """Another process's engine (its own local tier and listener) on the test database:
    its local tier must learn of the session engine's writes."""
    engine = build_engine(fluxa_ctx.engine.mysql().database, REDIS_ADDRESS, REDIS_TEST_DB)
    try:
        assert bus_of(engine).ensure_started(wait=5.0), "the listener did not start"
        yield engine
    finally:
        engine.close()
