"""Pairs of numeric measures that move together (|r| >= 0.7 over >= 30 complete rows)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis_svc.engine.column_profile import ColumnProfile

MIN_ABS_R = 0.7
MIN_PAIRS = 30
MAX_MEASURES = 30
MAX_ITEMS = 20


def correlations(profiles: list[ColumnProfile]) -> list[dict[str, Any]]:
    """Pearson r over pairwise-complete rows, strongest first; worded as association."""
    measures = [p for p in profiles if p.kind == "numeric" and p.numbers is not None]
    measures = measures[:MAX_MEASURES]
    if len(measures) < 2:
        return []
    rows = int(measures[0].numbers.shape[0])  # type: ignore[union-attr]
    columns = [_Column(p.numbers) for p in measures if p.numbers is not None]
    items: list[dict[str, Any]] = []
    with np.errstate(all="ignore"):
        for i in range(len(columns)):
            for j in range(i + 1, len(columns)):
                n, r = _pair(columns[i], columns[j], rows)
                if n < MIN_PAIRS or r is None or abs(r) < MIN_ABS_R:
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
