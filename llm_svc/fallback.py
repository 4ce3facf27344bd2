"""Deterministic insights built only from KPI values: same report, byte-identical insights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_CATEGORY_INSIGHTS = 3
MAX_TOTAL_INSIGHTS = 3


@dataclass(frozen=True)
class InsightDraft:
    """An insight before it is put on the wire."""

    title: str
    text: str
    evidence: list[str] = field(default_factory=list)
    severity: str = "info"


def format_number(value: float) -> str:
    """The documented rounding: integers as such, others with two decimals, `,` thousands."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def format_share(share: float) -> str:
    """A 0-1 share as a percentage with one decimal."""
    return f"{share * 100:.1f}%"


def _dataset_insights(dataset: dict[str, Any]) -> list[InsightDraft]:
    rows, columns = int(dataset.get("rows", 0)), int(dataset.get("columns", 0))
    drafts = [
        InsightDraft(
            "Dataset size",
            f"The dataset has {format_number(rows)} rows and {format_number(columns)} columns.",
            ["dataset.rows", "dataset.columns"],
        )
    ]
    missing = int(dataset.get("missingCells", 0))
    if missing:
        pct = float(dataset.get("missingCellsPct", 0.0))
        drafts.append(
            InsightDraft(
                "Missing data",
                f"{format_number(missing)} cells are empty ({format_number(pct)}% of all cells).",
                ["dataset.missingCells", "dataset.missingCellsPct"],
                "warning" if pct >= 5 else "info",
            )
        )
    else:
        drafts.append(InsightDraft("Missing data", "No cells are empty.", ["dataset.missingCells"]))
    duplicates = int(dataset.get("duplicateRows", 0))
    if duplicates:
        drafts.append(
            InsightDraft(
                "Duplicate rows",
                f"{format_number(duplicates)} rows are exact duplicates of another row.",
                ["dataset.duplicateRows"],
                "warning",
            )
        )
    return drafts


def _category_insights(columns: list[dict[str, Any]]) -> list[InsightDraft]:
    drafts: list[InsightDraft] = []
    for column in columns:
        top = column.get("topValues") or []
        if column.get("type") != "categorical" or not top:
            continue
        name, first = column["name"], top[0]
        drafts.append(
            InsightDraft(
                f"Most common {name}",
                f"In '{name}', the most common value is '{first['value']}' with "
                f"{format_number(int(first['count']))} rows ({format_share(float(first['share']))}"
                " of non-empty values).",
                [f"columns.{name}.topValues.0"],
            )
        )
        if len(drafts) == MAX_CATEGORY_INSIGHTS:
            break
    return drafts


def _total_insights(columns: list[dict[str, Any]]) -> list[InsightDraft]:
    measures = [
        c for c in columns if c.get("type") == "numeric" and (c.get("numeric") or {}).get("sum")
    ]
    measures.sort(key=lambda c: (-abs(float(c["numeric"]["sum"])), str(c["name"])))
    drafts = []
    for column in measures[:MAX_TOTAL_INSIGHTS]:
        name, stats = column["name"], column["numeric"]
        parts = [f"'{name}' totals {format_number(float(stats['sum']))}"]
        evidence = [f"columns.{name}.numeric.sum"]
        if stats.get("mean") is not None and stats.get("median") is not None:
            parts.append(
                f"with a mean of {format_number(float(stats['mean']))} and a median of "
                f"{format_number(float(stats['median']))}"
            )
            evidence += [f"columns.{name}.numeric.mean", f"columns.{name}.numeric.median"]
        drafts.append(InsightDraft(f"Total {name}", " ".join(parts) + ".", evidence))
    return drafts


def fallback_insights(report: dict[str, Any]) -> list[InsightDraft]:
    """Template insights from the KPI report; says less rather than invent."""
    columns = [c for c in report.get("columns", []) if isinstance(c, dict) and "name" in c]
    return [
        *_dataset_insights(report.get("dataset", {})),
        *_total_insights(columns),
        *_category_insights(columns),
    ]
