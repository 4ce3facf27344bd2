"""Segment comparison (a measure by a dimension) and concentration of an additive measure.

segment: for each (measure, dimension with 2-50 values), the segment (>= MIN_SEGMENT_ROWS rows,
and >= 1 % of rows up to 100) whose mean differs most from the rest of the rows, by effect size
d = (segment mean - rest mean) / std of the measure. significance = 1 - p of the z statistic
d / sqrt(1/n_segment + 1/n_rest), Bonferroni over the dimension's segments.
score = min(1, |d| / 1.5) x significance x min(1, rows / 30) x impact x coverage, where impact =
sqrt(min(1, |segment mean / rest mean - 1| / 0.5)) when both means are positive (a segment 4 %
above the rest is not a finding however consistent), else 1, and coverage =
sqrt(min(1, segment's share of the rows / 5 %)): the one airline of 0.2 % of the flights that
flies to Hawaii has the longest air time, a fact about few rows, not the table's finding.

concentration: for each (additive non-negative measure, dimension with 3-1000 values), the
share of the total held by the top value and the top 3. score = excess^0.75, where excess =
(top share - its share of the rows) / (1 - its share of the rows): 0 when the top value holds
no more than its rows would (the largest group is largest: no finding), 1 when it holds all.
It needs a top share at least MIN_CONCENTRATION_LIFT x its share of the rows.
"""

from __future__ import annotations

import math

import numpy as np

from analysis_svc.engine.column_profile import ColumnProfile, name_tokens
from analysis_svc.engine.insights.common import normal_p_two_sided, polarity, score, share, sig
from analysis_svc.engine.kpis.columns import labels_of
from datapilot_runtime.report.insights import ConcentrationInsight, SegmentInsight

SEGMENT_MAX_DISTINCT = 50
CONCENTRATION_MIN_DISTINCT = 2
CONCENTRATION_MAX_DISTINCT = 1000
MIN_SEGMENT_ROWS = 10
MIN_SEGMENT_SHARE = 0.01
MIN_SEGMENT_ROWS_CAP = 100
MIN_EFFECT = 0.2
FULL_EFFECT = 1.5
FULL_ROWS = 30
FULL_RELATIVE = 0.5
FULL_COVERAGE = 0.05
MIN_CONCENTRATION_SCORE = 0.05
MIN_CONCENTRATION_LIFT = 1.25
TOP_K = 3


class GroupSums:
    """Per-segment sums of a measure by a dimension, computed once for segments and shares."""

    def __init__(self) -> None:
        self._codes: dict[str, np.ndarray] = {}
        self._sums: dict[tuple[str, str], np.ndarray] = {}
        self._rows: dict[str, np.ndarray] = {}

    def codes(self, dimension: ColumnProfile) -> np.ndarray:
        """Row codes with rows without a label in an extra bin (dropped): no per-pair masks."""
        if dimension.name not in self._codes:
            codes = dimension.codes
            if dimension.missing:
                codes = np.where(codes >= 0, codes, dimension.distinct)
            self._codes[dimension.name] = codes
        return self._codes[dimension.name]

    def sums(self, dimension: ColumnProfile, measure: str, weights: np.ndarray) -> np.ndarray:
        """Sum of ``weights`` (missing values as 0) per value of ``dimension``."""
        key = (dimension.name, measure)
        if key not in self._sums:
            size = dimension.distinct
            codes = self.codes(dimension)
            self._sums[key] = np.bincount(codes, weights=weights, minlength=size + 1)[:size]
        return self._sums[key]

    def rows(self, dimension: ColumnProfile) -> np.ndarray:
        """The number of rows per value of ``dimension`` (the profile's counts, as floats)."""
        if dimension.name not in self._rows:
            self._rows[dimension.name] = dimension.counts.astype("float64")
        return self._rows[dimension.name]


def segment_insights(
    measures: list[tuple[ColumnProfile, np.ndarray]],
    dimensions: list[ColumnProfile],
    group_sums: GroupSums | None = None,
    spreads: dict[str, float] | None = None,
    label_names: dict[str, dict[str, str]] | None = None,
) -> list[SegmentInsight]:
    """One candidate per (measure, dimension) pair whose most distinct segment stands out.

    ``measures`` pair a profile with its per-row values (float, NaN = missing): binary
    dimensions (survived yes/no) enter as 0/1 values, their mean being a rate.
    """
    found: list[SegmentInsight] = []
    cache = group_sums or GroupSums()
    known = spreads or {}
    names = label_names or {}
    prepared = [
        # A measure's own numbers come with the masks its profile holds already.
        _Values(m.name, values, known.get(m.name), m if values is m.numbers else None)
        for m, values in measures
    ]
    for dimension in dimensions:
        if not 2 <= dimension.distinct <= SEGMENT_MAX_DISTINCT:
            continue
        labels = labels_of(dimension)
        labels = _named(labels, names.get(dimension.name))
        codes = cache.codes(dimension)
        rows_all = cache.rows(dimension)
        # A dimension whose values name a measure column ("winner" = the candidate column with
        # the most votes) is derived from it: "Coderre's votes are highest where Coderre won".
        named = {str(label).strip().casefold() for label in labels}
        for measure in prepared:
            if measure.name == dimension.name or measure.name.strip().casefold() in named:
                continue
            sums = cache.sums(dimension, measure.name, measure.weights)
            item = _segment(measure, dimension.name, codes, labels, rows_all, sums)
            if item is not None and not _binned(measure, dimension, codes, labels, item.segment):
                found.append(item)
    # Two yes/no columns compared both ways say one thing: keep the stronger direction.
    best: dict[frozenset[str], SegmentInsight] = {}
    for item in found:
        pair = frozenset({str(item.measure), str(item.dimension)})
        if pair not in best or item.score > best[pair].score:
            best[pair] = item
    return [
        item for item in found if best[frozenset({str(item.measure), str(item.dimension)})] is item
    ]


def _binned(
    values: _Values, dimension: ColumnProfile, codes: np.ndarray, labels: np.ndarray, segment: str
) -> bool:
    """Whether the dimension is a binning of the measure ("AgeGroup 65+" has the highest Age):
    named after it, and the segment's values do not overlap the rest's. Either alone is no
    proof: iris species separate on petal length, and "age_group" may be a cohort."""
    measure_words = set(name_tokens(values.name))
    if not measure_words or not measure_words <= set(name_tokens(dimension.name)):
        return False
    position = int(np.flatnonzero(labels.astype(str) == segment)[0])
    present = np.ones(codes.shape[0], dtype=bool) if values.present is None else values.present
    inside = values.weights[present & (codes == position)]
    outside = values.weights[present & (codes != position) & (codes < labels.shape[0])]
    if not inside.shape[0] or not outside.shape[0]:
        return False
    return bool(inside.min() > outside.max() or inside.max() < outside.min())


def _named(labels: np.ndarray, mapping: dict[str, str] | None) -> np.ndarray:
    """Labels through ``mapping`` (month numbers read as month names), others unchanged."""
    if not mapping:
        return labels
    return np.array([mapping.get(str(label), str(label)) for label in labels], dtype=object)


class _Values:
    """A measure's values with missing as 0, their squares, and which rows are present."""

    def __init__(
        self,
        name: str,
        values: np.ndarray,
        std: float | None = None,
        profile: ColumnProfile | None = None,
    ) -> None:
        self.name = name
        present = np.isfinite(values) if profile is None else profile.finite
        self.complete = bool(present.all())
        self.present = None if self.complete else present
        self.absent = None if self.complete else np.flatnonzero(~present)
        if profile is not None:
            self.weights = profile.filled
        else:
            self.weights = values if self.complete else np.where(present, values, 0.0)
        self.binary = bool(np.isin(self.weights, (0.0, 1.0)).all())
        if std is not None:  # the column report's sample std, already computed
            self.std = std
            return
        count = values.shape[0] if self.complete else int(present.sum())
        mean = float(self.weights.sum()) / max(count, 1)
        spread = float(np.dot(self.weights, self.weights)) - count * mean * mean
        self.std = math.sqrt(max(spread, 0.0) / (count - 1)) if count > 1 else 0.0


def _segment(
    values: _Values,
    dimension: str,
    codes: np.ndarray,
    labels: np.ndarray,
    rows_all: np.ndarray,
    sums: np.ndarray,
) -> SegmentInsight | None:
    measure = values.name
    size = labels.shape[0]
    bins = size + 1
    # Missing values weigh 0 in the sums and are not counted as rows.
    rows = rows_all
    if values.absent is not None:
        # The rows without a value, few as a rule, are taken off the segment's rows.
        rows = rows_all - np.bincount(codes[values.absent], minlength=bins)[:size]
    total_rows = float(rows.sum())
    minimum = max(MIN_SEGMENT_ROWS, min(MIN_SEGMENT_ROWS_CAP, MIN_SEGMENT_SHARE * total_rows))
    eligible = (rows >= minimum) & (total_rows - rows >= minimum)
    if (int(eligible.sum()) < 2 and size > 2) or not eligible.any():
        return None
    with np.errstate(all="ignore"):
        mean = sums / rows
        rest_rows = total_rows - rows
        rest_mean = (sums.sum() - sums) / rest_rows
        # The measure's own spread scales every segment: one pass per measure, not per pair.
        effect = (mean - rest_mean) / values.std
        z = effect / np.sqrt(1 / rows + 1 / rest_rows)
    effect = np.where(eligible & np.isfinite(effect), effect, 0.0)
    if not np.any(effect):
        return None
    # The most distinct segment; ties by label so the choice never depends on row order.
    order = np.lexsort((labels.astype(str), -np.abs(np.round(effect, 9))))
    best = int(order[0])
    d = float(effect[best])
    if abs(d) < MIN_EFFECT:
        return None
    # A 2-value dimension compares its two values: report the high one.
    if size == 2 or (int(eligible.sum()) == 2 and d < 0):
        pair = np.flatnonzero(eligible)
        if d < 0 and pair.shape[0] == 2:
            best = int(pair[0] if pair[1] == best else pair[1])
            d = float(effect[best])
    significance = 1.0 - min(1.0, normal_p_two_sided(float(z[best])) * int(eligible.sum()))
    value, rest = float(mean[best]), float(rest_mean[best])
    if values.binary and (value in (0.0, 1.0) or rest in (0.0, 1.0)):
        return None  # "100% against 34%" between yes/no columns is a rule of the data, no tendency
    ratio = value / rest if rest != 0 and value / rest > 0 else None
    positive = value > 0 and rest > 0 and ratio is not None and math.isfinite(ratio)
    impact = math.sqrt(min(1.0, abs(ratio - 1) / FULL_RELATIVE)) if positive and ratio else 1.0
    coverage = math.sqrt(min(1.0, float(rows[best]) / total_rows / FULL_COVERAGE))
    key = f"segment.{measure}.{dimension}"
    return SegmentInsight(
        key=key,
        score=score(
            min(1.0, abs(d) / FULL_EFFECT)
            * significance
            * min(1.0, rows[best] / FULL_ROWS)
            * impact
            * coverage
        ),
        measure=measure,
        dimension=dimension,
        polarity=polarity(measure, d > 0),
        evidence=[f"candidates.{key}", f"columns.{dimension}.topValues"],
        aggregation="mean",
        segment=str(labels[best]),
        direction="high" if d > 0 else "low",
        segment_value=sig(value),
        rest_value=sig(rest),
        ratio=None if ratio is None or not math.isfinite(ratio) else sig(ratio, 4),
        segment_rows=int(rows[best]),
        rest_rows=int(total_rows - rows[best]),
        effect_size=sig(d, 4),
        change_pct=sig((ratio - 1) * 100, 4) if positive and ratio else None,
        rest_segment=str(labels[1 - best]) if size == 2 else None,
    )


def concentration_insights(
    measures: list[ColumnProfile],
    dimensions: list[ColumnProfile],
    group_sums: GroupSums | None = None,
    label_names: dict[str, dict[str, str]] | None = None,
    min_lift: float = MIN_CONCENTRATION_LIFT,
) -> list[ConcentrationInsight]:
    """Top-1 / top-3 shares of each additive, non-negative measure by each dimension; the top
    share must be ``min_lift`` x its share of the rows."""
    found: list[ConcentrationInsight] = []
    cache = group_sums or GroupSums()
    weighted: list[tuple[str, np.ndarray]] = []
    for measure in measures:
        if measure.numbers is None:
            continue
        weights = measure.filled  # missing and infinite values as 0
        if bool((weights < 0).any()):
            continue  # shares of a total with negative parts mislead
        weighted.append((measure.name, weights))
    for dimension in dimensions:
        if not CONCENTRATION_MIN_DISTINCT <= dimension.distinct <= CONCENTRATION_MAX_DISTINCT:
            continue
        labels = _named(labels_of(dimension), (label_names or {}).get(dimension.name))
        for name, weights in weighted:
            if name == dimension.name:
                continue
            totals = cache.sums(dimension, name, weights)
            rows = cache.rows(dimension)
            item = _concentration(name, totals, rows, dimension.name, labels, min_lift)
            if item is not None:
                found.append(item)
    return found


def _concentration(
    measure: str,
    totals: np.ndarray,
    rows: np.ndarray,
    dimension: str,
    labels: np.ndarray,
    min_lift: float,
) -> ConcentrationInsight | None:
    grand = float(totals.sum())
    if grand <= 0:
        return None
    rounded = np.round(totals / grand, 9)
    order = np.lexsort((labels.astype(str), -rounded))
    ranked = totals[order] / grand
    segments = int((totals > 0).sum())
    if segments < CONCENTRATION_MIN_DISTINCT:
        return None
    top_share = float(ranked[0])
    k = min(TOP_K, segments - 1)
    labelled = float(rows.sum())
    rows_share = float(rows[order[0]]) / labelled if labelled > 0 else 1.0
    if rows_share >= 1.0 or top_share < min_lift * rows_share:
        return None
    excess = (top_share - rows_share) / (1.0 - rows_share)
    value = score(max(0.0, excess) ** 0.75)
    if value < MIN_CONCENTRATION_SCORE:
        return None
    reach = int(np.searchsorted(np.cumsum(ranked), 0.8 - 1e-12, "left")) + 1
    key = f"concentration.{measure}.{dimension}"
    return ConcentrationInsight(
        key=key,
        score=value,
        measure=measure,
        dimension=dimension,
        evidence=[f"candidates.{key}", f"columns.{measure}.numeric.sum"],
        top=str(labels[order[0]]),
        top_value=sig(float(totals[order[0]])),
        top_share=share(top_share),
        top_rows_share=share(rows_share),
        top_k=k,
        top_k_share=share(float(ranked[:k].sum())),
        segments=segments,
        values_for_80_pct=min(reach, segments),
    )
