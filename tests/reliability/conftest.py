"""Shows what the reliability tests measured at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.mariadb import MariaDBServer
from tests.reliability.summary import LINES


@pytest.fixture(scope="session")
def second_mariadb() -> Iterator[MariaDBServer]:
    """A second MariaDB server on another loopback port (its own data directory)."""
    server = MariaDBServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LINES:
        terminalreporter.section("fluxa reliability figures")
        for line in LINES:
            terminalreporter.write_line(line)
