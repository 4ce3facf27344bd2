"""Up to six Vega-Lite v5 chart specs (aggregated data inlined) for the report's key facts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from analysis_svc.engine.column_profile import profile_column
from analysis_svc.engine.readers.common import Table

VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
MAX_CHARTS = 6
MAX_CATEGORY_CHARTS = 2
HISTOGRAM_BINS = 20
SCATTER_SAMPLE = 300
_WIDTH = 480
_HEIGHT = 260

Spec = dict[str, Any]


def build_charts(
    table: Table,
    report: dict[str, Any],
    numbers: Mapping[str, np.ndarray | None] | None = None,
) -> list[Spec]:
    """Charts in a fixed order: main time series, its drivers, top categories, distribution,
    strongest correlation, missing data. Each has a ``title`` and ``usermeta.reportKey``.

    ``numbers``: each column's numbers as its profile holds them (``ColumnProfile.numbers``),
    when the report's profiles are at hand; a column not in it is profiled again."""
    known = numbers or {}
    charts: list[Spec] = []
    series = _main_series(report)
    if series is not None:
        charts.append(_time_series_chart(series))
        drivers = _drivers_chart(series)
        if drivers is not None:
            charts.append(drivers)
    for column in _category_columns(report)[:MAX_CATEGORY_CHARTS]:
        charts.append(_top_values_chart(column))
    measure = _main_measure(report)
    if measure is not None:
        histogram = _histogram_chart(table, measure, known)
        if histogram is not None:
            charts.append(histogram)
    correlations = report.get("correlations") or []
    if correlations:
        scatter = _scatter_chart(table, correlations[0], known)
        if scatter is not None:
            charts.append(scatter)
    missing = _missing_chart(report)
    if missing is not None:
        charts.append(missing)
    return charts[:MAX_CHARTS]


def _spec(chart_id: str, title: str, report_key: str, values: list[dict[str, Any]]) -> Spec:
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "title": title,
        "width": _WIDTH,
        "height": _HEIGHT,
        "data": {"values": values},
        "usermeta": {"id": chart_id, "reportKey": report_key},
    }


# --------------------------------------------------------------------------- time series


def _main_series(report: dict[str, Any]) -> dict[str, Any] | None:
    """The series of the main measure over the time axis (summed only when additive: the
    report's aggregation follows the role), else the first measure's, else row counts."""
    items = report.get("timeSeries") or []
    if not items:
        return None
    main = _main_measure(report)
    axis = items[0]["datetime"]
    on_axis = [item for item in items if item.get("datetime") == axis]
    for item in on_axis:
        if main is not None and item.get("measure") == main["name"]:
            return dict(item)
    measured = [item for item in on_axis if item.get("measure") is not None]
    return dict(measured[0] if measured else items[0])


def _time_series_chart(series: dict[str, Any]) -> Spec:
    measure = series["measure"] or "rows"
    title = (
        f"{measure} per {series['granularity']} ({series['aggregation']}) by {series['datetime']}"
    )
    values = [{"period": p["start"], "value": p["value"]} for p in series["points"]]
    spec = _spec("timeSeries", title, str(series["key"]), values)
    spec["mark"] = {"type": "line", "point": True}
    spec["encoding"] = {
        "x": {"field": "period", "type": "temporal", "title": series["datetime"]},
        "y": {"field": "value", "type": "quantitative", "title": measure},
        "tooltip": [
            {"field": "period", "type": "temporal"},
            {"field": "value", "type": "quantitative", "format": ",.2f"},
        ],
    }
    return spec


def _drivers_chart(series: dict[str, Any]) -> Spec | None:
    """Change per value of the first dimension between the last two complete periods."""
    change = series.get("lastChange")
    for dimension, drivers in (series.get("drivers") or {}).items():
        items = [*drivers["contributors"], *drivers["detractors"]]
        if not items or change is None:
            continue
        values = [{"value": item["value"], "change": item["change"]} for item in items]
        measure = series["measure"] or "rows"
        title = (
            f"Change in {measure} by {dimension}: {change['previousPeriod']} to {change['period']}"
        )
        spec = _spec("drivers", title, f"{series['key']}.drivers.{dimension}", values)
        spec["mark"] = {"type": "bar"}
        spec["encoding"] = {
            "y": {"field": "value", "type": "nominal", "sort": "-x", "title": dimension},
            "x": {"field": "change", "type": "quantitative", "title": f"change in {measure}"},
            "color": {"condition": {"test": "datum.change < 0", "value": "#d62728"}},
        }
        return spec
    return None


# --------------------------------------------------------------------------- categories


def _category_columns(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Categorical columns with a useful top list (2-50 distinct values) in column order."""
    return [
        column
        for column in report.get("columns", [])
        if column.get("type") == "categorical"
        and 2 <= int(column.get("distinct", 0)) <= 50
        and column.get("topValues")
    ]


def _top_values_chart(column: dict[str, Any]) -> Spec:
    name = str(column["name"])
    values = [{"value": item["value"], "count": item["count"]} for item in column["topValues"]]
    if column.get("otherCount"):
        values.append({"value": "(other)", "count": column["otherCount"]})
    spec = _spec(
        f"topValues.{name}", f"Most frequent values of {name}", f"columns.{name}.topValues", values
    )
    spec["mark"] = {"type": "bar"}
    spec["encoding"] = {
        "y": {"field": "value", "type": "nominal", "sort": None, "title": name},
        "x": {"field": "count", "type": "quantitative", "title": "rows"},
    }
    return spec


# --------------------------------------------------------------------------- distribution


def _main_measure(report: dict[str, Any]) -> dict[str, Any] | None:
    """The additive measure with the largest absolute sum (ties: column order), else the first
    measure (sums exist for additive measures only)."""
    best: dict[str, Any] | None = None
    best_sum = -1.0
    first: dict[str, Any] | None = None
    for column in report.get("columns", []):
        numeric = column.get("numeric") or {}
        if column.get("type") != "numeric" or not numeric:
            continue
        first = first or column
        if numeric.get("sum") is None:
            continue
        total = abs(float(numeric["sum"]))
        if total > best_sum:
            best, best_sum = column, total
    return best or first


def _numbers(table: Table, name: str, known: Mapping[str, np.ndarray | None]) -> np.ndarray | None:
    if name in known:
        return known[name]
    if name not in table.frame.columns:
        return None
    return profile_column(name, table.frame[name]).numbers


def _finite_or(value: object, default: float) -> float:
    """`value` as a finite float, else `default` (a null or non-finite statistic)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


def _histogram_chart(
    table: Table, column: dict[str, Any], known: Mapping[str, np.ndarray | None]
) -> Spec | None:
    """Counts in 20 equal bins between the Tukey fences (values beyond go to the edge bins)."""
    name = str(column["name"])
    numbers = _numbers(table, name, known)
    if numbers is None:
        return None
    values = numbers[np.isfinite(numbers)]
    if values.shape[0] == 0:
        return None
    stats = column["numeric"]
    fences = stats.get("outliers") or {}
    # Statistics are null when the column holds infinities: bound by the finite values then.
    smallest, largest = float(values.min()), float(values.max())
    low = max(smallest, _finite_or(fences.get("lowerFence"), smallest))
    high = min(largest, _finite_or(fences.get("upperFence"), largest))
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        high = low + 1.0
    counts, edges = np.histogram(np.clip(values, low, high), bins=HISTOGRAM_BINS, range=(low, high))
    rows = [
        {
            "start": round(float(edges[i]), 6),
            "end": round(float(edges[i + 1]), 6),
            "count": int(counts[i]),
        }
        for i in range(HISTOGRAM_BINS)
    ]
    spec = _spec(f"distribution.{name}", f"Distribution of {name}", f"columns.{name}.numeric", rows)
    spec["description"] = (
        "Values below the lower or above the upper Tukey fence are counted in the edge bins."
    )
    spec["mark"] = {"type": "bar"}
    spec["encoding"] = {
        "x": {"field": "start", "type": "quantitative", "bin": {"binned": True}, "title": name},
        "x2": {"field": "end"},
        "y": {"field": "count", "type": "quantitative", "title": "rows"},
    }
    return spec


def _scatter_chart(
    table: Table, item: dict[str, Any], known: Mapping[str, np.ndarray | None]
) -> Spec | None:
    """A deterministic, evenly spaced sample of at most 300 complete rows of the pair."""
    a, b = str(item["a"]), str(item["b"])
    x, y = _numbers(table, a, known), _numbers(table, b, known)
    if x is None or y is None:
        return None
    rows = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if rows.shape[0] == 0:
        return None
    picked = rows[np.unique(np.linspace(0, rows.shape[0] - 1, SCATTER_SAMPLE).astype(np.int64))]
    values = [{a: float(x[i]), b: float(y[i])} for i in picked]
    title = f"{a} and {b} (r = {item['r']:.2f}, sample of {len(values)} rows)"
    spec = _spec("correlation", title, str(item["key"]), values)
    spec["mark"] = {"type": "point", "opacity": 0.6}
    spec["encoding"] = {
        "x": {"field": a, "type": "quantitative"},
        "y": {"field": b, "type": "quantitative"},
    }
    return spec


def _missing_chart(report: dict[str, Any]) -> Spec | None:
    columns = [c for c in report.get("columns", []) if c.get("missing")]
    if not columns:
        return None
    values = [{"column": c["name"], "missingPct": c["missingPct"]} for c in columns]
    spec = _spec("missing", "Share of missing values per column", "dataset.missingCellsPct", values)
    spec["mark"] = {"type": "bar"}
    spec["encoding"] = {
        "y": {"field": "column", "type": "nominal", "sort": "-x", "title": "column"},
        "x": {"field": "missingPct", "type": "quantitative", "title": "% missing"},
    }
    return spec
