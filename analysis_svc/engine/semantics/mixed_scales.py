"""Measures that mix quantities of different scales, told apart by a dimension (long format).

A table in long format ("variable" = pop / unemploy / uempmed beside one "value" column), or a
salary column whose "salary type" says hourly or yearly, holds several quantities in one
column: its total, mean, trend, outliers and correlations across them are nonsense figures.
Such a measure is found by name (a dimension named like a kind of quantity, or a measure named
like a bare value) *and* by values (the medians of its groups differ by MIN_RATIO or more).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis_svc.engine.column_profile import ColumnProfile, name_tokens
from analysis_svc.engine.kpis.columns import labels_of

#: Dimension names of long format itself: beside a bare "value" they need no scale evidence
#: (a "value01" rescaled per variable mixes quantities too, at one scale).
LONG_FORMAT_WORDS = frozenset(
    {"variable", "var", "indicator", "metric", "measure", "series", "parameter", "statistic"}
    | {"attribute", "concept", "element", "measurement", "quantity"}
)
KIND_WORDS = LONG_FORMAT_WORDS | {"unit", "units", "type", "kind", "item", "stat", "key", "field"}
VALUE_WORDS = frozenset({"value", "values", "val", "obs", "observation", "figure", "reading"})
MIN_RATIO = 200.0
MAX_LABELS = 50
MIN_GROUP_VALUES = 3


@dataclass(frozen=True)
class MixedScale:
    """The measure, the dimension that separates its quantities, and two groups' medians."""

    measure: str
    dimension: str
    high_label: str
    high_median: float
    low_label: str
    low_median: float


def mixed_scales(
    measures: list[ColumnProfile], dimensions: list[ColumnProfile]
) -> dict[str, MixedScale]:
    """Measure name -> why it mixes scales, for the measures that do."""
    found: dict[str, MixedScale] = {}
    for measure in measures:
        values = measure.numbers
        if values is None:
            continue
        valued = bool(set(name_tokens(measure.name)) & VALUE_WORDS)
        for dimension in sorted(dimensions, key=lambda d: d.name):
            if not 2 <= dimension.distinct <= MAX_LABELS:
                continue
            words = set(name_tokens(dimension.name))
            if not (valued or words & KIND_WORDS):
                continue
            long_format = valued and bool(words & LONG_FORMAT_WORDS)
            mixed = _mixed(measure.name, values, dimension, long_format)
            if mixed is not None:
                found[measure.name] = mixed
                break
    return found


def _mixed(
    name: str, values: np.ndarray, dimension: ColumnProfile, long_format: bool
) -> MixedScale | None:
    codes = dimension.codes
    present = np.isfinite(values) & (codes >= 0)
    if not present.any():
        return None
    order = np.argsort(codes[present], kind="stable")
    grouped, magnitudes = codes[present][order], np.abs(values[present][order])
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    ends = np.r_[starts[1:], grouped.shape[0]]
    medians: list[tuple[float, int]] = []
    for start, end in zip(starts, ends, strict=True):
        if end - start >= MIN_GROUP_VALUES:
            medians.append((float(np.median(magnitudes[start:end])), int(grouped[start])))
    positive = [(median, code) for median, code in medians if median > 0]
    if len(positive) < 2:
        return None
    low, high = min(positive), max(positive)
    if high[0] < MIN_RATIO * low[0] and not long_format:
        return None
    labels = labels_of(dimension)
    return MixedScale(
        name, dimension.name, str(labels[high[1]]), high[0], str(labels[low[1]]), low[0]
    )
