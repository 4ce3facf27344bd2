"""Pairs of measures that move together (|r| >= 0.7 over >= 30 complete rows), derived pairs out.

A pair is left out when one column is derived from the other: a linear function of it
(|r| >= 0.999), nearly so with related names (|r| >= 0.98, a shared name word), or a product,
ratio or sum of it with a third measure (total = price x qty, share = part / whole x 100).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from analysis_svc.engine.column_profile import ColumnProfile, name_tokens

_LOGGER = logging.getLogger(__name__)

MIN_ABS_R = 0.7
MIN_PAIRS = 30
MAX_MEASURES = 30
MAX_ITEMS = 20
LINEAR_R = 0.999
RELATED_NAME_R = 0.98
DERIVED_SAMPLE = 2_000
DERIVED_MAX_MEASURES = 12
DERIVED_TOLERANCE = 1e-3


def correlations(measures: list[ColumnProfile]) -> list[dict[str, Any]]:
    """Pearson r over pairwise-complete rows, strongest first; worded as association.

    ``measures`` are the measure columns (never identifiers, calendar parts or clock times).
    """
    measures = sorted((p for p in measures if p.numbers is not None), key=lambda p: p.name)[
        :MAX_MEASURES
    ]
    if len(measures) < 2:
        return []
    derived = derived_pairs(measures)
    rows = int(measures[0].numbers.shape[0])  # type: ignore[union-attr]
    columns = [_Column(p.numbers) for p in measures if p.numbers is not None]
    items: list[dict[str, Any]] = []
    with np.errstate(all="ignore"):
        for i in range(len(columns)):
            for j in range(i + 1, len(columns)):
                n, r = _pair(columns[i], columns[j], rows)
                if n < MIN_PAIRS or r is None or abs(r) < MIN_ABS_R:
                    continue
                a, b = measures[i].name, measures[j].name
                if (
                    (a, b) in derived
                    or abs(r) >= LINEAR_R
                    or (abs(r) >= RELATED_NAME_R and _related(a, b))
                ):
                    continue
                items.append(_item(measures[i].name, measures[j].name, r, n))
    items.sort(key=lambda item: (-abs(float(item["r"])), str(item["key"])))
    return items[:MAX_ITEMS]


class _Column:
    """A measure centred on its own mean, missing values as 0, with its presence mask."""

    def __init__(self, values: np.ndarray) -> None:
        present = np.isfinite(values)
        self.complete = bool(present.all())
        self.mask = present.astype("float64")
        kept = values if self.complete else values[present]
        mean = float(kept.mean()) if kept.shape[0] else 0.0
        self.centred = values - mean if self.complete else np.where(present, values - mean, 0.0)
        self.squared = self.centred * self.centred
        self.squares = float(self.squared.sum())


def _pair(a: _Column, b: _Column, rows: int) -> tuple[int, float | None]:
    """(pairs, r) over rows where both are present, from dot products only (no copies)."""
    if a.complete and b.complete:
        n = float(rows)
        sum_a = sum_b = 0.0
        sum_aa, sum_bb = a.squares, b.squares
    else:
        n = float(np.dot(a.mask, b.mask))
        sum_a, sum_b = float(np.dot(a.centred, b.mask)), float(np.dot(b.centred, a.mask))
        sum_aa, sum_bb = float(np.dot(a.squared, b.mask)), float(np.dot(b.squared, a.mask))
    if n < MIN_PAIRS:
        return int(n), None
    sum_ab = float(np.dot(a.centred, b.centred))
    numerator = n * sum_ab - sum_a * sum_b
    denominator = math.sqrt(max(n * sum_aa - sum_a**2, 0.0) * max(n * sum_bb - sum_b**2, 0.0))
    if denominator == 0 or not math.isfinite(denominator):
        return int(n), None
    return int(n), max(-1.0, min(1.0, numerator / denominator))


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
        for c in range(len(usable)):
            for a in range(len(usable)):
                for b in range(a, len(usable)):
                    if c in (a, b):
                        continue
                    if _combination_of(values[c], values[a], values[b]):
                        names = (usable[c].name, usable[a].name, usable[b].name)
                        for other in names[1:]:
                            found.add((names[0], other))
                            found.add((other, names[0]))
    return found


def _combination_of(target: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    mask = np.isfinite(target) & np.isfinite(a) & np.isfinite(b) & (target != 0)
    if int(mask.sum()) < MIN_PAIRS:
        return False
    t, x, y = target[mask], a[mask], b[mask]
    for combined in (x * y, x / y, y / x, x + y):
        ratio = t / combined
        ratio = ratio[np.isfinite(ratio)]
        if ratio.shape[0] < MIN_PAIRS:
            continue
        centre = float(np.median(ratio))
        if centre != 0 and float(np.max(np.abs(ratio - centre))) <= DERIVED_TOLERANCE * abs(centre):
            return True
    return False
