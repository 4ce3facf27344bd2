"""Shared helpers of the detectors: display rounding, the normal tail, polarity by name."""

from __future__ import annotations

import math

from analysis_svc.engine.column_profile import name_tokens

_BAD_WHEN_UP = frozenset(
    {"cost", "costs", "delay", "delays", "unemployment", "unemp", "churn", "defects", "errors"}
    | {"complaints", "loss", "losses", "deaths", "cases", "expense", "expenses", "debt"}
    | {"returns", "returned", "late", "crime", "crimes", "accidents", "fatalities"}
)
_GOOD_WHEN_UP = frozenset(
    {"revenue", "revenues", "sales", "profit", "profits", "income", "passengers", "customers"}
    | {"users", "orders", "visits", "conversions", "survived", "survival", "satisfaction"}
)


def sig(value: float, digits: int = 9) -> float:
    """A finite float rounded to ``digits`` significant digits: float sums differ with row
    order in the last bits, never in the 9th digit (display rounding is the phrasing's job)."""
    if not math.isfinite(value) or value == 0:
        return 0.0 if value == 0 else value
    return float(f"{value:.{digits}g}")


def share(value: float) -> float:
    return round(value, 4)


def pct(value: float) -> float:
    return round(value, 2)


def score(value: float) -> float:
    """A score clipped to [0, 1], 4 decimals."""
    return round(min(1.0, max(0.0, value)), 4) if math.isfinite(value) else 0.0


def normal_p_two_sided(z: float) -> float:
    """Two-sided p-value of a standard-normal statistic."""
    return math.erfc(abs(z) / math.sqrt(2.0)) if math.isfinite(z) else 0.0


def polarity(measure: str, rising: bool) -> str | None:
    """positive / negative when the measure's name says which direction is good, else None."""
    words = set(name_tokens(measure))
    if words & _BAD_WHEN_UP:
        return "negative" if rising else "positive"
    if words & _GOOD_WHEN_UP:
        return "positive" if rising else "negative"
    return None
