"""Compute the deterministic, JSON-ready KPI report (schema in docs/kpi-report.md) for a Table."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from analysis_svc.engine import SCHEMA_VERSION
from analysis_svc.engine.column_profile import ColumnProfile, profile_column
from analysis_svc.engine.insights.ranking import (
    correlation_insights,
    outlier_insights,
    quality_insights,
    rank,
)
from analysis_svc.engine.insights.segments import (
    MIN_CONCENTRATION_LIFT,
    GroupSums,
    concentration_insights,
    segment_insights,
)
from analysis_svc.engine.insights.series import series_insights
from analysis_svc.engine.kpis.columns import column_report, labels_of, percent
from analysis_svc.engine.kpis.correlations import correlation_scan
from analysis_svc.engine.kpis.quality import alerts, mixed_scale_alert
from analysis_svc.engine.kpis.timeseries import time_series
from analysis_svc.engine.readers.common import Reshape, Table
from analysis_svc.engine.semantics.mixed_scales import mixed_scales
from analysis_svc.engine.semantics.roles import Semantics, assign_roles, role_dumps
from analysis_svc.engine.semantics.time_axis import TimeAxis, find_time_axis
from datapilot_runtime.report.calendar_names import MONTH_NAMES
from datapilot_runtime.report.insights import Aggregation, Role

_LOGGER = logging.getLogger(__name__)

_KEY_LIMIT = 2**62
MAX_INSIGHT_MEASURES = 12
MAX_INSIGHT_DIMENSIONS = 12
# Calendar parts that group rows into comparable segments (delays by hour, sales by weekday);
# a day of the month or a minute makes 31 or 60 thin segments, and years are the time axis.
GROUPING_PARTS = frozenset({"quarter", "month", "weekday", "hour"})
# A table of cells (each row one combination of its dimensions, with counts): a value's share
# of the rows is the table's layout, not a group's size, so a smaller lift of its share of a
# total is already the finding (61 % of UCB applicants rejected, from half of the cells).
CROSS_TAB_MIN_LIFT = 1.1
CROSS_TAB_MIN_ROWS = 8
CROSS_TAB_MAX_ROWS = 100_000
TYPES = ("numeric", "id", "datetime", "boolean", "categorical", "text", "constant", "empty")
# Columns are profiled on two threads: their heavy steps (Arrow's hashing of strings, NumPy's
# sorts) release the GIL, so a second core takes a third off the profile of a large file. Below
# PROFILE_THREADS_MIN_ROWS the steps are short, the Python around them is not, and the threads
# only take turns at the GIL (measured: a 2,300-row file 15 -> 18 ms, 20,000 rows even, 50,000
# rows 146 -> 136 ms, 200,000 rows 171 -> 95 ms).
PROFILE_THREADS = 2
PROFILE_THREADS_MIN_ROWS = 50_000


def profile_table(table: Table) -> list[ColumnProfile]:
    """The profile of every column, in column order.

    Text columns are started first: hashing one of many distinct strings is the longest step,
    and started last it would run alone. The pool is made per call, never kept: a pool made in
    the forkserver would have no threads in the children forked from it.
    """
    frame = table.frame
    columns = [(str(frame.columns[i]), frame.iloc[:, i]) for i in range(int(frame.shape[1]))]
    if len(columns) < 2 or int(frame.shape[0]) < PROFILE_THREADS_MIN_ROWS:
        return [profile_column(name, series) for name, series in columns]
    order = sorted(range(len(columns)), key=lambda i: not _is_text(columns[i][1]))
    with ThreadPoolExecutor(PROFILE_THREADS, thread_name_prefix="profile") as pool:
        futures = {i: pool.submit(profile_column, *columns[i]) for i in order}
        return [futures[i].result() for i in range(len(columns))]


def _is_text(series: pd.Series) -> bool:
    """Strings not yet dictionary-encoded (neither numbers, timestamps nor categories)."""
    dtype = series.dtype
    return not (
        pd.api.types.is_numeric_dtype(dtype)
        or pd.api.types.is_datetime64_any_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


def compute_report(
    table: Table,
    *,
    roles: Mapping[str, str] | None = None,
    profiles: list[ColumnProfile] | None = None,
) -> dict[str, Any]:
    """Return the KPI report for ``table`` (same table -> identical dict, keys in fixed order).

    ``roles`` are the uploader's overrides (column -> a role string of ``OVERRIDE_ROLES``);
    ``profiles`` are those of ``profile_table(table)`` when the caller has them already.
    """
    frame = table.frame
    rows = int(frame.shape[0])
    if profiles is None:
        profiles = profile_table(table)
    semantics = assign_roles(profiles, roles)
    columns = [column_report(p, rows, semantics.role(p.name)) for p in profiles]
    dataset = _dataset_report(table, profiles, columns)
    _LOGGER.debug("profiled %d columns", len(columns))
    measures = [p for p in profiles if semantics.is_measure(p.name) and p.numbers is not None]
    dimensions = [p for p in profiles if semantics.role(p.name) is Role.DIMENSION]
    # A column holding several quantities (long format) gets no figure across them.
    mixed = mixed_scales(measures, dimensions)
    measures = [p for p in measures if p.name not in mixed]
    by_role = [(p, aggregation_of(semantics.role(p.name))) for p in measures]
    axis = find_time_axis(profiles, semantics)
    datetimes = [p for p in profiles if semantics.role(p.name) is Role.TIME and p.dates is not None]
    if axis is not None:
        datetimes = [axis.profile, *(p for p in datetimes if p.name != axis.name)]
    # By name, so that the series kept (and the evidence citing them) never depend on column order.
    series = time_series(datetimes, sorted(by_role, key=lambda item: item[0].name), dimensions)
    pairs, linear = correlation_scan(measures, _series_order(axis, rows))
    found = alerts(dataset, columns) + [mixed_scale_alert(m) for _, m in sorted(mixed.items())]
    report = {
        "schemaVersion": SCHEMA_VERSION,
        "dataset": dataset,
        "roles": role_dumps(semantics, [p.name for p in profiles]),
        "roleWarnings": semantics.warnings,
        "timeAxis": None if axis is None else axis.dump(),
        "columns": columns,
        "timeSeries": series,
        "correlations": pairs,
        "alerts": found,
    }
    # A measure that is a linear function of another (a share of the total next to the total)
    # would repeat every finding of the other: its findings are left out.
    repeated = {_repeat_of(a, b, semantics) for a, b in linear}
    kept = [item for item in by_role if item[0].name not in repeated]
    report["candidates"] = candidates(
        profiles, semantics, axis, kept, {str(item["key"]) for item in series}, report
    )
    return report


def _series_order(axis: TimeAxis | None, rows: int) -> np.ndarray | None:
    """The rows in time order when the table is one series (a row per period), else None."""
    dates = axis.profile.dates if axis is not None else None
    if axis is None or dates is None or axis.periods < 0.9 * rows:
        return None
    return np.argsort(dates, kind="stable")  # NaT sorts last


def _repeat_of(a: str, b: str, semantics: Semantics) -> str:
    """Of two linearly related measures, the one to leave out: the non-additive one, else the
    one whose name extends the other's (revenue_share next to revenue), else the later name."""
    additive_a, additive_b = (semantics.role(n) is Role.ADDITIVE for n in (a, b))
    if additive_a != additive_b:
        return b if additive_a else a
    if a.lower() in b.lower():
        return b
    if b.lower() in a.lower():
        return a
    return max(a, b)


def aggregation_of(role: Role) -> Aggregation:
    """Per period: the sum of an additive measure, the mean of a rate or a level."""
    return "sum" if role is Role.ADDITIVE else "mean"


def candidates(
    profiles: list[ColumnProfile],
    semantics: Semantics,
    axis: TimeAxis | None,
    measures: list[tuple[ColumnProfile, Aggregation]],
    series_keys: set[str],
    report: dict[str, Any],
) -> list[dict[str, Any]]:
    """Every insight candidate, ranked; independent of column and row order."""
    ordered = sorted(profiles, key=lambda p: p.name)
    measures = sorted(measures, key=lambda item: item[0].name)[:MAX_INSIGHT_MEASURES]
    groups = [
        p
        for p in ordered
        if semantics.role(p.name) is Role.DIMENSION
        or (
            semantics.role(p.name) is Role.CALENDAR
            and semantics.parts.get(p.name) in GROUPING_PARTS
        )
    ][:MAX_INSIGHT_DIMENSIONS]
    valued = [(p, p.numbers) for p, _ in measures if p.numbers is not None]
    # A yes/no column that relabels another is still a rate to compare ("Alive" by AgeGroup).
    valued += [(p, rates) for p in groups if (rates := binary_values(p)) is not None]
    yes_labels = {p.name: label for p in groups if (label := binary_one_label(p)) is not None}
    groups = distinct_groupings(groups)
    group_sums = GroupSums()
    spreads = {
        str(c["name"]): _segment_scale(c["numeric"])
        for c in report["columns"]
        if (c.get("numeric") or {}).get("std") is not None
    }
    month_names = {
        p.name: {str(n): name.capitalize() for n, name in enumerate(MONTH_NAMES, start=1)}
        for p in groups
        if semantics.parts.get(p.name) == "month" and p.numbers is not None
    }
    additive = [p for p, aggregation in measures if aggregation == "sum"]
    cells = _is_cross_tab(groups)
    if cells:  # the average count per cell is the share told twice, less clearly
        summed = {p.name for p in additive}
        valued = [(p, values) for p, values in valued if p.name not in summed]
    found: list[object] = [
        item.model_copy(update={"measure_label": yes_labels.get(str(item.measure))})
        for item in segment_insights(valued, groups, group_sums, spreads, month_names)
    ]
    lift = CROSS_TAB_MIN_LIFT if cells else MIN_CONCENTRATION_LIFT
    found.extend(concentration_insights(additive, groups, group_sums, month_names, lift))
    if axis is not None:
        found.extend(series_insights(axis, measures, series_keys, groups))
    found.extend(correlation_insights(report["correlations"]))
    mixed = frozenset(str(a["column"]) for a in report["alerts"] if a["type"] == "mixedScales")
    found.extend(outlier_insights(report["columns"], mixed))
    found.extend(quality_insights(report["alerts"], report["dataset"]))
    return rank(found)


def _is_cross_tab(groups: list[ColumnProfile]) -> bool:
    """Whether each row is one cell of a table: >= 2 dimensions, each value on 2+ rows on
    average, whose combinations never repeat (UCBAdmissions: Admit x Gender x Dept, one row
    each with its Freq). A dimension of one value per row (a store's name) makes a table of
    entities, not of cells."""
    if len(groups) < 2 or groups[0].rows > CROSS_TAB_MAX_ROWS:
        return False
    rows = groups[0].rows
    if any(2 * g.distinct > rows for g in groups):
        return False
    radices = [g.distinct + 1 for g in groups]  # + 1: missing (code -1) is a value too
    combinations = float(np.prod([float(r) for r in radices]))
    if rows < CROSS_TAB_MIN_ROWS or combinations < rows or combinations >= _KEY_LIMIT:
        return False  # too few combinations to tell every row apart, or too many to be cells
    key = np.zeros(rows, dtype=np.int64)
    for group, radix in zip(groups, radices, strict=True):
        key = key * radix + (group.codes + 1)  # one number per combination (mixed radix)
    key.sort()  # a repeat then sits next to its twin (np.unique: 50-80 ms per 100k keys, this 2)
    return not bool((key[1:] == key[:-1]).any())


def distinct_groupings(groups: list[ColumnProfile]) -> list[ColumnProfile]:
    """``groups`` without a dimension that relabels another one value for value ("Alive" 0/1
    beside "Outcome" Dead/Alive): the same finding twice. Labels are kept over number codes."""
    kept: list[ColumnProfile] = []
    for group in sorted(groups, key=lambda g: (_coded(g), g.name)):
        if not any(_relabels(group, other) for other in kept):
            kept.append(group)
    return [group for group in groups if group in kept]


def _coded(group: ColumnProfile) -> bool:
    """Whether every label is a number (a code such as 0/1), not words."""
    return all(_NUMBER_LABEL.match(str(label)) for label in labels_of(group))


def _relabels(a: ColumnProfile, b: ColumnProfile) -> bool:
    if a.distinct != b.distinct or a.missing != b.missing:
        return False
    pairs = a.codes.astype(np.int64) * (b.distinct + 2) + b.codes.astype(np.int64)
    return int(np.unique(pairs).shape[0]) == a.distinct + (1 if a.missing else 0)


_NUMBER_LABEL = re.compile(r"\s*-?\d+(\.\d+)?\s*\Z")
_ONES = frozenset({"1", "true", "yes", "y"})
_ZEROS = frozenset({"0", "false", "no", "n"})


def binary_one_label(profile: ColumnProfile) -> str | None:
    """The label of a yes/no column that counts as 1 (as written in the file), else None."""
    if profile.kind != "boolean" or profile.distinct != 2:
        return None
    labels = [str(label).strip() for label in labels_of(profile)]
    if not {label.lower() for label in labels} <= _ONES | _ZEROS:
        return None
    return next((label for label in labels if label.lower() in _ONES), None)


def binary_values(profile: ColumnProfile) -> np.ndarray | None:
    """0/1 per row of a two-valued 0/1 or true/false column (its mean is a rate), else None."""
    if profile.kind != "boolean" or profile.distinct != 2:
        return None
    labels = [str(label).strip().lower() for label in labels_of(profile)]
    ones = {"1", "true", "yes", "y"}
    if not set(labels) <= ones | {"0", "false", "no", "n"}:
        return None
    per_code = np.array([1.0 if label in ones else 0.0 for label in labels])
    codes = profile.codes
    return np.where(codes >= 0, per_code[np.maximum(codes, 0)], np.nan)


def _dataset_report(
    table: Table, profiles: list[ColumnProfile], columns: list[dict[str, Any]]
) -> dict[str, Any]:
    frame = table.frame
    rows, width = int(frame.shape[0]), int(frame.shape[1])
    missing_cells = sum(int(column["missing"]) for column in columns)
    duplicates = duplicate_rows(profiles, rows)
    kinds = [str(column["type"]) for column in columns]
    return {
        "format": str(table.source_format),
        "rows": rows,
        "columns": width,
        "missingCells": missing_cells,
        "missingCellsPct": percent(missing_cells, rows * width),
        "duplicateRows": duplicates,
        "duplicateRowsPct": percent(duplicates, rows),
        "memoryBytes": int(frame.memory_usage(index=False, deep=True).sum()),
        "skippedRows": int(table.skipped_rows),
        "headerRow": bool(table.header),
        "columnTypes": {kind: kinds.count(kind) for kind in TYPES},
        "reshapedFrom": _reshaped(table.reshaped_from),
    }


def _reshaped(reshape: Reshape | None) -> dict[str, Any] | None:
    if reshape is None:
        return None
    return {
        "rows": reshape.rows,
        "columns": reshape.columns,
        "dimension": reshape.dimension,
        "measure": reshape.measure,
        "dropped": list(reshape.dropped),
    }


def duplicate_rows(profiles: list[ColumnProfile], rows: int) -> int:
    """Rows equal (missing = missing) to an earlier row, computed exactly from column codes.

    Columns with known codes are combined first into one int64 key per row (re-factorised
    when the key space would overflow); only rows whose partial key repeats are candidates,
    and the remaining columns are then coded on those candidate rows only, the columns with
    the most distinct values first (they leave the fewest candidates for the next ones).
    """
    if rows == 0 or not profiles:
        return 0
    ordered = sorted(profiles, key=lambda p: (p.known_codes is None, -p.distinct))
    candidates = np.arange(rows)
    key = np.zeros(rows, dtype=np.int64)
    size = 1
    for number, profile in enumerate(ordered):
        if profile.known_codes is None:
            codes = profile.codes_at(candidates)
        else:
            codes = profile.codes if candidates.shape[0] == rows else profile.codes[candidates]
        cardinality = int(codes.max(initial=-1)) + 2
        if size * cardinality >= _KEY_LIMIT:
            key, uniques = pd.factorize(key)
            key = key.astype(np.int64)
            size = len(uniques)
        key = key * cardinality + (codes + 1)
        size *= cardinality
        last_known = number + 1 == len(ordered) or ordered[number + 1].known_codes is None
        if last_known and number + 1 < len(ordered):
            repeated = pd.Series(key).duplicated(keep=False).to_numpy()
            candidates, key = candidates[repeated], key[repeated]
            if candidates.shape[0] == 0:
                return 0
    return int(pd.Series(key).duplicated().sum())


def _segment_scale(numeric: dict[str, Any]) -> float:
    """The spread a segment's difference is measured against: the std, or for a heavy-tailed
    measure the std its middle half implies (IQR / 1.349), when smaller: a few multi-hour
    delays inflate the std of every flight's delay and hide that evening flights wait twice
    as long."""
    std = float(numeric["std"])
    low, high = numeric.get("p25"), numeric.get("p75")
    if low is None or high is None or high <= low:
        return std
    return min(std, (float(high) - float(low)) / 1.349)
