"""Shared pieces of the file readers: the Table record, InvalidInput and column-name checks."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from datapilot_runtime.error_codes import ErrorCode

MAX_COLUMNS = 2000
# Column names and text values are cut to this many characters once a table is read: a label
# is shown in the report and the LLM prompt, so its length bounds theirs (a report stays far
# below the 16 MiB gRPC limit), and everything after the reader works on short texts.
MAX_LABEL_CHARS = 200
_ELLIPSIS = "\u2026"

EMPTY_MESSAGE = "The file is empty."
NO_COLUMNS_MESSAGE = "The file has no columns."
NOT_TABULAR_MESSAGE = (
    "The file is not a CSV, XLSX, JSON or Parquet file (it looks like binary data)."
)


class InvalidInput(Exception):
    """A file that cannot be analysed; str(exc) is a message for a person.

    The message never contains data values from the file (only counts and line numbers).
    ``code`` is the job's error code: `invalid_input`, or `analysis_limit_exceeded` for a
    file over one of the engine's structural bounds (the message names the bound).
    """

    def __init__(self, message: str, code: ErrorCode = ErrorCode.INVALID_INPUT) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Table:
    """A parsed table and the format it was read from ("csv", "xlsx", "json" or "parquet").

    ``skipped_rows`` counts malformed CSV rows dropped within the tolerance; ``header`` says
    whether the column names came from the file (False: they were generated);
    ``reshaped_from`` is set when a long table was made wide (semantics/long_format.py).
    """

    frame: pd.DataFrame
    source_format: str
    skipped_rows: int = 0
    header: bool = True
    reshaped_from: Reshape | None = None


@dataclass(frozen=True)
class Reshape:
    """A long table made wide: its shape as read, the columns pivoted, the columns dropped."""

    rows: int
    columns: int
    dimension: str
    measure: str
    dropped: tuple[str, ...] = ()


def check_column_count(count: int, *, at_least: bool = False) -> None:
    """Refuse zero columns or more than MAX_COLUMNS columns; `at_least`: counted in a header
    line cut short by the sample (the file has `count` columns or more)."""
    if count == 0:
        raise InvalidInput(NO_COLUMNS_MESSAGE)
    if count > MAX_COLUMNS:
        many = f"at least {count}" if at_least else str(count)
        raise InvalidInput(f"The file has {many} columns; at most {MAX_COLUMNS} are supported.")


def unique_names(names: list[str]) -> list[str]:
    """Deduplicate names deterministically by appending ``.1``, ``.2``, ... to repeats."""
    taken = set(names)
    seen: set[str] = set()
    result: list[str] = []
    for name in names:
        candidate = name
        suffix = 0
        while candidate in seen or (suffix and candidate in taken):
            suffix += 1
            candidate = f"{name}.{suffix}"
        seen.add(candidate)
        result.append(candidate)
    return result


def generated_names(count: int) -> list[str]:
    """Names for a table without a header row: column_1, column_2, ..."""
    return [f"column_{index}" for index in range(1, count + 1)]


def bounded_label(text: str) -> str:
    """`text` cut to MAX_LABEL_CHARS characters (the last one an ellipsis when cut)."""
    if len(text) <= MAX_LABEL_CHARS:
        return text
    return text[: MAX_LABEL_CHARS - 1] + _ELLIPSIS


def _bounded_value(value: object) -> object:
    return bounded_label(value) if isinstance(value, str) else value


def bound_text_values(frame: pd.DataFrame) -> None:
    """Cut text cells longer than MAX_LABEL_CHARS, in place (only columns holding one)."""
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if column.dtype == object:
            longest = column.map(lambda v: len(v) if isinstance(v, str) else 0).max()
        elif isinstance(column.dtype, pd.StringDtype):
            longest = column.str.len().max()
        else:
            continue
        if pd.notna(longest) and int(longest) > MAX_LABEL_CHARS:
            frame.isetitem(position, column.map(_bounded_value))


def finalise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check the column count, make column names unique non-empty bounded strings, cut long
    text values, reset the index."""
    check_column_count(int(frame.shape[1]))
    names = [
        bounded_label(str(name).strip()) or f"Unnamed: {position}"
        for position, name in enumerate(frame.columns)
    ]
    frame.columns = unique_names(names)
    bound_text_values(frame)
    return frame.reset_index(drop=True)
