"""Chaos suite fixtures: the summary lines of every scenario repeated at the end of the run."""

from __future__ import annotations

import pytest

from tests.chaos.harness import REPORTED, SCALE


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTED:
        terminalreporter.section(f"chaos summary ({SCALE.name})")
        for line in REPORTED:
            terminalreporter.write_line(line)
