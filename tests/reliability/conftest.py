"""Shows what the reliability tests measured at the end of the run."""

from __future__ import annotations

import pytest

from tests.reliability.summary import LINES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LINES:
        terminalreporter.section("fluxa reliability figures")
        for line in LINES:
            terminalreporter.write_line(line)
