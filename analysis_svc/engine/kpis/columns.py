"""Per-column KPIs: numeric distribution, top values and concentration, datetime span."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis_svc.engine.column_profile import ColumnProfile, display_string
from datapilot_runtime.report.insights import MEASURE_ROLES, Role

TOP_VALUES_LIMIT = 10
CONCENTRATION_SHARE = 0.8
_NS_PER_DAY = 86_400 * 10**9
# (name, largest typical gap in days); the first whose bound holds is the granularity.
_GRANULARITIES = (
    ("second", 1.5 / 86_400),
    ("minute", 1.5 / 1_440),
    ("hour", 1.5 / 24),
    ("day", 1.5),
    ("week", 8.0),
    ("month", 32.0),
    ("quarter", 93.0),
    ("year", 367.0),
)


def column_report(profile: ColumnProfile, rows: int, role: Role) -> dict[str, Any]:
    """The report entry of one column (base facts first, then the facts of its type and role).

    Statistics follow the role: only measures get ``numeric`` (with a ``sum`` for additive
    measures alone); numbers that are calendar parts, clock times or category codes get the
    distribution of a dimension and their range; identifiers get nothing beyond the base facts.
    """
    report: dict[str, Any] = {
        "name": profile.name,
        "type": profile.kind,
        "role": str(role),
        "missing": profile.missing,
        "missingPct": percent(profile.missing, rows),
        "distinct": profile.distinct,
        "distinctPct": percent(profile.distinct, profile.present),
    }
    numbers = profile.kind == "numeric" and profile.numbers is not None
    if numbers and role in MEASURE_ROLES:
        assert profile.numbers is not None
        report["numeric"] = numeric_stats(profile.numbers, profile.sorted_numbers)
        if role is not Role.ADDITIVE:
            report["numeric"]["sum"] = None
    elif numbers and role in (Role.CALENDAR, Role.CLOCK, Role.DIMENSION, Role.TIME):
        report.update(category_stats(profile))
        ordered = profile.sorted_numbers
        if ordered is not None and ordered.shape[0]:
            report["range"] = {"min": finite(ordered[0]), "max": finite(ordered[-1])}
    elif numbers and role is Role.COORDINATE:
        ordered = profile.sorted_numbers
        if ordered is not None and ordered.shape[0]:
            report["range"] = {"min": finite(ordered[0]), "max": finite(ordered[-1])}
    elif profile.kind in ("categorical", "boolean"):
        report.update(category_stats(profile))
    elif profile.kind == "datetime":
        report["datetime"] = datetime_stats(profile.uniques.to_numpy(dtype="datetime64[ns]"))
        report["datetime"]["unparsed"] = profile.unparsed_dates
    elif profile.kind == "text" and profile.mean_length is not None:
        report["text"] = {"meanLength": round(profile.mean_length, 2)}
    if profile.numbers_as_text:
        report["numbersAsText"] = {
            "converted": profile.numbers_as_text,
            "unparsed": profile.unparsed_numbers,
        }
    if profile.mixed_date_formats:
        report["mixedDateFormats"] = True
    return report


def percent(part: float, whole: float) -> float:
    """A percentage with two decimals (0.0 when the whole is zero)."""
    return 0.0 if whole == 0 else round(100.0 * part / whole, 2)


def finite(value: Any) -> float | None:
    """A plain float, or None for NaN and infinities."""
    number = float(value)
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------- numeric


def numeric_stats(numbers: np.ndarray, ordered: np.ndarray | None = None) -> dict[str, Any]:
    """sum, mean, median, min, max, std (the 1.0 keys), then percentiles, shares, outliers.

    ``ordered`` are the non-missing numbers already sorted, when known.
    """
    values = np.sort(numbers[~np.isnan(numbers)]) if ordered is None else ordered
    count = int(values.shape[0])
    if count == 0:
        return {key: None for key in ("sum", "mean", "median", "min", "max", "std")}
    with np.errstate(all="ignore"):  # inf values give NaN/inf, reported as None
        total = float(values.sum())
        mean = float(values.mean())
        std = float(values.std(ddof=1)) if count >= 2 else math.nan
        p5, q1, median, q3, p95 = (float(v) for v in _quantiles(values, (5, 25, 50, 75, 95)))
        iqr = q3 - q1
        low, high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
        outliers = (
            int(np.searchsorted(values, low, "left"))
            + count
            - int(np.searchsorted(values, high, "right"))
        )
        skew = _skew(values, mean, std)
    zeros = int(np.searchsorted(values, 0.0, "right") - np.searchsorted(values, 0.0, "left"))
    negatives = int(np.searchsorted(values, 0.0, "left"))
    return {
        "sum": finite(total),
        "mean": finite(mean),
        "median": finite(median),
        "min": finite(values[0]),
        "max": finite(values[-1]),
        "std": finite(std),
        "count": count,
        "p5": finite(p5),
        "p25": finite(q1),
        "p75": finite(q3),
        "p95": finite(p95),
        "zerosPct": percent(zeros, count),
        "negativesPct": percent(negatives, count),
        "skew": _rounded(skew, 4),
        "outliers": {
            "count": outliers if math.isfinite(iqr) else 0,
            "pct": percent(outliers, count) if math.isfinite(iqr) else 0.0,
            "lowerFence": finite(low),
            "upperFence": finite(high),
        },
    }


def _quantiles(sorted_values: np.ndarray, percents: tuple[int, ...]) -> list[float]:
    """Linear-interpolated percentiles of sorted values (numpy's default method)."""
    last = sorted_values.shape[0] - 1
    result = []
    for pct in percents:
        position = last * pct / 100.0
        below = math.floor(position)
        above = min(below + 1, last)
        lower, upper = float(sorted_values[below]), float(sorted_values[above])
        fraction = position - below
        result.append(
            lower if fraction == 0 or lower == upper else lower + (upper - lower) * fraction
        )
    return result


def _skew(values: np.ndarray, mean: float, std: float) -> float:
    """Sample skewness (adjusted Fisher-Pearson, as pandas' Series.skew)."""
    count = values.shape[0]
    if count < 3 or not math.isfinite(std) or std == 0:
        return math.nan
    centred = values - mean
    squared = centred * centred
    m2 = float(squared.sum()) / count
    m3 = float((squared * centred).sum()) / count
    scale = m2**1.5
    if scale == 0:  # also when m2 is so small (subnormal values) that m2^1.5 underflows
        return math.nan
    g1 = m3 / scale
    return float(g1 * math.sqrt(count * (count - 1)) / (count - 2))


def _rounded(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


# --------------------------------------------------------------------------- categories


def labels_of(profile: ColumnProfile, index: np.ndarray | None = None) -> np.ndarray:
    """Display strings of the distinct values (all, or those at ``index``), vectorised."""
    uniques = profile.uniques if index is None else profile.uniques.take(index)
    if uniques.dtype.kind == "f":
        values = uniques.to_numpy(dtype="float64")
        if bool(np.all(np.trunc(values) == values)) and bool(np.all(np.abs(values) < 2.0**53)):
            as_text: np.ndarray = values.astype("int64").astype(str).astype(object)
            return as_text
    if uniques.dtype.kind in "iub" or isinstance(uniques.dtype, pd.StringDtype):
        return np.asarray(uniques.astype(str), dtype=object)
    return np.array([display_string(value) for value in uniques], dtype=object)


def top_values(profile: ColumnProfile, limit: int) -> tuple[list[str], list[int], np.ndarray]:
    """The ``limit`` most frequent values (ties by value), their counts, and all counts.

    The last item is every distinct value's count, sorted descending (for concentration).
    """
    counts = profile.counts
    size = int(counts.shape[0])
    if size == 0:
        return [], [], counts
    keep = min(limit, size)
    threshold = int(np.partition(counts, size - keep)[size - keep])
    above = np.flatnonzero(counts > threshold)
    tied = np.flatnonzero(counts == threshold)
    above_labels = labels_of(profile, above)
    order = np.lexsort((above_labels.astype(str), -counts[above]))
    tied_labels = pa.array(labels_of(profile, tied), type=pa.string())
    tied_order = pc.array_sort_indices(tied_labels).to_numpy()[: keep - above.shape[0]]
    labels = [str(v) for v in above_labels[order]] + [
        str(v) for v in tied_labels.take(pa.array(tied_order)).to_pylist()
    ]
    chosen = np.concatenate([above[order], tied[tied_order]])
    return labels, [int(count) for count in counts[chosen]], np.sort(counts)[::-1]


def category_stats(profile: ColumnProfile) -> dict[str, Any]:
    """topValues (top 10 with counts and shares), other share and concentration."""
    labels, counts, ordered = top_values(profile, TOP_VALUES_LIMIT)
    total = int(ordered.sum())
    top = [
        {"value": label, "count": count, "share": round(count / total, 4)}
        for label, count in zip(labels, counts, strict=True)
    ]
    other = total - sum(counts)
    reach = int(np.searchsorted(np.cumsum(ordered), CONCENTRATION_SHARE * total, "left")) + 1
    return {
        "topValues": top,
        "otherCount": other,
        "otherShare": round(other / total, 4) if total else 0.0,
        "concentration": {
            "top1Share": round(counts[0] / total, 4) if total else 0.0,
            "valuesFor80Pct": min(reach, int(ordered.shape[0])),
        },
    }


# --------------------------------------------------------------------------- datetime


def datetime_stats(distinct: np.ndarray) -> dict[str, Any]:
    """min, max (ISO, UTC), span in days and the typical spacing of the distinct timestamps."""
    stamps = np.sort(distinct[~np.isnat(distinct)])
    if stamps.shape[0] == 0:
        return {"min": None, "max": None, "spanDays": None, "granularity": None}
    low, high = stamps.min(), stamps.max()
    span = float((high - low).astype("int64")) / _NS_PER_DAY
    return {
        "min": iso(low),
        "max": iso(high),
        "spanDays": round(span, 4),
        "granularity": granularity(stamps),
    }


def granularity(distinct: np.ndarray) -> str | None:
    """Name of the typical (median) gap between sorted distinct timestamps, e.g. "month"."""
    if distinct.shape[0] < 2:
        return None
    gaps = np.diff(distinct).astype("int64") / _NS_PER_DAY
    typical = float(np.median(gaps))
    for name, bound in _GRANULARITIES:
        if typical <= bound:
            return name
    return "year"


def iso(stamp: np.datetime64) -> str:
    """A timestamp as ISO 8601 without zone, to the second."""
    return str(np.datetime_as_string(stamp.astype("datetime64[s]"), unit="s"))
