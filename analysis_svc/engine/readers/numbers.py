"""Locale-aware conversion of number-looking text (thousands separators, decimal commas)."""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Plain numbers in either notation; used on samples to decide a file's decimal separator.
# No pattern here may backtrack on user data: every repetition is followed by a character it
# cannot match (e.g. `\d+(?:\.\d*)?`, never `\d+\.?\d*`, which tries every split of a digit run
# ending in a letter: quadratic), and no field longer than MAX_NUMBER_CHARS is matched at all.
DOT_DECIMAL = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d{1,3}(?:,\d{3})+(?:\.\d+)?)(?:[eE][-+]?\d+)?")
COMMA_DECIMAL = re.compile(r"[-+]?(?:\d+,\d*|,\d+|\d{1,3}(?:\.\d{3})+(?:,\d+)?)")
AMBIGUOUS = re.compile(r"[-+]?\d{1,3}[.,]\d{3}")
PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
# A longer field is not a number (float64 holds 17 significant digits; grouped and decorated
# text stays far below this).
MAX_NUMBER_CHARS = 64
_INTEGER = r"[-+]?\d+"

_CURRENCY_AND_SPACES = "[\\s\u00a0\u202f$€£¥₹]"
_DECORATION = re.compile(_CURRENCY_AND_SPACES)
_SAMPLE = 200


def decimal_evidence(fields: list[str]) -> tuple[int, int]:
    """(dot-decimal, comma-decimal) votes from unambiguous number-looking fields."""
    dot = comma = 0
    for field in fields:
        if len(field) > MAX_NUMBER_CHARS:
            continue
        text = field.strip()
        if not text or AMBIGUOUS.fullmatch(text):
            continue
        if DOT_DECIMAL.fullmatch(text):
            dot += 1
        elif COMMA_DECIMAL.fullmatch(text):
            comma += 1
    return dot, comma


def text_to_numbers(
    series: pd.Series, decimal: str, *, lenient: bool = False, max_failed: float = 0.05
) -> tuple[pd.Series | None, int]:
    """Parse a text column as float64 numbers written with ``decimal`` as decimal separator.

    Strict mode (the reader's locale normalisation) accepts digits, sign, the thousands
    separator and the decimal separator only, and every non-missing value must parse.
    Lenient mode (the profile's "numbers stored as text") also strips spaces, currency
    symbols and a trailing ``%`` and returns the converted column when at least 95 % parse,
    the rest becoming missing (``max_failed`` sets that share). Returns (numbers or None,
    count of values that did not parse).
    """
    values = series.dropna()
    total = int(values.shape[0])
    if total == 0:
        return None, 0
    sample = [str(item) for item in values.iloc[:_SAMPLE].tolist()]
    if not any(_looks_numeric(item, decimal, lenient) for item in sample):
        return None, total
    if not lenient and not all(_looks_numeric(item, decimal, lenient) for item in sample):
        return None, total
    arrow = pa.array(series.astype("str").to_numpy(dtype=object, na_value=None), type=pa.string())
    cleaned = _clean(arrow, decimal, lenient)
    numbers = pd.Series(
        pc.cast(cleaned, pa.float64(), safe=False).to_numpy(zero_copy_only=False),
        index=series.index,
        name=series.name,
    )
    failed = int((numbers.isna() & series.notna()).sum())
    if (not lenient and failed) or (lenient and failed > max_failed * total):
        return None, failed
    return numbers, failed


def strip_decorations(text: str) -> str:
    """Without spaces, currency symbols and a trailing percent sign."""
    return _DECORATION.sub("", text.strip()).removesuffix("%")


def short_enough(text: str) -> bool:
    """True when `text` is short enough to be a number (longer fields are never matched)."""
    return len(text) <= MAX_NUMBER_CHARS


def _looks_numeric(text: str, decimal: str, lenient: bool) -> bool:
    if not short_enough(text):
        return False
    item = text.strip()
    if lenient:
        item = strip_decorations(item)
    return _NUMBER_PATTERNS["," if decimal == "," else "."].fullmatch(item) is not None


def _number_pattern(decimal: str) -> str:
    if decimal == ",":
        return f"(?:{COMMA_DECIMAL.pattern}|{_INTEGER})"
    return f"(?:{DOT_DECIMAL.pattern}|{PLAIN_NUMBER.pattern})"


# Compiled once: a sample is matched value by value.
_NUMBER_PATTERNS = {decimal: re.compile(_number_pattern(decimal)) for decimal in ",."}


def _clean(arrow: pa.Array, decimal: str, lenient: bool) -> pa.Array:
    """Normalise to a plain dot-decimal string; values that are not numbers become null."""
    thousands = "." if decimal == "," else ","
    text = pc.utf8_trim_whitespace(arrow)
    if lenient:
        text = pc.replace_substring_regex(text, _CURRENCY_AND_SPACES, "")
        text = pc.replace_substring_regex(text, "%$", "")
    # Arrow's regex engine (RE2) is linear; the length cap keeps long fields out regardless.
    valid = pc.and_(
        pc.less_equal(pc.utf8_length(text), MAX_NUMBER_CHARS),
        pc.match_substring_regex(text, f"^{_number_pattern(decimal)}$"),
    )
    text = pc.if_else(valid, text, pa.scalar(None, pa.string()))
    text = pc.replace_substring(text, thousands, "")
    if decimal == ",":
        text = pc.replace_substring(text, ",", ".")
    return text
