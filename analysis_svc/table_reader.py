"""Read an uploaded CSV or XLSX file into a pandas DataFrame, refusing unsafe or unusable files."""

from __future__ import annotations

import codecs
import csv
import io
import logging
import math
import pathlib
import re
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

_LOGGER = logging.getLogger(__name__)

MAX_COLUMNS = 2000
MAX_XLSX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_XLSX_COMPRESSION_RATIO = 100

_ZIP_MAGIC = b"PK\x03\x04"
_XLSX_MARKER = "xl/workbook.xml"
_BINARY_PROBE_BYTES = 8 * 1024
_SNIFF_BYTES = 64 * 1024
_SNIFF_LINES = 50
_SCAN_CHUNK_BYTES = 1024 * 1024
_DELIMITERS = (",", ";", "\t", "|")
_TAB_HINT_SUFFIXES = (".tsv", ".tab")
_MAX_CONTROL_CHAR_SHARE = 0.05
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_FIELD_COUNT_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")

_NOT_TABULAR_MESSAGE = "The file is not a CSV or XLSX file (it looks like binary data)."
_EMPTY_MESSAGE = "The file is empty."
_NO_COLUMNS_MESSAGE = "The file has no columns."


class InvalidInput(Exception):
    """A file that cannot be analysed; str(exc) is a message for a person.

    The message never contains data values from the file (only counts and line numbers).
    """


@dataclass(frozen=True)
class Table:
    """A parsed table and the format it was read from ("csv" or "xlsx")."""

    frame: pd.DataFrame
    source_format: str


def read_table(path: pathlib.Path, filename_hint: str = "") -> Table:
    """Read ``path`` as XLSX or CSV (detected by content) and return it as a Table.

    ``filename_hint`` is the user's file name; it is only used to break exact ties when
    guessing the CSV delimiter. Raises InvalidInput for files that cannot be analysed.
    """
    size = path.stat().st_size
    if size == 0:
        raise InvalidInput(_EMPTY_MESSAGE)
    with path.open("rb") as handle:
        head = handle.read(_BINARY_PROBE_BYTES)
    if head.startswith(_ZIP_MAGIC):
        frame = _read_xlsx(path)
        source_format = "xlsx"
    else:
        frame = _read_csv(path, head, size, filename_hint)
        source_format = "csv"
    frame = _finalise_frame(frame)
    _LOGGER.info(
        "read %s table: %d rows x %d columns", source_format, frame.shape[0], frame.shape[1]
    )
    return Table(frame=frame, source_format=source_format)


# --------------------------------------------------------------------------- shared checks


def _finalise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check the column count and make column names unique strings."""
    _check_column_count(int(frame.shape[1]))
    frame.columns = _unique_names([str(name) for name in frame.columns])
    return frame.reset_index(drop=True)


def _check_column_count(count: int) -> None:
    if count == 0:
        raise InvalidInput(_NO_COLUMNS_MESSAGE)
    if count > MAX_COLUMNS:
        raise InvalidInput(f"The file has {count} columns; at most {MAX_COLUMNS} are supported.")


def _unique_names(names: list[str]) -> list[str]:
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


# --------------------------------------------------------------------------- XLSX


def _read_xlsx(path: pathlib.Path) -> pd.DataFrame:
    _check_zip_is_safe_xlsx(path)
    try:
        raw = pd.read_excel(path, engine="openpyxl", sheet_name=0, header=None)
    except Exception as exc:  # openpyxl raises many unrelated types on damaged files
        _LOGGER.warning("xlsx could not be parsed (%s)", type(exc).__name__)
        raise InvalidInput("The XLSX file could not be read; it may be damaged.") from exc
    return _frame_from_raw_sheet(raw)


def _check_zip_is_safe_xlsx(path: pathlib.Path) -> None:
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


def _frame_from_raw_sheet(raw: pd.DataFrame) -> pd.DataFrame:
    """Drop empty rows/columns, promote the first remaining row to the header, re-infer types."""
    grid = raw.dropna(how="all").dropna(axis=1, how="all")
    if grid.shape[0] == 0 or grid.shape[1] == 0:
        raise InvalidInput(_NO_COLUMNS_MESSAGE)
    header = [_header_label(value, position) for position, value in enumerate(grid.iloc[0])]
    body = grid.iloc[1:].reset_index(drop=True)
    body.columns = header
    return body.infer_objects()


def _header_label(value: Any, position: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"Unnamed: {position}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() or f"Unnamed: {position}"


# --------------------------------------------------------------------------- CSV


def _read_csv(path: pathlib.Path, head: bytes, size: int, filename_hint: str) -> pd.DataFrame:
    encoding = _choose_encoding(path, head)
    sample, truncated = _decode_sample(path, encoding, size)
    if _looks_binary(sample):
        raise InvalidInput(_NOT_TABULAR_MESSAGE)
    delimiter, header_fields = _sniff_delimiter(sample, truncated, filename_hint)
    _check_column_count(header_fields)
    _LOGGER.debug("csv encoding=%s delimiter=%r", encoding, delimiter)
    return _parse_csv(path, encoding, delimiter)


def _choose_encoding(path: pathlib.Path, head: bytes) -> str:
    """Pick the encoding; raise InvalidInput for empty (blank) or binary files."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates: tuple[str, ...] = ("utf-16",)
    elif b"\x00" in head:
        raise InvalidInput(_NOT_TABULAR_MESSAGE)
    else:
        candidates = ("utf-8-sig", "cp1252", "latin-1")
    for encoding in candidates:
        decodes, has_content = _scan_text(path, encoding)
        if decodes:
            if not has_content:
                raise InvalidInput(_EMPTY_MESSAGE)
            return encoding
    raise InvalidInput(_NOT_TABULAR_MESSAGE)


def _scan_text(path: pathlib.Path, encoding: str) -> tuple[bool, bool]:
    """Stream-decode the whole file: (decodes without error, has a non-whitespace char)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    has_content = False
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_SCAN_CHUNK_BYTES):
                text = decoder.decode(chunk)
                has_content = has_content or bool(text.strip())
            has_content = has_content or bool(decoder.decode(b"", final=True).strip())
    except UnicodeDecodeError:
        return False, False
    return True, has_content


def _decode_sample(path: pathlib.Path, encoding: str, size: int) -> tuple[str, bool]:
    """Decode the start of the file; the flag says whether the sample is truncated."""
    with path.open("rb") as handle:
        raw = handle.read(_SNIFF_BYTES)
    truncated = size > len(raw)
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return decoder.decode(raw, final=not truncated), truncated


def _looks_binary(sample: str) -> bool:
    """True when control characters (other than tabs/line breaks) are frequent."""
    controls = len(_CONTROL_CHARS.findall(sample))
    return controls > _MAX_CONTROL_CHAR_SHARE * max(len(sample), 1)


def _sniff_delimiter(sample: str, truncated: bool, filename_hint: str) -> tuple[str, int]:
    """Return (delimiter, header field count) for the most consistent delimiter."""
    if truncated and "\n" in sample:
        sample = sample[: sample.rindex("\n") + 1]
    order = _delimiter_preference(filename_hint)
    best: tuple[float, int, int] | None = None
    chosen = ","
    for rank, delimiter in enumerate(order):
        counts = _field_counts(sample, delimiter)
        if not counts:
            continue
        mode, frequency = _mode(counts)
        score = (frequency / len(counts), mode, -rank)
        if mode > 1 and (best is None or score > best):
            best, chosen = score, delimiter
    header = _field_counts(sample, chosen)
    return chosen, header[0] if header else 0


def _delimiter_preference(filename_hint: str) -> tuple[str, ...]:
    if filename_hint.lower().endswith(_TAB_HINT_SUFFIXES):
        return ("\t", *(d for d in _DELIMITERS if d != "\t"))
    return _DELIMITERS


def _field_counts(sample: str, delimiter: str) -> list[int]:
    """Field counts of the first non-blank records of the sample (quote-aware)."""
    counts: list[int] = []
    try:
        for record in csv.reader(io.StringIO(sample), delimiter=delimiter, strict=False):
            if record and any(field.strip() for field in record):
                counts.append(len(record))
            if len(counts) >= _SNIFF_LINES:
                break
    except csv.Error:
        return counts
    return counts


def _mode(counts: list[int]) -> tuple[int, int]:
    """Most frequent value (largest value wins ties) and its frequency."""
    frequency = Counter(counts)
    top = max(frequency.values())
    return max(value for value, seen in frequency.items() if seen == top), top


def _parse_csv(path: pathlib.Path, encoding: str, delimiter: str) -> pd.DataFrame:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path,
                sep=delimiter,
                encoding=encoding,
                engine="c",
                index_col=False,
                low_memory=False,
            )
    except pd.errors.EmptyDataError as exc:
        raise InvalidInput(_NO_COLUMNS_MESSAGE) from exc
    except pd.errors.ParserError as exc:
        raise InvalidInput(_parser_error_message(str(exc))) from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(_NOT_TABULAR_MESSAGE) from exc
    if any(issubclass(item.category, pd.errors.ParserWarning) for item in caught):
        # index_col=False: pandas would silently drop the extra fields of the first data row.
        raise InvalidInput(
            "The first data row has more fields than the header row; the columns do not line up."
        )
    return frame


def _parser_error_message(pandas_message: str) -> str:
    """Turn a pandas parser error into a message for a person (no data values)."""
    match = _FIELD_COUNT_ERROR.search(pandas_message)
    if match:
        expected, line, saw = match.groups()
        return (
            f"Line {line} has {saw} fields but {expected} were expected; "
            "all rows must have the same number of columns as the header."
        )
    if "EOF inside string" in pandas_message:
        return "The CSV file has a quoted field that is never closed."
    return "The CSV file is malformed and could not be parsed."
