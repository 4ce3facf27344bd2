"""English month and weekday names, shared by the engine (roles) and the fallback's titles."""

from __future__ import annotations

MONTH_NAMES = ["january", "february", "march", "april", "may", "june", "july", "august"]
MONTH_NAMES += ["september", "october", "november", "december"]
WEEKDAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def is_calendar_name(label: str) -> bool:
    """A month or weekday, written out or by its first three letters ("May", "jul", "Mon")."""
    word = label.strip().rstrip(".").lower()
    if len(word) < 3:
        return False
    return any(
        name.startswith(word) and (word == name or len(word) == 3)
        for name in (*MONTH_NAMES, *WEEKDAY_NAMES)
    )
