"""The record every benchmark returns, and percentile helpers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One measured figure; `ratio` is value / baseline when a baseline was measured."""

    id: str
    what: str
    value: float
    unit: str
    target: str
    met: bool | None = None
    baseline: float | None = None
    baseline_what: str = ""
    # Peak RSS (VmHWM) of the analysis child that computed a report, for the memory column.
    peak_rss_mib: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass(frozen=True)
class BenchContext:
    """Where a benchmark may write its files."""

    work_dir: Path


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]
