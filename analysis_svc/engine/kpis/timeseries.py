"""Time-series KPIs per (datetime, measure): period totals, trend, last change, drivers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis_svc.engine.column_profile import ColumnProfile
from analysis_svc.engine.kpis.columns import finite, granularity, labels_of

UNITS = ("day", "week", "month", "quarter", "year")
MAX_PERIODS = 100
MIN_PERIODS = 3
MAX_DATETIME_COLUMNS = 2
MAX_MEASURES = 5
MAX_DIMENSIONS = 3
DIMENSION_MAX_DISTINCT = 20
MAX_DRIVERS = 3
UNUSUAL_WINDOW = 12
COMPLETE_GAP_FACTOR = 1.5
UNUSUAL_MIN_HISTORY = 6
UNUSUAL_SIGMAS = 3.0
FLAT_RELATIVE_CHANGE = 0.05
TREND_MIN_R2 = 0.3
ROWS_MEASURE = "(rows)"
_PERIODS_PER_YEAR = {"week": 52, "month": 12, "quarter": 4}
_NS_PER_DAY = 86_400 * 10**9
_MAX_LOOKUP_DAYS = 200_000
_FINER = {"second": "day", "minute": "day", "hour": "day"}


def time_series(
    datetimes: list[ColumnProfile],
    measures: list[tuple[ColumnProfile, str]],
    dimensions: list[ColumnProfile],
) -> list[dict[str, Any]]:
    """One item per (time axis, measure) worth it, counts of rows first.

    ``datetimes`` start with the table's time axis; ``measures`` are (profile, aggregation)
    pairs, the aggregation following the measure's role (sum, mean).
    """
    dimensions = [p for p in dimensions if 2 <= p.distinct <= DIMENSION_MAX_DISTINCT]
    items: list[dict[str, Any]] = []
    for number, datetime in enumerate(datetimes[:MAX_DATETIME_COLUMNS]):
        periods = Periods.build(datetime)
        if periods is None:
            continue
        targets: list[tuple[ColumnProfile | None, str]] = [
            (None, "count"),
            *measures[:MAX_MEASURES],
        ]
        for measure, aggregation in targets:
            # Drivers are computed for the primary (first) datetime column only.
            drivers = dimensions[:MAX_DIMENSIONS] if number == 0 else []
            items.append(_series_item(datetime.name, periods, measure, aggregation, drivers))
    return items


class Periods:
    """Period codes of every row at the chosen unit (code -1: no timestamp)."""

    def __init__(
        self, unit: str, data_unit: str, codes: np.ndarray, first: int, count: int
    ) -> None:
        self.unit, self.data_unit, self.codes, self.first, self.count = (
            unit,
            data_unit,
            codes,
            first,
            count,
        )
        self.first_complete = True
        self.last_complete = True
        self._recent: dict[int, np.ndarray] = {}
        self._counts: np.ndarray | None = None
        self.aggregates: dict[tuple[str, str], np.ndarray] = {}

    def row_counts(self) -> np.ndarray:
        """Rows per period (float; computed once and shared by every measure)."""
        if self._counts is None:
            self._counts = np.bincount(self.codes, minlength=self.count + 1)[:-1].astype("float64")
        return self._counts

    def rows_of_last_two(self, last: int) -> np.ndarray:
        """Row numbers in period ``last`` or the one before (computed once)."""
        if last not in self._recent:
            codes = self.codes
            self._recent[last] = np.flatnonzero((codes == last) | (codes == last - 1))
        return self._recent[last]

    @classmethod
    def build(
        cls, profile: ColumnProfile, max_periods: int = MAX_PERIODS, min_unit: str = "day"
    ) -> Periods | None:
        """Periods of a datetime column, computed on its distinct values and mapped to rows."""
        distinct = profile.uniques.to_numpy(dtype="datetime64[ns]")
        distinct = np.sort(distinct[~np.isnat(distinct)])
        if distinct.shape[0] == 0:
            return None
        data_unit = granularity(distinct) or "day"
        data_unit = _FINER.get(data_unit, data_unit)
        data_unit = max(data_unit, min_unit, key=UNITS.index)
        low, high = distinct[0], distinct[-1]
        for unit in UNITS[UNITS.index(data_unit) :]:
            first, last = int(_code(low, unit)), int(_code(high, unit))
            if last - first + 1 <= max_periods:
                break
        if last - first + 1 < MIN_PERIODS:
            return None
        cached = profile.periods_cache.get(unit)
        if isinstance(cached, Periods):
            return cached
        count = last - first + 1
        # Rows without a timestamp go to an extra bin ``count`` that is dropped after counting.
        if profile.known_codes is not None or profile.dates is None:
            per_distinct = np.append(_code(distinct, unit) - first, count)
            row_codes = profile.codes
            codes = per_distinct[np.where(row_codes >= 0, row_codes, len(distinct))]
        else:
            codes = _row_codes(profile.dates, unit, first, count)
        periods = cls(unit, data_unit, codes, first, count)
        # A period is complete when the data reach its edge within 1.5 typical gaps.
        gap = _typical_gap_ns(distinct) * COMPLETE_GAP_FACTOR
        next_start = np.datetime64(_start(last + 1, unit)).astype("datetime64[ns]")
        first_start = np.datetime64(_start(first, unit)).astype("datetime64[ns]")
        periods.last_complete = bool(float((next_start - high).astype(np.int64)) <= gap)
        periods.first_complete = bool(float((low - first_start).astype(np.int64)) <= gap)
        profile.periods_cache[unit] = periods
        return periods

    def start(self, index: int) -> str:
        return _start(self.first + index, self.unit)


def _row_codes(dates: np.ndarray, unit: str, first: int, count: int) -> np.ndarray:
    """Period index of every row (``count`` for NaT) through a per-day lookup table."""
    present = ~np.isnat(dates)
    days = dates.astype("datetime64[ns]").view(np.int64) // _NS_PER_DAY
    low, high = int(days[present].min()), int(days[present].max())
    if high - low > _MAX_LOOKUP_DAYS:
        table_codes = _code(dates[present], unit) - first
        codes = np.full(dates.shape[0], count, dtype=np.int64)
        codes[present] = table_codes
        return codes
    table = _code(np.arange(low, high + 1).astype("datetime64[D]"), unit) - first
    table = np.append(table, count)
    return table[np.where(present, days - low, high - low + 1)]


def _code(stamps: Any, unit: str) -> Any:
    """Integer period number of datetime64 values (weeks start on Monday)."""
    if unit == "day":
        return np.asarray(stamps).astype("datetime64[D]").astype(np.int64)
    if unit == "week":
        return (np.asarray(stamps).astype("datetime64[D]").astype(np.int64) + 3) // 7
    months = np.asarray(stamps).astype("datetime64[M]").astype(np.int64)
    if unit == "month":
        return months
    if unit == "quarter":
        return months // 3
    return months // 12


def _start(code: int, unit: str) -> str:
    if unit == "day":
        day = np.datetime64(code, "D")
    elif unit == "week":
        day = np.datetime64(code * 7 - 3, "D")
    else:
        months = {"month": 1, "quarter": 3, "year": 12}[unit] * code
        day = np.datetime64(months, "M").astype("datetime64[D]")
    return str(day)


def _typical_gap_ns(distinct: np.ndarray) -> float:
    """Median gap between sorted distinct timestamps, in nanoseconds (one day if unknown)."""
    if distinct.shape[0] < 2:
        return float(_NS_PER_DAY)
    return float(np.median(np.diff(distinct).astype(np.int64)))


# --------------------------------------------------------------------------- one series


def _series_item(
    datetime_name: str,
    periods: Periods,
    measure: ColumnProfile | None,
    aggregation: str,
    dimensions: list[ColumnProfile],
) -> dict[str, Any]:
    name = ROWS_MEASURE if measure is None else measure.name
    finite_mask: np.ndarray | None = None
    if measure is not None:
        assert measure.numbers is not None
        finite_mask = measure.finite
    values = aggregate(periods, measure, finite_mask, aggregation)
    first = 0 if periods.first_complete else 1
    last = periods.count - (1 if periods.last_complete else 2)
    complete = values[first : last + 1]
    item: dict[str, Any] = {
        "key": f"timeSeries.{datetime_name}.{name}",
        "datetime": datetime_name,
        "measure": None if measure is None else measure.name,
        "aggregation": aggregation,
        "granularity": periods.unit,
        "periods": periods.count,
        "firstPeriodComplete": periods.first_complete,
        "lastPeriodComplete": periods.last_complete,
        "points": [
            {"start": periods.start(index), "value": _round(values[index])}
            for index in range(periods.count)
        ],
        "trend": _trend(complete),
        "lastChange": None,
        "yearOverYear": None,
        "unusualLast": None,
        "drivers": {},
    }
    if complete.shape[0] >= 2:
        item["lastChange"] = _change(periods, values, last, last - 1)
        item["unusualLast"] = _unusual(complete)
        per_year = _PERIODS_PER_YEAR.get(periods.unit)
        if per_year and complete.shape[0] > per_year and last - per_year >= first:
            item["yearOverYear"] = _change(periods, values, last, last - per_year)
        if aggregation != "mean":
            recent = periods.rows_of_last_two(last)
            if finite_mask is not None:
                recent = recent[finite_mask[recent]]
            recent_weights = None if measure is None else measure.numbers[recent]  # type: ignore[index]
            item["drivers"] = {
                dimension.name: _drivers(
                    dimension, periods.codes[recent] == last, recent, recent_weights
                )
                for dimension in dimensions
            }
    return item


def aggregate(
    periods: Periods,
    measure: ColumnProfile | None,
    finite_mask: np.ndarray | None,
    aggregation: str,
) -> np.ndarray:
    """Count, sum or mean per period (bincount; missing values weigh nothing); computed once
    per (measure, aggregation) and shared: callers never modify the array."""
    bins = periods.count + 1
    if measure is None or finite_mask is None or measure.numbers is None:
        return periods.row_counts()
    key = (measure.name, aggregation)
    if key not in periods.aggregates:
        periods.aggregates[key] = _aggregate(periods, measure, finite_mask, aggregation, bins)
    return periods.aggregates[key]


def _aggregate(
    periods: Periods, measure: ColumnProfile, finite_mask: np.ndarray, aggregation: str, bins: int
) -> np.ndarray:
    assert measure.numbers is not None
    complete = bool(finite_mask.all())
    weights = measure.filled if finite_mask is measure.known_finite else None
    if weights is None:
        weights = measure.numbers if complete else np.where(finite_mask, measure.numbers, 0.0)
    sums = np.bincount(periods.codes, weights=weights, minlength=bins)[:-1]
    if aggregation == "sum":
        return sums
    if complete:
        rows = periods.row_counts()
    else:
        # The rows without a value, few as a rule, are taken off each period's rows.
        absent = periods.codes[~finite_mask]
        rows = periods.row_counts() - np.bincount(absent, minlength=bins)[:-1]
    with np.errstate(all="ignore"):
        return np.where(rows > 0, sums / np.maximum(rows, 1), np.nan)


def _round(value: float) -> float | None:
    return finite(round(float(value), 6) + 0.0) if math.isfinite(value) else None


def _trend(values: np.ndarray) -> dict[str, Any] | None:
    """Least-squares slope per period over complete periods, its R² and a direction."""
    values = values[np.isfinite(values)]
    count = int(values.shape[0])
    if count < MIN_PERIODS:
        return None
    x = np.arange(count, dtype="float64")
    slope, intercept = (float(v) for v in np.polyfit(x, values, 1))
    fitted = intercept + slope * x
    total = float(((values - values.mean()) ** 2).sum())
    r2 = 1.0 - float(((values - fitted) ** 2).sum()) / total if total > 0 else 0.0
    scale = float(np.abs(values).mean())
    relative = slope * (count - 1) / scale if scale > 0 else 0.0
    direction = "flat"
    if abs(relative) >= FLAT_RELATIVE_CHANGE and r2 >= TREND_MIN_R2:
        direction = "up" if slope > 0 else "down"
    return {
        "direction": direction,
        "slopePerPeriod": _round(slope),
        "r2": round(r2, 4),
        "changeOverWindowPct": _round(100.0 * relative),
        "periodsUsed": count,
    }


def _change(periods: Periods, values: np.ndarray, current: int, previous: int) -> dict[str, Any]:
    now, before = float(values[current]), float(values[previous])
    change = now - before
    return {
        "period": periods.start(current),
        "value": _round(now),
        "previousPeriod": periods.start(previous),
        "previousValue": _round(before),
        "change": _round(change),
        "changePct": _round(100.0 * change / abs(before)) if before else None,
    }


def _unusual(complete: np.ndarray) -> dict[str, Any] | None:
    """Is the last complete value beyond mean +/- 3 std of the (up to 12) periods before it?"""
    history = complete[:-1][-UNUSUAL_WINDOW:]
    history = history[np.isfinite(history)]
    last = float(complete[-1])
    if history.shape[0] < UNUSUAL_MIN_HISTORY or not math.isfinite(last):
        return None
    mean, std = float(history.mean()), float(history.std(ddof=1))
    z = (last - mean) / std if std > 0 else (0.0 if last == mean else math.inf)
    return {
        "value": _round(last),
        "windowPeriods": int(history.shape[0]),
        "mean": _round(mean),
        "std": _round(std),
        "zScore": _round(z) if math.isfinite(z) else None,
        "isUnusual": bool(abs(z) > UNUSUAL_SIGMAS),
        "direction": "high" if last > mean else ("low" if last < mean else "normal"),
    }


def _drivers(
    dimension: ColumnProfile,
    is_last: np.ndarray,
    recent: np.ndarray,
    weights: np.ndarray | None,
) -> dict[str, Any]:
    """Per value of ``dimension``: change from the previous period to the last complete one.

    ``recent`` are the rows of those two periods, ``is_last`` says which are in the last.
    Contributors moved in the direction of the total change (largest first), detractors
    against it. Rows without a value in the dimension are left out of both.
    """
    size = dimension.distinct
    dim_codes = dimension.codes[recent]
    keep = dim_codes >= 0
    index = dim_codes[keep] * 2 + is_last[keep]
    totals = np.bincount(
        index, weights=None if weights is None else weights[keep], minlength=2 * size
    ).reshape(size, 2)
    delta = totals[:, 1] - totals[:, 0]
    total_change = float(delta.sum())
    sign = -1.0 if total_change < 0 else 1.0
    labels = labels_of(dimension)
    order = np.lexsort((labels, -sign * delta))
    ranked = [
        {
            "value": str(labels[i]),
            "previous": _round(totals[i, 0]),
            "current": _round(totals[i, 1]),
            "change": _round(delta[i]),
            "shareOfChange": _round(delta[i] / total_change) if total_change else None,
        }
        for i in order
        if delta[i] != 0
    ]
    along = [item for item in ranked if sign * float(item["change"] or 0) > 0]
    against = [item for item in reversed(ranked) if sign * float(item["change"] or 0) < 0]
    return {
        "totalChange": _round(total_change),
        "contributors": along[:MAX_DRIVERS],
        "detractors": against[:MAX_DRIVERS],
    }
