"""Pairs of measures that move together (|r| >= 0.7 over >= 30 complete rows), derived pairs out.

A pair is left out when one column is derived from the other: a linear function of it
(|r| >= 0.995, printed as 1.00), nearly so with related names (|r| >= 0.98, a shared name
word), or a product, ratio or sum of it with a third measure (total = price x qty, share =
part / whole x 100).
In a time series (one row per period) two measures that both trend correlate whatever they
are (population and spending both grow): a pair is kept only when its period-to-period
changes move together too (|r| >= 0.5 over the changes, the same sign).
Numbered siblings are left out too: columns whose names differ only in their numbers (V1 and
V5 of a grid of heights, sales_2019 and sales_2020) are one quantity at two places, which
move together by construction.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from analysis_svc.engine.column_profile import ColumnProfile, name_tokens

MIN_ABS_R = 0.7
MIN_PAIRS = 30
MAX_MEASURES = 30
MAX_ITEMS = 20
# |r| >= 0.995 prints as 1.00: the same measure twice (a total and its largest part), no finding.
LINEAR_R = 0.995
RELATED_NAME_R = 0.98
MIN_CHANGES_R = 0.5
DERIVED_SAMPLE = 2_000
DERIVED_MAX_MEASURES = 12
DERIVED_TOLERANCE = 1e-3


def correlations(measures: list[ColumnProfile]) -> list[dict[str, Any]]:
    """Pearson r over pairwise-complete rows, strongest first; worded as association.

    ``measures`` are the measure columns (never identifiers, calendar parts or clock times).
    """
    return correlation_scan(measures)[0]


def correlation_scan(
    measures: list[ColumnProfile], time_order: np.ndarray | None = None
) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    """(the correlations, the pairs (a, b) with a < b and related names where one is a linear
    function of the other: the same measure twice, e.g. a share of a total next to the total).

    ``time_order`` is the row order by time when the table is a time series (one row per
    period): a pair must then also move together from one period to the next.
    """
    measures = sorted((p for p in measures if p.numbers is not None), key=lambda p: p.name)[
        :MAX_MEASURES
    ]
    if len(measures) < 2:
        return [], set()
    derived = derived_pairs(measures)
    linear: set[tuple[str, str]] = set()
    counts, r_matrix = _pearson_matrix([p.numbers for p in measures if p.numbers is not None])
    items: list[dict[str, Any]] = []
    for i in range(len(measures)):
        for j in range(i + 1, len(measures)):
            n, r = int(counts[i, j]), float(r_matrix[i, j])
            if n < MIN_PAIRS or not math.isfinite(r) or abs(r) < MIN_ABS_R:
                continue
            a, b = measures[i].name, measures[j].name
            if abs(r) >= LINEAR_R and _related(a, b):
                linear.add((a, b))
            if (
                (a, b) in derived
                or abs(r) >= LINEAR_R
                or (abs(r) >= RELATED_NAME_R and _related(a, b))
                or _numbered_siblings(a, b)
            ):
                continue
            if time_order is not None and not _changes_agree(
                measures[i].numbers, measures[j].numbers, time_order, r
            ):
                continue
            items.append(_item(a, b, max(-1.0, min(1.0, r)), n))
    items.sort(key=lambda item: (-abs(float(item["r"])), str(item["key"])))
    return items[:MAX_ITEMS], linear


def _changes_agree(a: np.ndarray | None, b: np.ndarray | None, order: np.ndarray, r: float) -> bool:
    """Whether the period-to-period changes of `a` and `b` correlate like their levels do."""
    if a is None or b is None:
        return False
    da, db = np.diff(a[order]), np.diff(b[order])
    both = np.isfinite(da) & np.isfinite(db)
    if int(both.sum()) < MIN_PAIRS:
        return False
    da, db = da[both], db[both]
    if float(da.std()) == 0 or float(db.std()) == 0:
        return False
    changes_r = float(np.corrcoef(da, db)[0, 1])
    return math.isfinite(changes_r) and abs(changes_r) >= MIN_CHANGES_R and changes_r * r > 0


def _pearson_matrix(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(pairs, r) for every pair over rows where both are finite, from one matrix product.

    Each column is centred on its own mean with missing values as 0, so C.T @ C holds the
    pairwise-complete cross products and every column of C sums to 0. For a column j with
    missing values, the sums, squares and counts of the others over the rows where j is
    present are their totals minus what they hold on j's (few) missing rows.
    """
    rows, width = int(columns[0].shape[0]), len(columns)
    centred = np.empty((rows, width))
    counts = np.full(width, float(rows))
    missing_rows: dict[int, np.ndarray] = {}
    for index, values in enumerate(columns):
        present = np.isfinite(values)
        if bool(present.all()):
            np.subtract(values, float(values.mean()), out=centred[:, index])
            continue
        kept = values[present]
        mean = float(kept.mean()) if kept.shape[0] else 0.0
        centred[:, index] = np.where(present, values - mean, 0.0)
        counts[index] = float(kept.shape[0])
        missing_rows[index] = np.flatnonzero(~present)
    with np.errstate(all="ignore"):
        cross = centred.T @ centred
        n = np.repeat(counts[:, None], width, axis=1)  # [i, j]: rows where both are present
        sums = np.zeros((width, width))  # [i, j]: sum of column i over rows where j is present
        squares = np.repeat(np.diag(cross)[:, None], width, axis=1)
        for j, gone in missing_rows.items():
            held = centred[gone]
            present_there = np.column_stack([np.isfinite(c[gone]) for c in columns])
            n[:, j] -= present_there.sum(axis=0)
            sums[:, j] = -held.sum(axis=0)
            squares[:, j] -= (held * held).sum(axis=0)
        n = np.minimum(n, n.T)
        numerator = n * cross - sums * sums.T
        left = np.maximum(n * squares - sums * sums, 0.0)
        denominator = np.sqrt(left * left.T)
        r = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)
    return n, r


def _item(a: str, b: str, r: float, n: int) -> dict[str, Any]:
    strength = "very strong" if abs(r) >= 0.9 else "strong"
    direction = "positive" if r > 0 else "negative"
    return {
        "key": f"correlations.{a}.{b}",
        "a": a,
        "b": b,
        "r": round(r, 4),
        "n": n,
        "strength": strength,
        "direction": direction,
        "statement": (
            f"'{a}' and '{b}' show a {strength} {direction} association "
            f"(r = {r:.2f} over {n} rows); this does not show that one causes the other."
        ),
    }


_NUMBER = re.compile(r"\d+")


def _numbered_siblings(a: str, b: str) -> bool:
    """Whether two names differ only in their numbers ("V1"/"V5", "q1_score"/"q3_score")."""
    return bool(_NUMBER.search(a)) and _NUMBER.sub("#", a.lower()) == _NUMBER.sub("#", b.lower())


def _related(a: str, b: str) -> bool:
    words_a, words_b = set(name_tokens(a)), set(name_tokens(b))
    return bool(words_a & words_b) or a.lower() in b.lower() or b.lower() in a.lower()


def derived_pairs(measures: list[ColumnProfile]) -> set[tuple[str, str]]:
    """Pairs (both orders) where one measure is k * a * b, k * a / b or a + b of the others.

    Checked on an evenly spaced sample of rows where all three are finite: the ratio of the
    column to the combination must be constant within 0.1 % (relative spread).
    """
    usable = [p for p in measures if p.numbers is not None][:DERIVED_MAX_MEASURES]
    if len(usable) < 3:
        return set()
    rows = int(usable[0].numbers.shape[0])  # type: ignore[union-attr]
    sample = np.unique(np.linspace(0, rows - 1, min(rows, DERIVED_SAMPLE)).astype(np.int64))
    values = np.vstack([p.numbers[sample] for p in usable])  # type: ignore[index]
    found: set[tuple[str, str]] = set()
    with np.errstate(all="ignore"):
        for c, a, b in _plausible_triples(values):
            if _combination_of(values[c], values[a], values[b]):
                names = (usable[c].name, usable[a].name, usable[b].name)
                for other in names[1:]:
                    found.add((names[0], other))
                    found.add((other, names[0]))
    return found


def _plausible_triples(values: np.ndarray) -> list[tuple[int, int, int]]:
    """(c, a, b) whose ratio c / combination(a, b) is constant on the first complete rows:
    one array operation per target instead of a check per triple."""
    complete = np.isfinite(values).all(axis=0) & (values != 0).all(axis=0)
    head = values[:, complete][:, :MIN_PAIRS]  # measures x rows
    width = values.shape[0]
    if head.shape[1] < MIN_PAIRS:
        return []
    a, b = head[:, None, :], head[None, :, :]
    combos = (a * b, a / b, b / a, a + b)  # each measures x measures x rows
    triples: set[tuple[int, int, int]] = set()
    for c in range(width):
        for combined in combos:
            ratio = head[c][None, None, :] / combined
            low, high = ratio.min(axis=2), ratio.max(axis=2)
            scale = np.maximum(np.abs(low), np.abs(high))
            hit = (scale > 0) & (high - low <= DERIVED_TOLERANCE * scale)
            for i, j in zip(*np.nonzero(hit), strict=True):
                first, second = int(min(i, j)), int(max(i, j))
                if c not in (first, second):
                    triples.add((c, first, second))
    return sorted(triples)


def _combination_of(target: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    mask = np.isfinite(target) & np.isfinite(a) & np.isfinite(b) & (target != 0)
    if int(mask.sum()) < MIN_PAIRS:
        return False
    t, x, y = target[mask], a[mask], b[mask]
    for combined in (x * y, x / y, y / x, x + y):
        # A cheap look at the first rows rules most combinations out before the full check.
        head = t[:MIN_PAIRS] / combined[:MIN_PAIRS]
        if not _constant(head[np.isfinite(head)]):
            continue
        ratio = t / combined
        ratio = ratio[np.isfinite(ratio)]
        if ratio.shape[0] >= MIN_PAIRS and _constant(ratio):
            return True
    return False


def _constant(ratio: np.ndarray) -> bool:
    """All ratios equal within DERIVED_TOLERANCE (relative), and not zero."""
    if ratio.shape[0] == 0:
        return False
    low, high = float(ratio.min()), float(ratio.max())
    scale = max(abs(low), abs(high))
    return scale > 0 and high - low <= DERIVED_TOLERANCE * scale
