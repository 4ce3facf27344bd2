"""Readable tables for a job, its KPI summary and its insights (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if not value.is_integer() else f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def render_job(console: Console, job: dict[str, Any]) -> None:
    table = Table(title=f"Job {job['jobId']}", show_header=False)
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
            table.add_row(key, _fmt(job[key]))
    console.print(table)


def render_result(console: Console, result: dict[str, Any]) -> None:
    """Dataset facts, one row per column, then the insights with their source."""
    kpis = result.get("kpis", {})
    dataset = kpis.get("dataset", {})
    summary = Table(title="Dataset", show_header=False)
    for key in ("format", "rows", "columns", "missingCells", "missingCellsPct", "duplicateRows"):
        if key in dataset:
            summary.add_row(key, _fmt(dataset[key]))
    console.print(summary)
    columns = Table(title="Columns")
    for header in ("column", "type", "missing %", "distinct", "sum", "mean", "top value"):
        columns.add_column(header)
    for column in kpis.get("columns", []):
        numeric = column.get("numeric") or {}
        top = (column.get("topValues") or [{}])[0]
        columns.add_row(
            str(column.get("name", "")),
            str(column.get("type", "")),
            _fmt(column.get("missingPct")),
            _fmt(column.get("distinct")),
            _fmt(numeric.get("sum")),
            _fmt(numeric.get("mean")),
            f"{top.get('value', '')} ({_fmt(top.get('count'))})" if top else "",
        )
    console.print(columns)
    insights = Table(title=f"Insights ({result.get('insightsSource', '?')})")
    for header in ("", "insight", "source"):
        insights.add_column(header)
    for insight in result.get("insights", []):
        insights.add_row(
            str(insight.get("severity", "")),
            f"[bold]{insight.get('title', '')}[/bold]\n{insight.get('text', '')}",
            str(insight.get("source", "")),
        )
    console.print(insights)


def render_jobs(console: Console, page: dict[str, Any]) -> None:
    table = Table(title="Jobs (newest first)")
    for header in ("jobId", "status", "progress", "filename", "createdAt", "error"):
        table.add_column(header)
    for job in page.get("jobs", []):
        table.add_row(
            job["jobId"],
            job["status"],
            _fmt(job["progress"]),
            job.get("filename", ""),
            job.get("createdAt") or "",
            job.get("error") or "",
        )
    console.print(table)
    if page.get("nextCursor"):
        console.print(f"more: --cursor {page['nextCursor']}")
