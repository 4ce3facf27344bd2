"""Read the first sheet of an XLSX workbook (read-only, zip-bomb guarded), finding its header."""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import pathlib
import re
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import openpyxl
import pandas as pd

from analysis_svc.engine.readers.common import (
    NO_COLUMNS_MESSAGE,
    InvalidInput,
    Table,
    check_column_count,
    generated_names,
)

_LOGGER = logging.getLogger(__name__)

MAX_XLSX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_XLSX_COMPRESSION_RATIO = 100
_XLSX_MARKER = "xl/workbook.xml"
_MERGE_REF = re.compile(rb'<(?:\w+:)?mergeCell\s+ref="([A-Z]+)(\d+):([A-Z]+)(\d+)"')
_CHUNK = 1024 * 1024
_HEADER_SEARCH_ROWS = 20
_HEAD_ROWS = 80
_CHUNK_ROWS = 20_000

Cell = Any
Row = list[Cell]


def read_xlsx(path: pathlib.Path) -> Table:
    """Read the first worksheet; raise InvalidInput for unsafe, damaged or empty workbooks."""
    check_zip_is_safe_xlsx(path)
    try:
        # A file object: openpyxl would otherwise insist on an .xlsx file name.
        workbook = openpyxl.load_workbook(
            io.BytesIO(path.read_bytes()), read_only=True, data_only=True
        )
    except Exception as exc:  # openpyxl raises many unrelated types on damaged files
        _LOGGER.warning("xlsx could not be opened (%s)", type(exc).__name__)
        raise InvalidInput("The XLSX file could not be read; it may be damaged.") from exc
    try:
        if not workbook.worksheets:
            raise InvalidInput(NO_COLUMNS_MESSAGE)
        sheet = workbook.worksheets[0]
        merges = _merged_ranges(path, str(getattr(sheet, "_worksheet_path", "")))
        frame, header = frame_from_rows(sheet.iter_rows(values_only=True), merges)
    except InvalidInput:
        raise
    except Exception as exc:
        _LOGGER.warning("xlsx could not be parsed (%s)", type(exc).__name__)
        raise InvalidInput("The XLSX file could not be read; it may be damaged.") from exc
    finally:
        workbook.close()
    return Table(frame=frame, source_format="xlsx", header=header)


def check_zip_is_safe_xlsx(path: pathlib.Path) -> None:
    """Refuse non-XLSX zips and zip bombs, using only the archive directory."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(
            "The file looks like a ZIP archive but is damaged; it is not a readable XLSX file."
        ) from exc
    if not any(member.filename == _XLSX_MARKER for member in members):
        raise InvalidInput("The file is a ZIP archive but not an XLSX workbook.")
    uncompressed = sum(member.file_size for member in members)
    compressed = sum(member.compress_size for member in members)
    if uncompressed > MAX_XLSX_UNCOMPRESSED_BYTES:
        limit_mb = MAX_XLSX_UNCOMPRESSED_BYTES // (1024 * 1024)
        raise InvalidInput(f"The XLSX file is too large once uncompressed (limit {limit_mb} MB).")
    if uncompressed > MAX_XLSX_COMPRESSION_RATIO * max(compressed, 1):
        raise InvalidInput(
            "The XLSX file is compressed suspiciously well and was refused for safety."
        )


# --------------------------------------------------------------------------- merged cells


def _merged_ranges(path: pathlib.Path, sheet_path: str) -> list[tuple[int, int, int, int]]:
    """(first row, first col, last row, last col), 0-based, of merged ranges in the sheet.

    Read-only openpyxl does not expose merged cells, so the sheet XML is streamed and
    scanned for ``<mergeCell ref=...>`` without building a tree.
    """
    found: list[tuple[int, int, int, int]] = []
    member = sheet_path.lstrip("/")
    try:
        with zipfile.ZipFile(path) as archive, archive.open(member) as stream:
            tail = b""
            while chunk := stream.read(_CHUNK):
                window = tail + chunk
                for match in _MERGE_REF.finditer(window):
                    c1, r1, c2, r2 = match.groups()
                    found.append((int(r1) - 1, _column_index(c1), int(r2) - 1, _column_index(c2)))
                tail = window[-256:]  # overlaps are deduplicated below
    except (KeyError, zipfile.BadZipFile, OSError, zlib.error):
        return []
    return sorted(set(found))


def _column_index(letters: bytes) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + (letter - ord("A") + 1)
    return index - 1


# --------------------------------------------------------------------------- header finding


def _cell(row: Sequence[Cell], col: int) -> Cell:
    value = row[col] if col < len(row) else None
    return None if _blank(value) else value


def _blank(value: Cell) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def frame_from_rows(
    rows: Iterable[Sequence[Cell]], merges: list[tuple[int, int, int, int]] | None = None
) -> tuple[pd.DataFrame, bool]:
    """Find the header (skipping empty and title rows, joining merged header cells).

    Only the first rows are kept as Python lists (to find the header); the body is
    streamed into typed column chunks so that memory stays near the size of the data.
    Returns the frame and whether a header row was found.
    """
    iterator = iter(rows)
    head: list[Row] = []
    filled: list[int] = []
    for row in iterator:
        cleaned = [_cell(row, col) for col in range(len(row))]
        head.append(cleaned)
        if any(value is not None for value in cleaned):
            filled.append(len(head) - 1)
            if len(filled) >= _HEAD_ROWS:
                break
    if not filled:
        raise InvalidInput(NO_COLUMNS_MESSAGE)
    width = max(len(head[index]) for index in filled)
    check_column_count(
        sum(1 for col in range(width) if any(_cell(head[i], col) is not None for i in filled))
    )
    grid = [[_cell(row, col) for col in range(width)] for row in head]
    start = _header_row(grid, filled)
    header_rows = [start]
    for r1, c1, r2, c2 in merges or []:
        if r1 <= start <= r2 and c2 > c1 and _second_header_row(grid, filled, start):
            header_rows = [start, start + 1]
            break
    has_header = _is_header(grid[start], [grid[i] for i in filled if i > start][:50])
    body_start = header_rows[-1] + 1 if has_header else start
    builder = _ColumnBuilder()
    for index in filled:
        if index >= body_start:
            builder.add(grid[index])
    for row in iterator:
        builder.add([_cell(row, col) for col in range(len(row))])
    columns = builder.finish(width)
    labels = (
        _labels(grid, header_rows, merges or [], {col: col for col in range(width)})
        if has_header
        else [""] * len(columns)
    )
    labels += [""] * (len(columns) - len(labels))
    kept = [
        position
        for position, column in enumerate(columns)
        if (labels[position] and not labels[position].startswith("Unnamed: "))
        or bool(column.notna().any())
    ]
    check_column_count(len(kept))
    names = [labels[position] for position in kept] if has_header else generated_names(len(kept))
    frame = pd.concat([columns[position] for position in kept], axis=1, ignore_index=True)
    frame.columns = names
    return frame, has_header


class _ColumnBuilder:
    """Collects rows into per-column chunks of typed Series (numbers as float64 arrays)."""

    def __init__(self) -> None:
        self.chunks: list[list[pd.Series]] = []
        self.pending: list[Row] = []
        self.rows = 0

    def add(self, row: Row) -> None:
        if any(value is not None for value in row):
            self.pending.append(row)
            if len(self.pending) >= _CHUNK_ROWS:
                self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        width = max(len(row) for row in self.pending)
        count = len(self.pending)
        for col in range(width):
            values = [row[col] if col < len(row) else None for row in self.pending]
            series = pd.Series(values, dtype=object).infer_objects()
            if col >= len(self.chunks):
                self.chunks.append([])
            known = sum(len(chunk) for chunk in self.chunks[col])
            if known < self.rows:  # a column that first appears in this chunk
                self.chunks[col].append(pd.Series([None] * (self.rows - known), dtype=object))
            self.chunks[col].append(series)
        self.rows += count
        self.pending = []

    def finish(self, width: int) -> list[pd.Series]:
        self._flush()
        while len(self.chunks) < width:
            self.chunks.append([])
        columns: list[pd.Series] = []
        for chunks in self.chunks:
            filled = sum(len(chunk) for chunk in chunks)
            if filled < self.rows:
                chunks.append(pd.Series([None] * (self.rows - filled), dtype=object))
            typed = [chunk for chunk in chunks if len(chunk)]
            if not typed:
                columns.append(pd.Series([], dtype=object))
                continue
            column = pd.concat(typed, ignore_index=True) if len(typed) > 1 else typed[0]
            if column.dtype == object:
                column = column.infer_objects()
            columns.append(column.reset_index(drop=True))
        return columns


def _second_header_row(grid: list[Row], filled: list[int], start: int) -> bool:
    """Below a merged header cell: is the next row labels (text over typed data) too?"""
    if start + 1 not in filled:
        return False
    row = grid[start + 1]
    values = [value for value in row if value is not None]
    below = [grid[i] for i in filled if i > start + 1][:50]
    return all(isinstance(value, str) for value in values) and _is_header(row, below)


def _header_row(grid: list[Row], filled: list[int]) -> int:
    """The first non-empty row, skipping title rows (one cell) followed by a wider row."""
    candidates = filled[:_HEADER_SEARCH_ROWS]
    for number, index in enumerate(candidates):
        count = sum(not _blank(v) for v in grid[index])
        following = candidates[number + 1] if number + 1 < len(candidates) else None
        if following is None:
            return index
        if count == 1 and sum(not _blank(v) for v in grid[following]) > 1:
            continue
        return index
    return filled[0]


def _is_header(row: Row, below: list[Row]) -> bool:
    """Vote per column: a label whose type differs from the values under it means a header."""
    votes = 0
    for col, label in enumerate(row):
        kinds = {_cell_kind(r[col]) for r in below if r[col] is not None}
        if label is None or len(kinds) != 1:
            continue
        kind = kinds.pop()
        if _cell_kind(label) == kind:
            votes -= 0 if kind == "text" else 1
        else:
            votes += 1
    return votes >= 0 and any(isinstance(v, str) for v in row)


def _cell_kind(value: Cell) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dt.date | dt.time):
        return "date"
    return "text"


def _labels(
    grid: list[Row],
    header_rows: list[int],
    merges: list[tuple[int, int, int, int]],
    position: dict[int, int],
) -> list[str]:
    """Header labels, copying a merged cell's value over its range and joining two rows."""
    cells = {(r, c): grid[r][c] for r in header_rows for c in range(len(grid[r]))}
    for r1, c1, r2, c2 in merges:
        source = (r1, position.get(c1, -1))
        if source not in cells:
            continue
        for r in range(r1, r2 + 1):
            for col in range(c1, c2 + 1):
                target = (r, position.get(col, -1))
                if target in cells and _blank(cells[target]):
                    cells[target] = cells[source]
    labels: list[str] = []
    for col in range(len(grid[header_rows[0]])):
        parts: list[str] = []
        for r in header_rows:
            text = _label_text(cells[(r, col)])
            if text and text not in parts:
                parts.append(text)
        labels.append(" ".join(parts) or f"Unnamed: {col}")
    return labels


def _label_text(value: Cell) -> str:
    if _blank(value):
        return ""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value).strip()
