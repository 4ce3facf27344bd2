"""Read delimited text: detect encoding, delimiter, header and decimal mark; parse with pyarrow."""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from analysis_svc.engine.readers.common import (
    EMPTY_MESSAGE,
    NO_COLUMNS_MESSAGE,
    NOT_TABULAR_MESSAGE,
    InvalidInput,
    Table,
    check_column_count,
    generated_names,
    unique_names,
)
from analysis_svc.engine.readers.numbers import (
    PLAIN_NUMBER,
    decimal_evidence,
    short_enough,
    text_to_numbers,
)

_LOGGER = logging.getLogger(__name__)

DELIMITERS = (",", ";", "\t", "|")
MAX_BAD_ROW_SHARE = 0.01
# Text columns with at most this many distinct values (per parse block) arrive as pandas
# categoricals: pyarrow encodes them while parsing, which the profile then reuses.
DICTIONARY_MAX_DISTINCT = 5000
_SNIFF_BYTES = 64 * 1024
_SNIFF_LINES = 50
_UTF16_PROBE = 4096
_TAB_HINT_SUFFIXES = (".tsv", ".tab")
_MAX_CONTROL_CHAR_SHARE = 0.05
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_DATE_LIKE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}.*|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}.*")
_NULL_TOKENS = ["", "NA", "N/A", "n/a", "NULL", "null", "NaN", "nan", "#N/A", "None", "-"]


@dataclass(frozen=True)
class CsvLayout:
    """What the sniffing decided about a delimited text file."""

    encoding: str
    delimiter: str
    header: bool
    decimal: str
    fields: int
    trailing_delimiter: bool


def read_csv(data: bytes, encoding: str, filename_hint: str = "") -> Table:
    """Parse delimited text (UTF-8 bytes from ``to_utf8``) into a Table; raise InvalidInput."""
    sample = _sample(data)
    if _looks_binary(sample):
        raise InvalidInput(NOT_TABULAR_MESSAGE)
    layout = _sniff(sample, len(sample.encode()) < len(data), encoding, filename_hint)
    # A header longer than the sample is counted only up to where the sample ends.
    check_column_count(layout.fields, at_least="\n" not in sample and "\r" not in sample)
    _LOGGER.debug(
        "csv encoding=%s delimiter=%r header=%s decimal=%r",
        encoding,
        layout.delimiter,
        layout.header,
        layout.decimal,
    )
    frame, skipped = _parse(data, layout)
    return Table(frame=frame, source_format="csv", skipped_rows=skipped, header=layout.header)


# --------------------------------------------------------------------------- encoding


def to_utf8(raw: bytes) -> tuple[str, bytes]:
    """Return (detected encoding, UTF-8 bytes without BOM); refuse binary or blank input."""
    if raw.startswith(codecs.BOM_UTF8):
        encoding, data = "utf-8-sig", raw[len(codecs.BOM_UTF8) :]
        if not _is_utf8(data):
            _decode(data, "utf-8")  # raises InvalidInput with the offset
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, data = "utf-16", _decode(raw, "utf-16").encode()
    elif (guessed := _utf16_without_bom(raw[:_UTF16_PROBE])) is not None:
        encoding, data = guessed, _decode(raw, guessed).encode()
    elif b"\x00" in raw[:_SNIFF_BYTES]:
        raise InvalidInput(NOT_TABULAR_MESSAGE)
    else:
        encoding, data = _single_byte_or_utf8(raw)
    if not data or data.isspace():
        raise InvalidInput(EMPTY_MESSAGE)
    return encoding, data


def _utf16_without_bom(head: bytes) -> str | None:
    """Recognise BOM-less UTF-16 text by its zero bytes on every other position."""
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    even_zeros, odd_zeros = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_zeros > 0.7 and even_zeros < 0.05:
        return "utf-16-le"
    if even_zeros > 0.7 and odd_zeros < 0.05:
        return "utf-16-be"
    return None


def _decode(raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"The file could not be decoded as {encoding.upper()} text "
            f"(invalid bytes at offset {exc.start})."
        ) from exc


def _single_byte_or_utf8(raw: bytes) -> tuple[str, bytes]:
    """UTF-8 if the file decodes as such, else cp1252, else latin-1 (re-encoded to UTF-8)."""
    if _is_utf8(raw):
        return "utf-8", raw
    for encoding in ("cp1252", "latin-1"):
        try:
            return encoding, raw.decode(encoding).encode()
        except UnicodeDecodeError:
            continue
    raise InvalidInput(NOT_TABULAR_MESSAGE)  # pragma: no cover - latin-1 decodes every byte


def _is_utf8(raw: bytes) -> bool:
    """Validate in 4 MiB slices (cut at ASCII bytes) to avoid one huge decoded copy."""
    if raw.isascii():  # ASCII is UTF-8: a scan, no decoded copy
        return True
    start = 0
    while start < len(raw):
        end = min(len(raw), start + 4 * 1024 * 1024)
        while end < len(raw) and raw[end] >= 0x80:
            end += 1
        try:
            raw[start:end].decode("utf-8")
        except UnicodeDecodeError:
            return False
        start = end
    return True


def _sample(data: bytes) -> str:
    """The first 64 KiB as text, cut at the last line break when truncated."""
    raw = data[:_SNIFF_BYTES]
    if len(raw) < len(data) and b"\n" in raw:
        raw = raw[: raw.rindex(b"\n") + 1]
    return raw.decode("utf-8", errors="replace")


def _looks_binary(sample: str) -> bool:
    """True when control characters (other than tabs/line breaks) are frequent."""
    controls = len(_CONTROL_CHARS.findall(sample))
    return controls > _MAX_CONTROL_CHAR_SHARE * max(len(sample), 1)


# --------------------------------------------------------------------------- sniffing


def _sniff(sample: str, truncated: bool, encoding: str, filename_hint: str) -> CsvLayout:
    delimiter = _choose_delimiter(sample, filename_hint)
    records = _records(sample, delimiter)
    if not records:
        raise InvalidInput(EMPTY_MESSAGE)
    if truncated and len(records) > 1:
        records = records[:-1]  # the last record may be cut in the middle
    data_rows = records[1:]
    dot, comma = decimal_evidence([field for row in data_rows for field in row])
    decimal = "," if comma > dot and delimiter != "," else "."
    header = _has_header(records[0], data_rows, decimal)
    fields = len(records[0])
    trailing = _trailing_delimiter(records[0], data_rows)
    return CsvLayout(encoding, delimiter, header, decimal, fields, trailing)


def _choose_delimiter(sample: str, filename_hint: str) -> str:
    """The delimiter whose field counts are the most consistent (then the most fields)."""
    order = _delimiter_preference(filename_hint)
    best: tuple[float, int, int] | None = None
    chosen = order[0] if filename_hint.lower().endswith(_TAB_HINT_SUFFIXES) else ","
    for rank, delimiter in enumerate(order):
        counts = [len(record) for record in _records(sample, delimiter)]
        if not counts:
            continue
        mode, frequency = _mode(counts)
        score = (frequency / len(counts), mode, -rank)
        if mode > 1 and (best is None or score > best):
            best, chosen = score, delimiter
    return chosen


def _delimiter_preference(filename_hint: str) -> tuple[str, ...]:
    if filename_hint.lower().endswith(_TAB_HINT_SUFFIXES):
        return ("\t", *(d for d in DELIMITERS if d != "\t"))
    return DELIMITERS


def _records(sample: str, delimiter: str) -> list[list[str]]:
    """The first non-blank records of the sample (quote-aware)."""
    records: list[list[str]] = []
    try:
        # newline="": a lone carriage return (old Mac and some Excel exports) ends a line too.
        for record in csv.reader(
            io.StringIO(sample, newline=""), delimiter=delimiter, strict=False
        ):
            if record and any(field.strip() for field in record):
                records.append(record)
            if len(records) >= _SNIFF_LINES:
                break
    except csv.Error:
        return records
    return records


def _mode(counts: list[int]) -> tuple[int, int]:
    """Most frequent value (largest value wins ties) and its frequency."""
    frequency = Counter(counts)
    top = max(frequency.values())
    return max(value for value, seen in frequency.items() if seen == top), top


def _kind(field: str, decimal: str) -> str:
    text = field.strip()
    if not text:
        return "empty"
    if not short_enough(text):  # no pattern runs on a long field: it is text
        return "text"
    text = text.replace(".", "").replace(",", ".") if decimal == "," else text.replace(",", "")
    if PLAIN_NUMBER.fullmatch(text):
        return "number"
    if _DATE_LIKE.fullmatch(field.strip()):
        return "date"
    return "text"


def _has_header(first: list[str], data_rows: list[list[str]], decimal: str) -> bool:
    """Vote per column: a typed column under a label of another type means a header row.

    A column whose values are all numbers (or dates) votes "no header" when the first row
    holds a number (date) there too, and "header" when it holds text; a text column under a
    number votes "header". Without any vote, the first row is the header.
    """
    votes = 0
    for position, label in enumerate(first):
        kinds = {_kind(row[position], decimal) for row in data_rows if position < len(row)}
        kinds.discard("empty")
        label_kind = _kind(label, decimal)
        if not kinds or label_kind == "empty":
            continue
        if kinds in ({"number"}, {"date"}):
            votes += -1 if label_kind in kinds else 1
        elif label_kind != "text":
            votes += 1
    return votes >= 0


def _trailing_delimiter(first: list[str], data_rows: list[list[str]]) -> bool:
    """True when data rows carry one extra, empty field (a delimiter at the end of the line)."""
    if not data_rows:
        return False
    extra = [row for row in data_rows if len(row) == len(first) + 1]
    return len(extra) >= 0.9 * len(data_rows) and all(not row[-1].strip() for row in extra)


# --------------------------------------------------------------------------- parsing


def _parse(data: bytes, layout: CsvLayout) -> tuple[pd.DataFrame, int]:
    width = layout.fields + (1 if layout.trailing_delimiter else 0)
    placeholders = [f"f{index}" for index in range(width)]
    quoted = b'"' in data
    if quoted and data.count(b'"') % 2:
        return _parse_with_pandas(data, layout, placeholders), 0
    bad_rows: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append(int(row.actual_columns))
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(
                column_names=placeholders, skip_rows=1 if layout.header else 0
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=layout.delimiter,
                newlines_in_values=quoted,
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                decimal_point=layout.decimal,
                null_values=_NULL_TOKENS,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                auto_dict_encode=True,
                auto_dict_max_cardinality=DICTIONARY_MAX_DISTINCT,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        _LOGGER.info("pyarrow could not parse the csv (%s); trying pandas", type(exc).__name__)
        return _parse_with_pandas(data, layout, placeholders), 0
    rows = int(table.num_rows)
    if bad_rows and len(bad_rows) > MAX_BAD_ROW_SHARE * (rows + len(bad_rows)):
        raise InvalidInput(_ragged_message(data, layout))
    frame = table.to_pandas(date_as_object=False, split_blocks=True, self_destruct=True)
    del table
    frame = _name_columns(frame, data, layout)
    return _normalise_locale_numbers(frame, layout.decimal), len(bad_rows)


def _parse_with_pandas(data: bytes, layout: CsvLayout, names: list[str]) -> pd.DataFrame:
    """The C parser: slower, but it reports unterminated quotes and stray quotes."""
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            sep=layout.delimiter,
            header=None,
            names=names,
            skiprows=1 if layout.header else 0,
            decimal=layout.decimal,
            engine="c",
            index_col=False,
            low_memory=False,
            skip_blank_lines=True,
            na_values=_NULL_TOKENS,
            keep_default_na=False,
        )
    except pd.errors.EmptyDataError as exc:
        raise InvalidInput(NO_COLUMNS_MESSAGE) from exc
    except pd.errors.ParserError as exc:
        raise InvalidInput(_pandas_error_message(str(exc), data, layout)) from exc
    frame = _name_columns(frame, data, layout)
    return _normalise_locale_numbers(frame, layout.decimal)


def _pandas_error_message(pandas_message: str, data: bytes, layout: CsvLayout) -> str:
    if "EOF inside string" in pandas_message:
        return "The CSV file has a quoted field that is never closed."
    if "Expected" in pandas_message:
        return _ragged_message(data, layout)
    return "The CSV file is malformed and could not be parsed."


def _ragged_message(data: bytes, layout: CsvLayout) -> str:
    """Find the first row with a different field count (slow path, errors only)."""
    expected = layout.fields + (1 if layout.trailing_delimiter else 0)
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(
        # newline="": a lone carriage return ends a line here too, as it does for the parsers.
        io.StringIO(data.decode("utf-8", errors="replace"), newline=""),
        delimiter=layout.delimiter,
        strict=False,
    )
    try:
        for record in reader:
            if record and any(field.strip() for field in record) and len(record) != expected:
                return (
                    f"Line {reader.line_num} has {len(record)} fields but {expected} were "
                    "expected; all rows must have the same number of columns as the header."
                )
    except csv.Error:
        return "The CSV file is malformed and could not be parsed."
    return "Too many rows have a different number of fields than the header."


def _name_columns(frame: pd.DataFrame, data: bytes, layout: CsvLayout) -> pd.DataFrame:
    if layout.trailing_delimiter:
        extra = frame.columns[-1]
        if frame[extra].notna().any():
            raise InvalidInput(
                "The data rows have more fields than the header row; the columns do not line up."
            )
        frame = frame.drop(columns=[extra])
    if layout.header:
        first = _records(_sample(data), layout.delimiter)[0]
        names = [field.strip() or f"Unnamed: {i}" for i, field in enumerate(first)]
    else:
        names = generated_names(int(frame.shape[1]))
    frame.columns = unique_names(names[: frame.shape[1]])
    return frame


def _normalise_locale_numbers(frame: pd.DataFrame, decimal: str) -> pd.DataFrame:
    """Turn text columns that are numbers with thousands separators into float64."""
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            categories = pd.Series(column.cat.categories)
            numbers, _ = text_to_numbers(categories, decimal)
            if numbers is not None:
                codes = column.cat.codes.to_numpy()
                values = numbers.to_numpy(dtype="float64")[np.maximum(codes, 0)]
                frame[name] = np.where(codes >= 0, values, np.nan)
        elif isinstance(column.dtype, pd.StringDtype) or column.dtype == object:
            numbers, _ = text_to_numbers(column, decimal)
            if numbers is not None:
                frame[name] = numbers
    return frame
