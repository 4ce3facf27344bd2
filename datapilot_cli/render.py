"""Readable tables for a job, its KPI summary and its insights (rich).

Everything that comes from data (file and column names, values, insight text, server messages)
reaches rich as plain Text, never as markup, with control characters shown visibly: a column
named `[/x]` or `[link=...]` prints as written, and an ESC/CSI/OSC sequence cannot drive the
terminal.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Bidirectional overrides and isolates reorder what the terminal shows (Trojan Source).
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def visible(value: object, *, newlines: bool = False) -> str:
    """`value` as text with every C0/C1 control (ESC included), DEL and bidi control escaped.

    `newlines` keeps line breaks (insight text has paragraphs); names stay on one line.
    """
    text = str(value)
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char == "\n" and newlines:
            out.append(char)
        elif char in _BIDI_CONTROLS or unicodedata.category(char) == "Cc":
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def data_text(value: object, *, style: str = "", newlines: bool = False) -> Text:
    """A rich Text of data: never parsed as markup, controls made visible."""
    return Text(visible(value, newlines=newlines), style=style)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if not value.is_integer() else f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _cell(value: Any) -> Text:
    return data_text(_fmt(value))


def render_job(console: Console, job: dict[str, Any]) -> None:
    table = Table(title=data_text(f"Job {job['jobId']}"), show_header=False)
    for key in (
        "status",
        "progress",
        "filename",
        "createdAt",
        "finishedAt",
        "error",
        "errorMessage",
    ):
        if job.get(key) not in (None, ""):
            table.add_row(key, _cell(job[key]))
    console.print(table)


def render_result(console: Console, result: dict[str, Any]) -> None:
    """Dataset facts, one row per column, then the insights with their source."""
    kpis = result.get("kpis", {})
    dataset = kpis.get("dataset", {})
    summary = Table(title="Dataset", show_header=False)
    for key in ("format", "rows", "columns", "missingCells", "missingCellsPct", "duplicateRows"):
        if key in dataset:
            summary.add_row(key, _cell(dataset[key]))
    console.print(summary)
    columns = Table(title="Columns")
    for header in ("column", "type", "missing %", "distinct", "sum", "mean", "top value"):
        columns.add_column(header)
    for column in kpis.get("columns", []):
        numeric = column.get("numeric") or {}
        top = (column.get("topValues") or [{}])[0]
        columns.add_row(
            _cell(column.get("name", "")),
            _cell(column.get("type", "")),
            _cell(column.get("missingPct")),
            _cell(column.get("distinct")),
            _cell(numeric.get("sum")),
            _cell(numeric.get("mean")),
            _cell(f"{top.get('value', '')} ({_fmt(top.get('count'))})" if top else ""),
        )
    console.print(columns)
    if not result.get("insights"):
        # An empty table reads as a failure: say that nothing passed the checks instead.
        console.print("Insights: none; no finding in this file passed the checks.")
        return
    insights = Table(title=data_text(f"Insights ({result.get('insightsSource', '?')})"))
    for header in ("", "insight", "source"):
        insights.add_column(header)
    for insight in result.get("insights", []):
        insights.add_row(
            _cell(insight.get("severity", "")),
            Text.assemble(
                data_text(insight.get("title", ""), style="bold"),
                "\n",
                data_text(insight.get("text", ""), newlines=True),
            ),
            _cell(insight.get("source", "")),
        )
    console.print(insights)


def render_jobs(console: Console, page: dict[str, Any]) -> None:
    table = Table(title="Jobs (newest first)")
    for header in ("jobId", "status", "progress", "filename", "createdAt", "error"):
        table.add_column(header)
    for job in page.get("jobs", []):
        table.add_row(
            _cell(job["jobId"]),
            _cell(job["status"]),
            _cell(job["progress"]),
            _cell(job.get("filename", "")),
            _cell(job.get("createdAt") or ""),
            _cell(job.get("error") or ""),
        )
    console.print(table)
    if page.get("nextCursor"):
        console.print(data_text(f"more: --cursor {page['nextCursor']}"))
