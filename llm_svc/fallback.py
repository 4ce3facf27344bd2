"""Deterministic insights built only from KPI values: same report, byte-identical insights.

Every number written comes from one KPI value through `format_number` (integers as such,
others with two decimals, more decimals only for values below 0.01 so nothing non-zero
reads as zero) or `format_share` (a 0-1 share as a percentage with one decimal). Every
insight carries the evidence keys of the values it states. Anything of an unexpected
shape is skipped: the fallback says less rather than invent, and never raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MAX_CATEGORY_INSIGHTS = 3
MAX_TOTAL_INSIGHTS = 3
MAX_MISSING_INSIGHTS = 2
MAX_SERIES_INSIGHTS = 3
_MAX_NAME_LENGTH = 80
_SMALLEST = 1e-9
_DIRECTIONS = {"up", "down", "flat", "increasing", "decreasing", "stable", "rising", "falling"}


@dataclass(frozen=True)
class InsightDraft:
    """An insight before it is put on the wire."""

    title: str
    text: str
    evidence: list[str] = field(default_factory=list)
    severity: str = "info"


def _number(value: Any) -> float | None:
    """A finite float from a JSON number (booleans and strings are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    # Non-finite values, and values too small to print without reading as zero, are skipped.
    if not math.isfinite(number) or 0 < abs(number) < _SMALLEST:
        return None
    return number


def format_number(value: float) -> str:
    """The documented rounding: integers as such, others with two decimals, `,` thousands."""
    if float(value).is_integer():
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 0.01:
        return f"{value:,.2f}"
    decimals = min(12, 1 - math.floor(math.log10(magnitude)))
    return f"{value:,.{decimals}f}"


def format_share(share: float) -> str:
    """A 0-1 share as a percentage with one decimal (more for a non-zero share below 0.05%)."""
    percent = share * 100
    if 0 < abs(percent) < 0.05:
        return f"{format_number(percent)}%"
    return f"{percent:.1f}%"


def _name(value: Any) -> str | None:
    """A printable column / series name, or None when it is unusable."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text[:_MAX_NAME_LENGTH] if text else None


def _dataset_insights(dataset: dict[str, Any]) -> list[InsightDraft]:
    drafts: list[InsightDraft] = []
    rows, columns = _number(dataset.get("rows")), _number(dataset.get("columns"))
    if rows is not None and columns is not None:
        drafts.append(
            InsightDraft(
                "Dataset size",
                f"The dataset has {format_number(rows)} rows and {format_number(columns)} columns.",
                ["dataset.rows", "dataset.columns"],
            )
        )
    elif rows is not None:
        drafts.append(
            InsightDraft(
                "Dataset size", f"The dataset has {format_number(rows)} rows.", ["dataset.rows"]
            )
        )
    missing = _number(dataset.get("missingCells"))
    pct = _number(dataset.get("missingCellsPct"))
    if missing:
        if pct is not None:
            text = f"{format_number(missing)} cells are empty ({format_number(pct)}% of all cells)."
            evidence = ["dataset.missingCells", "dataset.missingCellsPct"]
        else:
            text = f"{format_number(missing)} cells are empty."
            evidence = ["dataset.missingCells"]
        severity = "warning" if pct is not None and pct >= 5 else "info"
        drafts.append(InsightDraft("Missing data", text, evidence, severity))
    elif missing == 0:
        drafts.append(InsightDraft("Missing data", "No cells are empty.", ["dataset.missingCells"]))
    duplicates = _number(dataset.get("duplicateRows"))
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


def _category_insights(columns: list[tuple[str, dict[str, Any]]]) -> list[InsightDraft]:
    drafts: list[InsightDraft] = []
    for name, column in columns:
        top = column.get("topValues")
        if column.get("type") != "categorical" or not isinstance(top, list) or not top:
            continue
        first = top[0]
        if not isinstance(first, dict):
            continue
        value = _name(first.get("value"))
        count, share = _number(first.get("count")), _number(first.get("share"))
        if value is None or value != first.get("value") or count is None:
            continue
        share_text = (
            f" ({format_share(share)} of non-empty values)"
            if share is not None and 0 <= share <= 1
            else ""
        )
        drafts.append(
            InsightDraft(
                f"Most common '{name}'",
                f"In '{name}', the most common value is '{value}' with "
                f"{format_number(count)} rows{share_text}.",
                [f"columns.{name}.topValues.0"],
            )
        )
        if len(drafts) == MAX_CATEGORY_INSIGHTS:
            break
    return drafts


def _total_insights(columns: list[tuple[str, dict[str, Any]]]) -> list[InsightDraft]:
    measures: list[tuple[float, str, dict[str, Any]]] = []
    for name, column in columns:
        stats = column.get("numeric")
        if column.get("type") != "numeric" or not isinstance(stats, dict):
            continue
        total = _number(stats.get("sum"))
        if total:
            measures.append((total, name, stats))
    measures.sort(key=lambda m: (-abs(m[0]), m[1]))
    drafts = []
    for total, name, stats in measures[:MAX_TOTAL_INSIGHTS]:
        parts = [f"'{name}' totals {format_number(total)}"]
        evidence = [f"columns.{name}.numeric.sum"]
        mean, median = _number(stats.get("mean")), _number(stats.get("median"))
        if mean is not None and median is not None:
            parts.append(
                f"with a mean of {format_number(mean)} and a median of {format_number(median)}"
            )
            evidence += [f"columns.{name}.numeric.mean", f"columns.{name}.numeric.median"]
        drafts.append(InsightDraft(f"Total '{name}'", " ".join(parts) + ".", evidence))
    return drafts


def _missing_column_insights(columns: list[tuple[str, dict[str, Any]]]) -> list[InsightDraft]:
    gaps: list[tuple[float, str, float]] = []
    for name, column in columns:
        missing, pct = _number(column.get("missing")), _number(column.get("missingPct"))
        if missing and pct is not None and pct > 0:
            gaps.append((pct, name, missing))
    gaps.sort(key=lambda g: (-g[0], g[1]))
    return [
        InsightDraft(
            f"Gaps in '{name}'",
            f"'{name}' is empty in {format_number(missing)} rows ({format_number(pct)}%).",
            [f"columns.{name}.missing", f"columns.{name}.missingPct"],
            "warning" if pct >= 20 else "info",
        )
        for pct, name, missing in gaps[:MAX_MISSING_INSIGHTS]
    ]


def _series_insights(series: Any) -> list[InsightDraft]:
    """Trend, last period change, its top driver and an unusual last value (schema 2.0)."""
    if not isinstance(series, list):
        return []
    drafts: list[InsightDraft] = []
    for item in series:
        if not isinstance(item, dict):
            continue
        key, measure = _name(item.get("key")), _name(item.get("measure"))
        if key is None or key != item.get("key") or measure is None:
            continue  # the row-count series and malformed items say too little
        draft = _series_draft(item, key, measure)
        if draft is not None:
            drafts.append(draft)
        if len(drafts) == MAX_SERIES_INSIGHTS:
            break
    return drafts


def _series_draft(item: dict[str, Any], key: str, measure: str) -> InsightDraft | None:
    grain = _name(item.get("granularity")) or "period"
    sentences: list[str] = []
    evidence: list[str] = []
    severity = "info"
    trend = item.get("trend") if isinstance(item.get("trend"), dict) else {}
    direction = trend.get("direction") if isinstance(trend, dict) else None
    window_pct = _number(trend.get("changeOverWindowPct")) if isinstance(trend, dict) else None
    if direction in ("up", "down") and window_pct is not None:
        sentences.append(
            f"'{measure}' per {grain} trends {direction} "
            f"({format_number(abs(window_pct))}% over the series)"
        )
        evidence += [f"{key}.trend.direction", f"{key}.trend.changeOverWindowPct"]
    last = item.get("lastChange") if isinstance(item.get("lastChange"), dict) else None
    if last is not None:
        value, previous = _number(last.get("value")), _number(last.get("previousValue"))
        period, pct = _name(last.get("period")), _number(last.get("changePct"))
        if value is not None and previous is not None and period is not None:
            text = (
                f"in the last complete {grain} ({period}) '{measure}' was "
                f"{format_number(value)}, against {format_number(previous)} the {grain} before"
            )
            evidence += [f"{key}.lastChange.value", f"{key}.lastChange.previousValue"]
            if pct is not None:
                text += f" ({'up' if pct >= 0 else 'down'} {format_number(abs(pct))}%)"
                evidence.append(f"{key}.lastChange.changePct")
                severity = "warning" if abs(pct) >= 20 else severity
            sentences.append(text)
            sentences += _driver_sentence(item.get("drivers"), key, evidence)
    unusual = item.get("unusualLast") if isinstance(item.get("unusualLast"), dict) else None
    if unusual is not None and unusual.get("isUnusual") is True:
        mean = _number(unusual.get("mean"))
        if mean is not None and unusual.get("direction") in ("high", "low"):
            sentences.append(
                f"that last value is unusually {unusual['direction']} next to the recent "
                f"mean of {format_number(mean)}"
            )
            evidence += [f"{key}.unusualLast.isUnusual", f"{key}.unusualLast.mean"]
            severity = "warning"
    if not sentences:
        return None
    text = "; ".join(sentences)
    return InsightDraft(
        f"'{measure}' over time", text[0].upper() + text[1:] + ".", evidence, severity
    )


def _driver_sentence(drivers: Any, key: str, evidence: list[str]) -> list[str]:
    """The largest contributor to the last change, over the first dimension that has one."""
    if not isinstance(drivers, dict):
        return []
    for dimension in sorted(drivers):
        entry = drivers[dimension]
        contributors = entry.get("contributors") if isinstance(entry, dict) else None
        if not isinstance(contributors, list) or not contributors:
            continue
        top = contributors[0]
        name, change = (
            (_name(top.get("value")), _number(top.get("change")))
            if isinstance(top, dict)
            else (None, None)
        )
        if name is None or change is None or _name(dimension) is None:
            continue
        evidence.append(f"{key}.drivers.{dimension}.contributors.0.change")
        sign = "+" if change >= 0 else "-"
        return [
            f"the largest contributor was {dimension} '{name}' ({sign}{format_number(abs(change))})"
        ]
    return []


def fallback_insights(report: Any) -> list[InsightDraft]:
    """Template insights from the KPI report; says less rather than invent."""
    if not isinstance(report, dict):
        report = {}
    dataset = report.get("dataset")
    raw_columns = report.get("columns")
    columns: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    if isinstance(raw_columns, list):
        for column in raw_columns:
            if not isinstance(column, dict):
                continue
            name = column.get("name")
            # A name is usable as an evidence key only if it is a clean, unique string.
            if isinstance(name, str) and name and name == _name(name) and name not in seen:
                seen.add(name)
                columns.append((name, column))
    return [
        *_dataset_insights(dataset if isinstance(dataset, dict) else {}),
        *_series_insights(report.get("timeSeries")),
        *_total_insights(columns),
        *_category_insights(columns),
        *_missing_column_insights(columns),
    ]
