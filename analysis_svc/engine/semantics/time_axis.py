"""The table's time axis: a datetime column, a decimal-year column (1949.083), year + month
(+ day) or year + quarter columns combined, or a lone integer year column (period strings such as
2015-07 parse as dates)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis_svc.engine.column_profile import ColumnProfile, display_string
from analysis_svc.engine.kpis.columns import granularity
from analysis_svc.engine.semantics.roles import Semantics, month_number
from datapilot_runtime.report.insights import Role

_MONTHS_PER_QUARTER = 3
#: The years a datetime64[ns] holds whole (pandas.Timestamp.min is 1677-09-21, max 2262-04-11).
_FIRST_NS_YEAR, _LAST_NS_YEAR = 1678, 2261


@dataclass
class TimeAxis:
    """The axis: the columns it is built from and a datetime profile of every row's instant."""

    columns: list[str]
    profile: ColumnProfile
    granularity: str
    periods: int

    @property
    def name(self) -> str:
        return self.profile.name

    def dump(self) -> dict[str, object]:
        return {
            "name": self.name,
            "columns": self.columns,
            "granularity": self.granularity,
            "periods": self.periods,
            "start": _day(self.profile, 0),
            "end": _day(self.profile, -1),
        }


def find_time_axis(profiles: list[ColumnProfile], semantics: Semantics) -> TimeAxis | None:
    """The best time axis, chosen independently of column order (ties by column name)."""
    by_name = {profile.name: profile for profile in profiles}
    dates = [
        p
        for p in profiles
        if semantics.role(p.name) is Role.TIME and p.kind == "datetime" and p.distinct >= 3
    ]
    if dates:
        chosen = min(
            dates, key=lambda p: (not semantics.roles[p.name].overridden, -p.distinct, p.name)
        )
        return _axis([chosen.name], chosen)
    decimal = sorted(
        name
        for name, part in semantics.parts.items()
        if part == "decimal_year" and semantics.role(name) is Role.TIME
    )
    if decimal:
        years = _numbers(by_name[decimal[0]])
        if years is not None and _representable(years):
            return _synthetic([decimal[0]], _decimal_year_stamps(years))
    parts: dict[str, str] = {}
    for name in sorted(semantics.parts):
        part = semantics.parts[name]
        if semantics.role(name) in (Role.CALENDAR, Role.TIME):
            parts.setdefault(part, name)
    year = parts.get("year")
    if year is None:
        return None
    years = _numbers(by_name[year])
    if years is None or not _representable(years):
        return None
    month_name = parts.get("month")
    quarter_name = parts.get("quarter")
    if month_name is not None:
        months = _month_numbers(by_name[month_name])
        if months is not None:
            stamps = _month_stamps(years, months)
            columns = [year, month_name]
            day_name = parts.get("day")
            days = _numbers(by_name[day_name]) if day_name is not None else None
            if day_name is not None and days is not None:
                valid = np.isfinite(days) & ~np.isnat(stamps)
                offsets = np.where(valid, days - 1, 0).astype(np.int64).astype("timedelta64[D]")
                stamps = (stamps.astype("datetime64[D]") + offsets).astype("datetime64[ns]")
                stamps[~valid] = np.datetime64("NaT")
                columns.append(day_name)
            return _synthetic(columns, stamps)
    if quarter_name is not None:
        quarters = _numbers(by_name[quarter_name])
        if quarters is not None:
            months = (quarters - 1) * _MONTHS_PER_QUARTER + 1
            return _synthetic([year, quarter_name], _month_stamps(years, months))
    return _synthetic([year], _month_stamps(years, np.ones_like(years)))


def _axis(columns: list[str], profile: ColumnProfile) -> TimeAxis | None:
    distinct = profile.uniques.to_numpy(dtype="datetime64[ns]")
    distinct = np.sort(distinct[~np.isnat(distinct)])
    if distinct.shape[0] < 3:
        return None
    unit = granularity(distinct) or "day"
    return TimeAxis(columns, profile, unit, int(distinct.shape[0]))


def _synthetic(columns: list[str], stamps: np.ndarray) -> TimeAxis | None:
    """A datetime profile named after its columns (``year+month``) for rows' instants."""
    ns = stamps.astype("datetime64[ns]")
    present = ~np.isnat(ns)
    distinct = np.unique(ns[present])
    uniques = pd.DatetimeIndex(distinct)
    codes = np.full(ns.shape[0], -1, dtype=np.int64)
    codes[present] = np.searchsorted(distinct, ns[present])
    profile = ColumnProfile(
        "+".join(columns),
        "datetime",
        uniques,
        int((~present).sum()),
        int(ns.shape[0]),
        known_codes=codes,
        dates=ns,
    )
    return _axis(columns, profile)


def _numbers(profile: ColumnProfile) -> np.ndarray | None:
    """Integer values as int64 (missing -> a value that gives NaT later), or None."""
    if profile.numbers is None:
        return None
    values = profile.numbers
    return np.where(np.isfinite(values), values, np.nan)


def _representable(years: np.ndarray) -> bool:
    """Whether every year fits a nanosecond timestamp (1678-2261): outside it, a conversion to
    datetime64[ns] silently wraps (1565 became 2149), so such a table gets no time axis at all."""
    present = years[np.isfinite(years)]
    return present.shape[0] == 0 or bool(
        present.min() >= _FIRST_NS_YEAR and present.max() <= _LAST_NS_YEAR
    )


def _month_numbers(profile: ColumnProfile) -> np.ndarray | None:
    if profile.numbers is not None:
        return _numbers(profile)
    per_unique = np.array(
        [month_number(display_string(value)) or np.nan for value in profile.uniques], dtype=float
    )
    codes = profile.codes
    return np.where(codes >= 0, per_unique[np.maximum(codes, 0)], np.nan)


def _decimal_year_stamps(years: np.ndarray) -> np.ndarray:
    """The month each decimal year falls in (1949.083 is February 1949), NaT where missing."""
    valid = np.isfinite(years)
    index = np.where(valid, np.round(years * 12) - 1970 * 12, 0).astype(np.int64)
    stamps = index.astype("datetime64[M]").astype("datetime64[ns]")
    stamps[~valid] = np.datetime64("NaT")
    return stamps


def _month_stamps(years: np.ndarray, months: np.ndarray) -> np.ndarray:
    """First day of each row's month (NaT where the year or month is missing or invalid)."""
    valid = np.isfinite(years) & np.isfinite(months) & (months >= 1) & (months <= 12)
    index = np.where(valid, (years - 1970) * 12 + (months - 1), 0).astype(np.int64)
    stamps = index.astype("datetime64[M]").astype("datetime64[ns]")
    stamps[~valid] = np.datetime64("NaT")
    return stamps


def _day(profile: ColumnProfile, position: int) -> str | None:
    distinct = profile.uniques
    if len(distinct) == 0:
        return None
    return str(pd.Timestamp(distinct[position]).date())
