"""Shared pieces of the file readers: the Table record, InvalidInput and column-name checks."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

MAX_COLUMNS = 2000

EMPTY_MESSAGE = "The file is empty."
NO_COLUMNS_MESSAGE = "The file has no columns."
NOT_TABULAR_MESSAGE = (
    "The file is not a CSV, XLSX, JSON or Parquet file (it looks like binary data)."
)


class InvalidInput(Exception):
    """A file that cannot be analysed; str(exc) is a message for a person.

    The message never contains data values from the file (only counts and line numbers).
    """


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


def check_column_count(count: int) -> None:
    """Refuse zero columns or more than MAX_COLUMNS columns."""
    if count == 0:
        raise InvalidInput(NO_COLUMNS_MESSAGE)
    if count > MAX_COLUMNS:
        raise InvalidInput(f"The file has {count} columns; at most {MAX_COLUMNS} are supported.")


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


def finalise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check the column count, make column names unique non-empty strings, reset the index."""
    check_column_count(int(frame.shape[1]))
    names = [
        str(name).strip() or f"Unnamed: {position}" for position, name in enumerate(frame.columns)
    ]
    frame.columns = unique_names(names)
    return frame.reset_index(drop=True)
