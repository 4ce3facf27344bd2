"""The CLI's tables show data as written: no rich markup, no terminal control sequences."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from datapilot_cli.render import render_job, render_jobs, render_result, visible

HOSTILE = [
    "[/x]",
    "[link=https://evil.example]click[/link]",
    "[bold red]loud",
    "\x1b[2J\x1b[31mcleared",
    "\x1b]8;;https://evil.example\x1b\\osc link",
    "c1 csi \x9b31m",
    "bidi \u202eevil",
    "nul\x00del\x7f",
]


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    # A terminal that takes colours: any ESC in the output would have come from the data.
    return Console(file=out, width=400, color_system=None, force_terminal=False), out


def _result(text: str) -> dict[str, Any]:
    return {
        "kpis": {
            "dataset": {"format": text, "rows": 2, "columns": 1},
            "columns": [
                {
                    "name": text,
                    "type": "string",
                    "missingPct": 0.0,
                    "distinct": 2,
                    "topValues": [{"value": text, "count": 1}],
                }
            ],
        },
        "insightsSource": text,
        "insights": [{"severity": text, "title": text, "text": text, "source": text}],
    }


@pytest.mark.parametrize("text", HOSTILE)
def test_result_tables_print_data_literally(text: str) -> None:
    console, out = _console()
    render_result(console, _result(text))
    printed = out.getvalue()
    assert visible(text) in printed
    for char in "\x1b\x9b\x00\x7f\u202e":
        assert char not in printed


@pytest.mark.parametrize("text", HOSTILE)
def test_job_and_job_list_print_data_literally(text: str) -> None:
    console, out = _console()
    job = {"jobId": text, "status": text, "progress": 5, "filename": text, "errorMessage": text}
    render_job(console, job)
    render_jobs(console, {"jobs": [job], "nextCursor": text})
    printed = out.getvalue()
    assert visible(text) in printed and "\x1b" not in printed


def test_visible_escapes_every_control_but_keeps_text() -> None:
    assert visible("plain [x] text") == "plain [x] text"
    assert visible("a\x1bb\x9bc\u202ed") == "a\\x1bb\\x9bc\\u202ed"
    assert visible("line\nbreak") == "line\\x0abreak"
    assert visible("line\nbreak", newlines=True) == "line\nbreak"


def test_a_result_without_insights_says_so_rather_than_printing_an_empty_table() -> None:
    console, out = _console()
    render_result(console, {**_result("plain"), "insights": []})
    printed = out.getvalue()
    assert "Insights: none; no finding in this file passed the checks." in printed
    assert "Insights (" not in printed
