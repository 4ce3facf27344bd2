"""Insights of a measure over the time axis: trend, season, level shift, period change, unusual
last value and record. Each works on the series aggregated per period as the role says (sum of
an additive measure, mean of the rest), over complete periods only.

Means over an unbalanced panel give no insights: their moves are entries and exits. A panel:
several rows share an instant (<= 50 on average, their number varying by more than 10 %) and
a dimension of at most twice as many values as the largest instant's rows tells them apart
(>= 95 % of (dimension, instant) pairs unique).

Scores (each in [0, 1]):
* trend: Mann-Kendall test and Sen's slope; (1 - p) x min(1, |Sen change over the window| /
  2 std of the series); needs p < 0.05, a change >= 5 % of the mean level, and first and last
  values that moved the same way (else a cycle or noise, not a trend).
* season: strength = 1 - var(remainder) / var(detrended), adjusted for the positions fitted
  (as adjusted R^2); score = strength x min(1, cycles / 3); needs >= 2 full cycles, strength
  >= 0.3 and a peak-to-trough amplitude of the seasonal index >= 0.1 std of the series.
* level_shift: the split maximising the between-means sum of squares (binary segmentation,
  one step); (1 - Bonferroni p of the shift's t) x min(1, shift / 2 residual std) x the share of
  a straight line's error it removes; needs a better fit than a line and than a cubic in time
  (a smooth rise and fall, one season's swing, is no step) and p < 0.01. When both
  a trend and a shift are found, the trend's score is multiplied by step error / line error.
* period_change: 0.5 x min(1, |z| / 3), z of the last change against earlier changes, for
  |z| >= 2 (a change within the usual ones is no news); of the previous-period and
  year-over-year comparisons of one measure only the higher-scored is kept.
* unusual: min(1, |z| / 6) for |z| >= 3 against the 12 periods before it.
* record: (0.3 + 0.3 x min(1, periods / 50)) x min(1, margin over the old record / std of
  the period-to-period changes), when the last value beats every earlier one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis_svc.engine.column_profile import ColumnProfile
from analysis_svc.engine.insights.common import normal_p_two_sided, pct, polarity, score, sig
from analysis_svc.engine.kpis.columns import granularity
from analysis_svc.engine.kpis.timeseries import Periods, aggregate
from analysis_svc.engine.semantics.time_axis import TimeAxis
from datapilot_runtime.report.calendar_names import MONTH_NAMES, WEEKDAY_NAMES
from datapilot_runtime.report.insights import (
    Aggregation,
    LevelShiftInsight,
    PeriodChangeInsight,
    RecordInsight,
    SeasonInsight,
    TrendInsight,
    UnusualInsight,
)

MAX_PERIODS = 600
PANEL_MAX_ROWS = 50
PANEL_MAX_IMBALANCE = 0.1
PANEL_UNIQUE_SHARE = 0.95
_MARK_MIN_SPACE = 1 << 20  # key spaces up to this size are counted in a table of flags
MIN_TREND_PERIODS = 6
TREND_MAX_P = 0.05
TREND_MIN_CHANGE = 0.05
TREND_FULL_SPREADS = 2.0
# The first and last values tell the change when they move by 2/3 to 1.5 times the trend line
# over the window; beyond, a noisy or seasonal end says more about its period than the trend
# (counts from 5 to 0: "-100 %"), and the line's own ends are told instead.
TREND_ENDS_AGREE = (2 / 3, 1.5)
SEASON_MIN_AMPLITUDE = 0.1
SEASON_MIN_STRENGTH = 0.3
SHIFT_MIN_PERIODS = 10
SHIFT_CURVE_DEGREE = 3
SHIFT_MAX_P = 0.01
FLAT_RELATIVE_SPREAD = 1e-9
UNUSUAL_WINDOW = 12
UNUSUAL_MIN_HISTORY = 6
PERIOD_CHANGE_MIN_Z = 2.0
UNUSUAL_SIGMAS = 3.0
RECORD_MIN_PERIODS = 8
_CYCLES = {"month": ("year", 12), "quarter": ("year", 4), "day": ("week", 7), "hour": ("day", 24)}
#: The daily cycle is looked for in timestamps finer than a day, over at most this many hours
#: (about ten years): it is one bincount and one moving average over the hours.
DAY_CYCLE_MAX_HOURS = 24 * 366 * 10
#: Every hour of the day must hold rows on at least this share of the days: a shop open 9 to 5
#: has no "lowest at 03:00" to tell, and interpolated nights would be invented values.
DAY_CYCLE_MIN_COVERAGE = 0.5
_SUB_DAILY = frozenset({"hour", "minute", "second"})
_PER_YEAR = {"month": 12, "quarter": 4, "week": 52}


@dataclass
class Series:
    """One measure aggregated over complete periods: values and the period number of each."""

    measure: str
    aggregation: Aggregation
    unit: str
    codes: np.ndarray
    values: np.ndarray
    evidence: list[str]

    def label(self, index: int) -> str:
        return period_label(int(self.codes[index]), self.unit)


def series_insights(
    axis: TimeAxis,
    measures: list[tuple[ColumnProfile, Aggregation]],
    series_keys: set[str],
    dimensions: list[ColumnProfile] | None = None,
) -> list[object]:
    """Every series insight of every measure over ``axis``, at the finest unit giving at most
    MAX_PERIODS periods (months rather than weeks)."""
    periods = Periods.build(axis.profile, max_periods=MAX_PERIODS)
    if periods is not None and periods.unit == "week":
        # Weeks hold no cycle we test; months hold the yearly one (and read better).
        periods = Periods.build(axis.profile, max_periods=MAX_PERIODS, min_unit="month")
    if periods is None:
        return []
    found: list[object] = []
    unbalanced = _unbalanced_panel(axis.profile, dimensions or [])
    hours = _Hours.build(axis.profile)
    for measure, aggregation in measures:
        if aggregation == "mean" and unbalanced:
            continue
        key = f"timeSeries.{axis.name}.{measure.name}"
        evidence = [key] if key in series_keys else []
        series = _series(periods, measure, aggregation, evidence)
        if series is None or _flat(series.values):
            continue
        steady = trend(series, axis.name)
        shift = level_shift(series, axis.name)
        if steady is not None and shift is not None:
            # The step explains the series better than the line: the "trend" is the shift.
            ratio = shift_fit_ratio(series)
            steady = steady.model_copy(update={"score": score(steady.score * ratio)})
        found.extend(
            item
            for item in (steady, shift, unusual(series, axis.name), record(series, axis.name))
            if item is not None
        )
        found.extend(period_changes(series, axis.name))
        seasonal = season(series, axis.name)
        if seasonal is not None:
            found.append(seasonal)
        by_hour = hours.series(measure, aggregation, evidence) if hours is not None else None
        daily = season(by_hour, axis.name) if by_hour is not None else None
        if daily is not None:
            found.append(daily)
    return found


@dataclass
class _Hours:
    """Clock-hour number of every row (``count``: no time), for timestamps finer than a day."""

    codes: np.ndarray
    count: int
    first: int  # hours since 1970 of the first midnight
    rows: np.ndarray

    @classmethod
    def build(cls, instants: ColumnProfile) -> _Hours | None:
        """Whole days only, and only when every hour of the day has rows on most days."""
        distinct = instants.uniques.to_numpy(dtype="datetime64[ns]")
        distinct = np.sort(distinct[~np.isnat(distinct)])
        if distinct.shape[0] < 48 or granularity(distinct) not in _SUB_DAILY:
            return None
        first_day = int(distinct[0].astype("datetime64[D]").astype(np.int64))
        days = int(distinct[-1].astype("datetime64[D]").astype(np.int64)) - first_day + 1
        if not 2 <= days <= DAY_CYCLE_MAX_HOURS // 24:
            return None
        count, first = days * 24, first_day * 24
        per_distinct = distinct.astype("datetime64[h]").astype(np.int64) - first
        if instants.known_codes is not None or instants.dates is None:
            row_codes = instants.codes
            lookup = np.append(per_distinct, count)
            codes = lookup[np.where(row_codes >= 0, row_codes, len(distinct))]
        else:
            present = ~np.isnat(instants.dates)
            stamps = instants.dates.astype("datetime64[h]").astype(np.int64) - first
            codes = np.where(present, stamps, count)
        rows = np.bincount(codes, minlength=count + 1)[:count]
        covered = (rows.reshape(days, 24) > 0).sum(axis=0)
        if int(covered.min()) < max(2, DAY_CYCLE_MIN_COVERAGE * days):
            return None
        return cls(codes, count, first, rows)

    def series(
        self, measure: ColumnProfile, aggregation: Aggregation, evidence: list[str]
    ) -> Series | None:
        """The measure per clock hour: an hour without rows is 0 for a total and left out
        (interpolated by the season test) for a mean."""
        if measure.numbers is None:
            return None
        finite = measure.finite
        complete = bool(finite.all())
        codes = self.codes if complete else np.where(finite, self.codes, self.count)
        sums = np.bincount(codes, weights=measure.filled, minlength=self.count + 1)[: self.count]
        hours = np.arange(self.count) + self.first
        if aggregation == "sum":
            return Series(measure.name, aggregation, "hour", hours, sums, evidence)
        rows = self.rows if complete else np.bincount(codes, minlength=self.count + 1)[: self.count]
        keep = rows > 0
        return Series(
            measure.name, aggregation, "hour", hours[keep], sums[keep] / rows[keep], evidence
        )


def _flat(x: np.ndarray) -> bool:
    """Whether a series is constant up to rounding noise (the mean per year of a value that
    never changes differs in the 15th digit: no shift, trend or record is in it)."""
    if x.shape[0] == 0:
        return True
    mean = float(np.mean(x))
    return float(np.std(x)) <= FLAT_RELATIVE_SPREAD * max(abs(mean), 1e-300)


def _unbalanced_panel(instants: ColumnProfile, dimensions: list[ColumnProfile]) -> bool:
    """Entities observed at each instant (one row per stock per month) whose number changes:
    a mean over a period then moves when an entity enters or leaves (a fifth stock listed),
    not when values move. A sample of different rows each year (cars of a model year) is not
    a panel: no dimension then identifies a row within its instant."""
    counts = instants.counts
    if counts.shape[0] < 2 or float(counts.mean()) > PANEL_MAX_ROWS:
        return False
    high = float(counts.max())
    if high <= 1 or (high - float(counts.min())) / high <= PANEL_MAX_IMBALANCE:
        return False
    at = instants.codes
    present = at >= 0
    for dimension in dimensions:
        if dimension.distinct > 2 * high:
            continue  # not a set of entities seen again and again (car names, one per row)
        codes = dimension.codes
        keep = present & (codes >= 0)
        pairs = codes[keep] * (instants.distinct + 1) + at[keep]
        space = (dimension.distinct + 1) * (instants.distinct + 1)
        if pairs.shape[0] and _distinct(pairs, space) >= PANEL_UNIQUE_SHARE * pairs.shape[0]:
            return True
    return False


def _distinct(keys: np.ndarray, space: int) -> int:
    """Number of distinct keys in 0..space-1: marked in a table when it is small (O(n)),
    else counted by np.unique."""
    if space <= max(_MARK_MIN_SPACE, 4 * keys.shape[0]):
        seen = np.zeros(space, dtype=bool)
        seen[keys] = True
        return int(np.count_nonzero(seen))
    return int(np.unique(keys).shape[0])


def _series(
    periods: Periods, measure: ColumnProfile, aggregation: Aggregation, evidence: list[str]
) -> Series | None:
    values = aggregate(periods, measure, measure.finite, aggregation)
    first = 0 if periods.first_complete else 1
    last = periods.count - (1 if periods.last_complete else 2)
    if last - first + 1 < 3:
        return None
    codes = np.arange(periods.first + first, periods.first + last + 1)
    complete = values[first : last + 1]
    if aggregation == "mean":
        keep = np.isfinite(complete)
        codes, complete = codes[keep], complete[keep]
    if complete.shape[0] < 3:
        return None
    return Series(measure.name, aggregation, periods.unit, codes, complete, evidence)


def period_label(code: int, unit: str) -> str:
    """1898, 2015Q3, 1949-07, or an ISO date for days and weeks (their Monday)."""
    if unit == "year":
        return str(1970 + code)
    if unit == "quarter":
        return f"{1970 + code // 4}Q{code % 4 + 1}"
    if unit == "month":
        return f"{1970 + code // 12}-{code % 12 + 1:02d}"
    if unit == "week":
        return str(np.datetime64(code * 7 - 3, "D"))
    return str(np.datetime64(code, "D"))


def _base(series: Series, kind: str, axis: str) -> dict[str, object]:
    key = f"{kind}.{series.measure}"
    return {
        "key": key,
        "measure": series.measure,
        "time": axis,
        "granularity": series.unit,
        "evidence": [f"candidates.{key}", *series.evidence],
    }


# --------------------------------------------------------------------------- trend


def trend(series: Series, axis: str) -> TrendInsight | None:
    x = series.values
    n = int(x.shape[0])
    if n < MIN_TREND_PERIODS:
        return None
    upper = np.triu_indices(n, 1)
    differences = (x[None, :] - x[:, None])[upper]
    s = float(np.sign(differences).sum())
    _, ties = np.unique(x, return_counts=True)
    variance = (n * (n - 1) * (2 * n + 5) - float((ties * (ties - 1) * (2 * ties + 5)).sum())) / 18
    if variance <= 0:
        return None
    z = (s - math.copysign(1.0, s)) / math.sqrt(variance) if s else 0.0
    p = normal_p_two_sided(z)
    slope = float(np.median(differences / (upper[1] - upper[0])))
    fitted = slope * (n - 1)
    first, last = float(x[0]), float(x[-1])
    level = float(np.mean(np.abs(x)))
    relative = slope * (n - 1) / level if level > 0 else 0.0
    spread = float(np.std(x))
    if p >= TREND_MAX_P or abs(relative) < TREND_MIN_CHANGE or slope == 0 or spread == 0:
        return None
    if (last - first) * slope <= 0:
        return None  # the ends contradict the trend (a cycle or noise): no sentence to sign
    line = _trend_line_ends(x, slope, (last - first) / fitted)
    span = int(series.codes[-1] - series.codes[0]) + 1  # periods without a value included
    if line is not None:
        first, last = line
    # Against the series' spread: a seasonal or cyclic series that drifts a little scores low.
    impact = min(1.0, abs(fitted) / (TREND_FULL_SPREADS * spread))
    return TrendInsight(
        **_base(series, "trend", axis),
        score=score((1 - p) * impact),
        polarity=polarity(series.measure, slope > 0),
        aggregation=series.aggregation,
        direction="up" if slope > 0 else "down",
        first_period=series.label(0),
        last_period=series.label(n - 1),
        first_value=sig(first),
        last_value=sig(last),
        change_pct=pct(100 * (last - first) / abs(first)) if first else None,
        periods=n,
        span_periods=span if span != n else None,
        significance=round(1 - p, 4),
        trend_line=True if line is not None else None,  # left out of the LLM's view when None
    )


def _trend_line_ends(x: np.ndarray, slope: float, agreement: float) -> tuple[float, float] | None:
    """Sen's line (through the median of x - slope t) at both ends, when the data's own ends
    misstate the change and the line stays within the data's range (a curve's line may not)."""
    low, high = TREND_ENDS_AGREE
    if low <= agreement <= high:
        return None
    start = float(np.median(x - slope * np.arange(x.shape[0])))
    end = start + slope * (x.shape[0] - 1)
    smallest, largest = float(np.min(x)), float(np.max(x))
    if not (smallest <= min(start, end) and max(start, end) <= largest):
        return None
    return start, end


# --------------------------------------------------------------------------- season


def season(series: Series, axis: str) -> SeasonInsight | None:
    if series.unit not in _CYCLES:
        return None
    cycle, length = _CYCLES[series.unit]
    codes, x = _filled(series)
    n = int(x.shape[0])
    if n < 2 * length:
        return None
    positions = _positions(codes, series.unit)
    detrended, valid = _detrend(x, length)
    d, pos = detrended[valid], positions[valid]
    counts = np.bincount(pos, minlength=length)
    if int(counts.min()) < 2 or d.shape[0] < 2 * length:
        return None
    index = np.bincount(pos, weights=d, minlength=length) / counts
    remainder = d - index[pos]
    total = float(np.var(d))
    if total <= 0:
        return None
    raw = 1.0 - float(np.var(remainder)) / total
    strength = 1.0 - (1.0 - raw) * (d.shape[0] - 1) / max(d.shape[0] - length, 1)
    amplitude = float(index.max() - index.min())
    if strength < SEASON_MIN_STRENGTH or amplitude < SEASON_MIN_AMPLITUDE * float(np.std(x)):
        return None
    cycles = n // length
    names = _position_names(series.unit)
    order = np.lexsort((np.arange(length), -np.round(index, 9)))
    peak, trough = int(order[0]), int(order[-1])
    means = np.bincount(positions, weights=x, minlength=length) / np.maximum(
        np.bincount(positions, minlength=length), 1
    )
    key = f"season.{series.measure}.{cycle}"
    base = _base(series, "season", axis)
    base["key"] = key
    base["evidence"] = [f"candidates.{key}", *series.evidence]
    return SeasonInsight(
        **base,
        score=score(strength * min(1.0, cycles / 3)),
        aggregation=series.aggregation,
        cycle=cycle,
        peak=names[peak],
        trough=names[trough],
        peak_value=sig(float(means[peak])),
        trough_value=sig(float(means[trough])),
        strength=round(strength, 4),
        cycles=cycles,
    )


def _filled(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """All periods from first to last, gaps (missing means) linearly interpolated."""
    codes = np.arange(int(series.codes[0]), int(series.codes[-1]) + 1)
    if codes.shape[0] == series.codes.shape[0]:
        return codes, series.values
    return codes, np.interp(codes, series.codes, series.values)


def _positions(codes: np.ndarray, unit: str) -> np.ndarray:
    if unit == "hour":
        return codes % 24
    if unit == "month":
        return codes % 12
    if unit == "quarter":
        return codes % 4
    return (codes + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday


def _position_names(unit: str) -> list[str]:
    if unit == "hour":
        return [f"{hour:02d}:00" for hour in range(24)]
    if unit == "month":
        return [name.capitalize() for name in MONTH_NAMES]
    if unit == "quarter":
        return ["Q1", "Q2", "Q3", "Q4"]
    return [name.capitalize() for name in WEEKDAY_NAMES]


def _detrend(x: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Minus a centred moving average over one cycle (2 x length for even lengths), or a
    straight line when the series is too short to lose half a cycle at each end."""
    n = x.shape[0]
    if n < 4 * length:
        t = np.arange(n, dtype="float64")
        slope, intercept = np.polyfit(t, x, 1)
        return x - (intercept + slope * t), np.ones(n, dtype=bool)
    if length % 2 == 0:
        kernel = np.r_[0.5, np.ones(length - 1), 0.5] / length
    else:
        kernel = np.ones(length) / length
    smooth = np.convolve(x, kernel, mode="valid")
    half = (kernel.shape[0] - 1) // 2
    trendline = np.full(n, np.nan)
    trendline[half : half + smooth.shape[0]] = smooth
    valid = np.isfinite(trendline)
    return np.where(valid, x - trendline, 0.0), valid


# --------------------------------------------------------------------------- level shift


def shift_fit_ratio(series: Series) -> float:
    """Residual error of the best one-step model over that of a straight line (0-1)."""
    fit = _step_fit(series.values)
    return 1.0 if fit is None or fit[2] <= 0 else min(1.0, fit[1] / fit[2])


def _step_fit(x: np.ndarray) -> tuple[int, float, float, np.ndarray, np.ndarray, int] | None:
    """(split, step error, line error, means before, means after, best index) or None."""
    n = int(x.shape[0])
    if n < SHIFT_MIN_PERIODS:
        return None
    smallest = max(3, n // 10)
    mean = float(x.mean())
    total = float(((x - mean) ** 2).sum())
    if total <= 0:
        return None
    cumulative = np.cumsum(x)
    k = np.arange(smallest, n - smallest + 1)
    before = cumulative[k - 1] / k
    after = (cumulative[-1] - cumulative[k - 1]) / (n - k)
    between = k * (n - k) / n * (before - after) ** 2
    best = int(np.argmax(np.round(between / total, 12)))
    split = int(k[best])
    step_error = total - float(between[best])
    t_axis = np.arange(n, dtype="float64")
    r = float(np.corrcoef(t_axis, x)[0, 1]) if np.std(x) > 0 else 0.0
    line_error = total * (1 - r * r)
    return split, step_error, line_error, before, after, best


def _curve_error(x: np.ndarray) -> float:
    """Residual error of a cubic in time: a rise and a fall (one season's swing) fit it."""
    t = np.linspace(-1.0, 1.0, int(x.shape[0]))
    coefficients = np.polynomial.polynomial.polyfit(t, x, SHIFT_CURVE_DEGREE)
    fitted = np.polynomial.polynomial.polyval(t, coefficients)
    return float(((x - fitted) ** 2).sum())


def level_shift(series: Series, axis: str) -> LevelShiftInsight | None:
    x = series.values
    n = int(x.shape[0])
    fit = _step_fit(x)
    if fit is None:
        return None
    split, step_error, line_error, before, after, best = fit
    smallest = max(3, n // 10)
    k = np.arange(smallest, n - smallest + 1)
    if step_error >= line_error or (step_error <= 0 and line_error <= 0):
        return None
    if step_error >= _curve_error(x):
        return None  # a smooth curve explains it as well: a gradual change (a season), no step
    residual = math.sqrt(max(step_error, 1e-300) / (n - 2))
    jump = float(after[best] - before[best])
    t = abs(jump) / (residual * math.sqrt(1 / split + 1 / (n - split)))
    p = min(1.0, normal_p_two_sided(t) * int(k.shape[0]))
    if p >= SHIFT_MAX_P:
        return None
    gain = 1.0 - step_error / line_error if line_error > 0 else 1.0
    old = float(before[best])
    return LevelShiftInsight(
        **_base(series, "level_shift", axis),
        score=score((1 - p) * min(1.0, abs(jump) / residual / 2) * min(1.0, 0.5 + gain)),
        polarity=polarity(series.measure, jump > 0),
        aggregation=series.aggregation,
        period=series.label(split),
        last_period_before=series.label(split - 1),
        before=sig(old),
        after=sig(float(after[best])),
        change_pct=pct(100 * jump / abs(old)) if old else None,
    )


# --------------------------------------------------------------------------- last period


def period_changes(series: Series, axis: str) -> list[PeriodChangeInsight]:
    x = series.values
    n = int(x.shape[0])
    found: list[PeriodChangeInsight] = []
    steps = [("previous", 1)]
    per_year = _PER_YEAR.get(series.unit)
    if per_year and n > per_year + 1:
        steps.append(("year_over_year", per_year))
    for comparison, lag in steps:
        if n <= lag + 1 or int(series.codes[-1] - series.codes[-1 - lag]) != lag:
            continue
        changes = x[lag:] - x[:-lag]
        change = float(changes[-1])
        history = changes[:-1]
        z = 0.0
        if history.shape[0] >= 3 and float(np.std(history, ddof=1)) > 0:
            z = (change - float(history.mean())) / float(np.std(history, ddof=1))
        if abs(z) < PERIOD_CHANGE_MIN_Z:
            continue  # a change like most others ("up 0.6% on the day before") is no news
        before = float(x[-1 - lag])
        base = _base(series, "period_change", axis)
        key = f"period_change.{series.measure}.{comparison}"
        base["key"] = key
        base["evidence"] = [f"candidates.{key}", *series.evidence]
        found.append(
            PeriodChangeInsight(
                **base,
                score=score(0.5 * min(1.0, abs(z) / 3)),
                polarity=polarity(series.measure, change > 0) if change else None,
                aggregation=series.aggregation,
                comparison=comparison,
                period=series.label(n - 1),
                previous_period=series.label(n - 1 - lag),
                value=sig(float(x[-1])),
                previous_value=sig(before),
                change=sig(change),
                change_pct=pct(100 * change / abs(before)) if before else None,
            )
        )
    # One statement per measure about its last period: the comparison that says more (two
    # findings titled "disease in 1856-03" read as a duplicate); ties keep the previous period.
    return [max(found, key=lambda item: item.score)] if found else []


def unusual(series: Series, axis: str) -> UnusualInsight | None:
    x = series.values
    history = x[:-1][-UNUSUAL_WINDOW:]
    if history.shape[0] < UNUSUAL_MIN_HISTORY:
        return None
    mean, std = float(history.mean()), float(history.std(ddof=1))
    if std <= 0:
        return None
    z = (float(x[-1]) - mean) / std
    if abs(z) < UNUSUAL_SIGMAS:
        return None
    return UnusualInsight(
        **_base(series, "unusual", axis),
        score=score(abs(z) / 6),
        polarity=polarity(series.measure, z > 0),
        aggregation=series.aggregation,
        period=series.label(x.shape[0] - 1),
        value=sig(float(x[-1])),
        expected=sig(mean),
        z_score=sig(z, 4),
        direction="high" if z > 0 else "low",
    )


def record(series: Series, axis: str) -> RecordInsight | None:
    x = series.values
    n = int(x.shape[0])
    if n < RECORD_MIN_PERIODS:
        return None
    earlier = x[:-1]
    last = float(x[-1])
    if last > float(earlier.max()):
        direction, position = "high", int(np.argmax(earlier))
    elif last < float(earlier.min()):
        direction, position = "low", int(np.argmin(earlier))
    else:
        return None
    # Beating the record by a hair is noise: the margin is weighed against the usual change.
    usual = float(np.std(np.diff(x), ddof=1))
    margin = abs(last - float(earlier[position]))
    weight = min(1.0, margin / usual) if usual > 0 else 1.0
    return RecordInsight(
        **_base(series, "record", axis),
        score=score((0.3 + 0.3 * min(1.0, n / 50)) * weight),
        polarity=polarity(series.measure, direction == "high"),
        aggregation=series.aggregation,
        period=series.label(n - 1),
        value=sig(last),
        previous_record=sig(float(earlier[position])),
        previous_record_period=series.label(position),
        direction=direction,
    )
