"""Compute a deterministic, JSON-ready KPI report (dataset and per-column profile) for a Table."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pandas.tseries.api import guess_datetime_format

from analysis_svc.table_reader import Table

SCHEMA_VERSION = "1.0"

_TOP_VALUES_LIMIT = 10
_ID_MIN_ROWS = 20
_DATE_MIN_SHARE = 0.95
_TEXT_MIN_MEAN_LENGTH = 50
_MAX_EXACT_INT_FLOAT = 2.0**53
_BOOLEAN_TOKENS = frozenset({"true", "false", "yes", "no", "0", "1"})
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S"
# A string is only tried as a date when it carries a year-like part and is not a plain
# number; this keeps "12", "May" or "10:30" (which dateutil would complete with today's
# date) from turning a column into dates and keeps the report independent of the clock.
_DATE_LIKE = r"\d{4}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2}"
_PLAIN_NUMBER = r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*"

ColumnReport = dict[str, Any]


def compute_report(table: Table) -> dict[str, Any]:
    """Return the KPI report for ``table``: schema version, dataset totals, per-column profile."""
    frame = table.frame
    rows = int(frame.shape[0])
    columns = [
        _column_report(str(frame.columns[index]), _normalise(frame.iloc[:, index]), rows)
        for index in range(int(frame.shape[1]))
    ]
    return {
        "schemaVersion": SCHEMA_VERSION,
        "dataset": _dataset_report(table, columns),
        "columns": columns,
    }


# --------------------------------------------------------------------------- dataset


def _dataset_report(table: Table, columns: list[ColumnReport]) -> dict[str, Any]:
    frame = table.frame
    rows, width = int(frame.shape[0]), int(frame.shape[1])
    missing_cells = sum(int(column["missing"]) for column in columns)
    duplicates = int(frame.duplicated().sum()) if rows and width else 0
    return {
        "format": str(table.source_format),
        "rows": rows,
        "columns": width,
        "missingCells": missing_cells,
        "missingCellsPct": _percent(missing_cells, rows * width),
        "duplicateRows": duplicates,
    }


def _percent(part: int, whole: int) -> float:
    return 0.0 if whole == 0 else round(100.0 * part / whole, 2)


# --------------------------------------------------------------------------- columns


def _normalise(series: pd.Series) -> pd.Series:
    """Treat empty / whitespace-only strings in text columns as missing."""
    if not (ptypes.is_object_dtype(series.dtype) or isinstance(series.dtype, pd.StringDtype)):
        return series
    try:
        blank = series.str.strip().eq("")
    except AttributeError:  # object column without any string values
        return series
    return series.mask(blank.fillna(False).astype(bool))


def _column_report(name: str, series: pd.Series, rows: int) -> ColumnReport:
    values = series.dropna()
    missing = rows - int(values.shape[0])
    distinct = int(values.nunique())
    kind, dates = _classify(values, name, rows, distinct)
    report: ColumnReport = {
        "name": name,
        "type": kind,
        "missing": missing,
        "missingPct": _percent(missing, rows),
        "distinct": distinct,
    }
    if kind == "numeric":
        report["numeric"] = _numeric_stats(values)
    elif kind in ("categorical", "boolean"):
        report["topValues"] = _top_values(values)
    elif kind == "datetime" and dates is not None:
        report["datetime"] = _datetime_stats(dates)
    return report


def _classify(
    values: pd.Series, name: str, rows: int, distinct: int
) -> tuple[str, pd.Series | None]:
    """Return the column type and, for date columns, the parsed non-missing timestamps."""
    if values.shape[0] == 0:
        return "empty", None
    if distinct == 1:
        return "constant", None
    if _is_boolean(values, distinct):
        return "boolean", None
    if ptypes.is_datetime64_any_dtype(values.dtype):
        return "datetime", values
    if ptypes.is_numeric_dtype(values.dtype):
        is_id = _is_numeric_id(values, name, rows, distinct)
        return ("id" if is_id else "numeric"), None
    return _classify_strings(values, rows, distinct)


def _is_boolean(values: pd.Series, distinct: int) -> bool:
    if ptypes.is_bool_dtype(values.dtype):
        return True
    if distinct != 2 or ptypes.is_datetime64_any_dtype(values.dtype):
        return False
    tokens = _display_strings(values).str.strip().str.lower()
    return bool(tokens.isin(_BOOLEAN_TOKENS).all())


def _is_numeric_id(values: pd.Series, name: str, rows: int, distinct: int) -> bool:
    return (
        rows >= _ID_MIN_ROWS
        and distinct == int(values.shape[0])
        and _name_looks_like_id(name)
        and _is_integer_valued(values)
    )


def _name_looks_like_id(name: str) -> bool:
    lowered = name.strip().lower()
    return lowered == "id" or lowered.endswith(("_id", "id")) or lowered.startswith("id_")


def _is_integer_valued(values: pd.Series) -> bool:
    if ptypes.is_integer_dtype(values.dtype):
        return True
    numbers = values.to_numpy(dtype="float64")
    return bool(np.isfinite(numbers).all() and (np.mod(numbers, 1.0) == 0.0).all())


def _classify_strings(values: pd.Series, rows: int, distinct: int) -> tuple[str, pd.Series | None]:
    text = values.astype(str)
    dates = _parse_dates(text)
    if dates is not None:
        return "datetime", dates
    if distinct == int(values.shape[0]) and rows >= _ID_MIN_ROWS:
        return "id", None
    if float(text.str.len().mean()) > _TEXT_MIN_MEAN_LENGTH:
        return "text", None
    return "categorical", None


def _parse_dates(text: pd.Series) -> pd.Series | None:
    """Parse strings as timestamps (UTC) if at least 95% of them are dates, else None."""
    total = int(text.shape[0])
    eligible = text.str.contains(_DATE_LIKE, regex=True) & ~text.str.fullmatch(_PLAIN_NUMBER)
    if int(eligible.sum()) < _DATE_MIN_SHARE * total:
        return None
    counts = text[eligible].value_counts()
    uniques = pd.Series(counts.index.astype(object), index=counts.index)
    parsed = _best_date_parse(uniques, counts, str(text[eligible].iloc[0]))
    if int(counts[parsed.notna()].sum()) < _DATE_MIN_SHARE * total:
        return None
    return text.map(parsed)


def _best_date_parse(uniques: pd.Series, counts: pd.Series, example: str) -> pd.Series:
    """Parse with one consistent format when possible (fast, no day/month flip-flopping).

    Tries ISO 8601 and the format guessed from ``example`` (month-first, then day-first)
    and keeps the one parsing the most values; falls back to per-value ``format="mixed"``
    when no consistent format covers at least 95% of the values.
    """
    best: pd.Series | None = None
    best_count = -1
    for date_format in _candidate_formats(example):
        parsed = pd.to_datetime(uniques, errors="coerce", format=date_format, utc=True)
        parsed_count = int(counts[parsed.notna()].sum())
        if parsed_count > best_count:
            best, best_count = parsed, parsed_count
    if best is not None and best_count >= _DATE_MIN_SHARE * int(counts.sum()):
        return best
    return pd.to_datetime(uniques, errors="coerce", format="mixed", utc=True)


def _candidate_formats(example: str) -> list[str]:
    formats = ["ISO8601"]
    for dayfirst in (False, True):
        guessed = guess_datetime_format(example, dayfirst=dayfirst)
        if guessed is not None and str(guessed) not in formats:
            formats.append(str(guessed))
    return formats


# --------------------------------------------------------------------------- statistics


def _numeric_stats(values: pd.Series) -> dict[str, float | None]:
    numbers = values.astype("float64")
    count = int(numbers.shape[0])
    with np.errstate(all="ignore"):  # inf values give NaN/inf, reported as None
        return {
            "sum": _finite(numbers.sum()),
            "mean": _finite(numbers.mean()),
            "median": _finite(numbers.median()),
            "min": _finite(numbers.min()),
            "max": _finite(numbers.max()),
            "std": _finite(numbers.std(ddof=1)) if count >= 2 else None,
        }


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _top_values(values: pd.Series) -> list[dict[str, Any]]:
    total = int(values.shape[0])
    counts = _display_strings(values).value_counts()
    ranked = pd.DataFrame(
        {"value": [str(key) for key in counts.index], "count": counts.to_numpy(dtype="int64")}
    )
    ranked = ranked.sort_values(["count", "value"], ascending=[False, True], kind="mergesort").head(
        _TOP_VALUES_LIMIT
    )
    return [
        {"value": str(value), "count": int(count), "share": round(int(count) / total, 4)}
        for value, count in zip(ranked["value"], ranked["count"], strict=True)
    ]


def _display_strings(values: pd.Series) -> pd.Series:
    """Values as strings; integer-valued floats (ints that gained a NaN) print without '.0'."""
    if (
        ptypes.is_float_dtype(values.dtype)
        and _is_integer_valued(values)
        and float(values.abs().max()) < _MAX_EXACT_INT_FLOAT
    ):
        return values.astype("int64").astype(str)
    return values.astype(str)


def _datetime_stats(dates: pd.Series) -> dict[str, str | None]:
    stamps = dates.dropna()
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    if stamps.shape[0] == 0:
        return {"min": None, "max": None}
    return {"min": _iso(stamps.min()), "max": _iso(stamps.max())}


def _iso(stamp: Any) -> str:
    return str(pd.Timestamp(stamp).strftime(_ISO_FORMAT))
