"""Read an XLSX workbook's table through calamine (zip-bomb guarded), finding its header.

The zip-bomb guard runs first, on the archive directory alone. The table is the first worksheet
(of the first ten) whose first rows hold values in two rows at least, so a cover, notes or
contents sheet before the data is passed over; else the first worksheet. Then:

* **Head**: the first rows of the sheet's XML (200 rows or 4 MB at most) are cut out into
  a small in-memory workbook that python-calamine reads into typed Python cells. The header logic
  (empty leading rows, title rows, merged and two-row headers, header or not) runs on them.
  Merged ranges are read from the sheet XML only when they could change a label.
* **Body**: fastexcel (calamine to Arrow) reads the whole sheet once, from the first data row,
  with strict typing guessed from the first 1000 rows; a later cell that does not fit is reported
  by fastexcel, and a column blank in those rows is guessed again from every row. Whole-number
  float columns become integers (calamine, like Excel, stores every number as a float); error
  cells (#N/A, #DIV/0!, #NAME?, ...) and whitespace-only text are missing values.
* **Slow path**, only where calamine's Arrow output cannot express the sheet: a column that
  mixes cell types (numbers and text, dates and numbers, ...) would be coerced to text there, and
  fastexcel has no null for some error cells; such a sheet is read cell by cell with
  python-calamine and built column by column in Python, each cell keeping its own type for the
  profiler. openpyxl is no longer used for reading.

A declared range is never a loop bound: the sheet's ``<dimension>`` is ignored (calamine sizes
the range from the cells present) and merged ranges are clipped to the header rows and columns
actually present. calamine does allocate the bounding box of the cells present (and aborts the
process when that fails), so a sheet whose cells are spread over a huge box is refused before
calamine sees it: the head's references exactly, then every reference of the whole sheet,
found with array operations while the sheet's XML is inflated once more (by ISA-L, in a thread
that scans a share of it too).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import io
import itertools
import logging
import math
import pathlib
import posixpath
import queue
import re
import struct
import threading
import zipfile
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import fastexcel
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import python_calamine
from isal import isal_zlib

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
_WORKBOOK_RELS = "xl/_rels/workbook.xml.rels"
_DAMAGED_MESSAGE = "The XLSX file could not be read; it may be damaged."
_MERGE_REF = re.compile(rb'<(?:\w+:)?mergeCell\s+ref="([A-Z]+)(\d+):([A-Z]+)(\d+)"')
_SHEET_TAG = re.compile(rb"<(?:\w+:)?sheet\b([^>]*)>")
_RELATIONSHIP_TAG = re.compile(rb"<(?:\w+:)?Relationship\b([^>]*)>")
# A name starts only where a run of name characters starts (the lookbehind), and possessive
# repeats never give back: `([\w:]+)\s*=` alone retries every suffix of a long run (quadratic).
_ATTRIBUTE = re.compile(rb'(?<![\w:])([\w:]++)\s*+=\s*+"([^"]*+)"')
_ROW_END = re.compile(rb"</(?:\w+:)?row>|<(?:\w+:)?row\b[^>]*/>")
_CELL_REF = re.compile(rb'<(?:\w+:)?c\b[^>]*?\sr="([A-Z]{1,3})(\d{1,7})"')
_ROW_REF = re.compile(rb'<(?:\w+:)?row\b[^>]*?\sr="(\d{1,7})"')
_VALUE_TAG = re.compile(rb"<(?:\w+:)?(?:v|is)\b")
_SHEET_DATA_OPEN = re.compile(rb"<(\w+:)?sheetData\b")
_WORKSHEET_OPEN = re.compile(rb"<(\w+:)?worksheet\b")
# Parts the head workbook needs besides its sheet: what calamine reads to open a workbook.
_SHEETS_TRIED = 10  # a table further back than this many sheets is not looked for
_HEAD_PARTS_SKIPPED = ("xl/worksheets/", "xl/chartsheets/", "xl/pivotCache/", "xl/drawings/")
_CHUNK = 1024 * 1024
_READ_AHEAD = 4  # inflated chunks waiting for the spread scan
_SCANNED_AHEAD = 3  # one stretch in 3 is scanned by the inflating thread
_RAW_PIECE = 256 * 1024  # deflated bytes given to the inflater at a time
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip member's local header: name, extra lengths
_HEAD_XML_ROWS = 200  # sheet XML rows holding values given to the header logic
_HEAD_XML_BYTES = 4 * 1024 * 1024  # ... or fewer, when the rows are long
_HEAD_XML_MAX_BYTES = 32 * 1024 * 1024  # ... or none yet: empty rows above the table
_MAX_HEAD_CELLS = 4_000_000  # bounding box of the head's cells (200 rows x 2000 columns is 0.4M)
_HEADER_SEARCH_ROWS = 20
_HEAD_ROWS = 80
_CHUNK_ROWS = 20_000
_MAX_EXACT_FLOAT = 2.0**53
_SCHEMA_SAMPLE_ROWS = 1000  # fastexcel's default

Cell = Any
Row = list[Cell]
Merge = tuple[int, int, int, int]  # first row, first column, last row, last column; 0-based
_ArrowBody = tuple[list[int], Any]
_T = TypeVar("_T")  # absolute column indices, a pyarrow RecordBatch


def read_xlsx(path: pathlib.Path) -> Table:
    """Read the workbook's table; raise InvalidInput for unsafe, damaged or empty workbooks."""
    check_zip_is_safe_xlsx(path)
    data = path.read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            sheets = _worksheets(archive)
            if not sheets:  # calamine is never given a sheet the spread check has not seen
                raise InvalidInput(_DAMAGED_MESSAGE)
            name, member, head = _sheet_with_a_table(archive, sheets)
            layout = find_layout(head, lambda: _merged_ranges(archive, member, len(head)))
            _check_whole_sheet_spread(archive, member)
            body = _read_body(data, layout.body_start, name)
            if body is None:
                merges = _merged_ranges(archive, member, len(head))
                frame, header = _read_cell_by_cell(data, merges, name)
            else:
                frame, header = _assemble(layout, body), layout.has_header
    except (InvalidInput, MemoryError):  # the sandbox reports a memory refusal as such
        raise
    except Exception as exc:  # calamine and zipfile raise many unrelated types on damaged files
        _LOGGER.warning("xlsx could not be read (%s)", type(exc).__name__)
        raise InvalidInput(_DAMAGED_MESSAGE) from exc
    except BaseException as exc:  # a Rust panic surfaces as pyo3's PanicException
        if type(exc).__name__ != "PanicException":
            raise
        _LOGGER.warning("xlsx reader panicked")
        raise InvalidInput(_DAMAGED_MESSAGE) from exc
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


# --------------------------------------------------------------------------- the package


def _attributes(tag: bytes) -> dict[bytes, bytes]:
    return dict(_ATTRIBUTE.findall(tag))


def _worksheets(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(name, zip path) of the workbook's worksheets in their order (chart sheets left out)."""
    names = set(archive.namelist())
    if _WORKBOOK_RELS not in names:
        return []
    targets: dict[bytes, str] = {}
    for relationship in _RELATIONSHIP_TAG.finditer(archive.read(_WORKBOOK_RELS)):
        attributes = _attributes(relationship.group(1))
        if b"Id" in attributes and b"Target" in attributes:
            target = attributes[b"Target"].decode("utf-8", "replace")
            path = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            targets[attributes[b"Id"]] = posixpath.normpath(path)
    found: list[tuple[str, str]] = []
    for tag in _SHEET_TAG.finditer(archive.read(_XLSX_MARKER)):
        attributes = _attributes(tag.group(1))
        ids = [v for k, v in attributes.items() if k.endswith(b":id")]
        member = targets.get(ids[0]) if ids else None
        name = html.unescape(attributes.get(b"name", b"").decode("utf-8", "replace"))
        if member in names and member.startswith("xl/worksheets/") and name:
            found.append((name, member))
    return found


def _sheet_with_a_table(
    archive: zipfile.ZipFile, sheets: list[tuple[str, str]]
) -> tuple[str, str, list[Row]]:
    """The first worksheet whose first rows hold a table (a value in two rows at least): a
    cover, notes or contents sheet before the data is passed over. Else the first sheet."""
    first: tuple[str, str, list[Row]] | None = None
    for name, member in sheets[:_SHEETS_TRIED]:
        head = _head_rows(archive, member, name)
        if first is None:
            first = (name, member, head)
        if sum(any(not _blank(value) for value in row) for row in head) >= 2:
            return name, member, head
    assert first is not None
    return first


def _head_rows(archive: zipfile.ZipFile, member: str, sheet_name: str) -> list[Row]:
    """Typed cells of the sheet's first rows, from column A and row 1 (blank cells are "")."""
    xml = _head_xml(archive, member)
    _check_spread(xml)
    head = io.BytesIO()
    with zipfile.ZipFile(head, "w", zipfile.ZIP_STORED) as small:
        for info in archive.infolist():
            name = info.filename
            if name == member:
                small.writestr(name, xml)
            elif name.endswith((".xml", ".rels")) and not name.startswith(_HEAD_PARTS_SKIPPED):
                small.writestr(name, archive.read(name))
    head.seek(0)
    sheet = python_calamine.CalamineWorkbook.from_filelike(head).get_sheet_by_name(sheet_name)
    return [list(row) for row in sheet.to_python(skip_empty_area=False)]


def _head_xml(archive: zipfile.ZipFile, member: str) -> bytes:
    """The sheet XML cut after its first rows and closed again, without inflating the rest."""
    buffer = bytearray()
    filled = 0  # rows holding a value: styled empty rows above a table do not count
    last_end = 0
    with archive.open(member) as stream:
        while chunk := stream.read(_CHUNK):
            scan_from = max(0, len(buffer) - 64, last_end)  # a tag may straddle two chunks
            buffer += chunk
            for match in _ROW_END.finditer(buffer, scan_from):
                filled += _VALUE_TAG.search(buffer, last_end, match.end()) is not None
                last_end = match.end()
                if filled >= _HEAD_XML_ROWS:  # cut here, not at the chunk's last row: the
                    break  # head workbook is parsed cell by cell, a chunk holds thousands
            limit = _HEAD_XML_BYTES if filled else _HEAD_XML_MAX_BYTES
            if filled >= _HEAD_XML_ROWS or (last_end and len(buffer) >= limit):
                break
        else:
            return bytes(buffer)  # the whole sheet is small: the head is the sheet
    data_tag = _SHEET_DATA_OPEN.search(buffer)
    root_tag = _WORKSHEET_OPEN.search(buffer)
    data_prefix = (data_tag.group(1) or b"") if data_tag else b""
    root_prefix = (root_tag.group(1) or b"") if root_tag else b""
    return bytes(buffer[:last_end]) + b"</%ssheetData></%sworksheet>" % (data_prefix, root_prefix)


def _check_spread(xml: bytes) -> None:
    """Refuse cells spread far apart: calamine allocates every cell of their bounding box.

    Two cells at A1 and XFD1048576 (a 5 KB file) would make it allocate 17 billion cells and
    abort the process. The references of the head XML (small by construction) are checked
    exactly; a far cell placed below the head is found by `_check_whole_sheet_spread`.
    """
    rows = [int(number) for number in _ROW_REF.findall(xml)]
    columns: list[int] = []
    for letters, number in _CELL_REF.findall(xml):
        columns.append(_column_index(letters))
        rows.append(int(number))
    if not rows:
        return
    # A row without r="7" takes the next number: the box is at least as tall as its rows.
    height = max(max(rows) - min(rows) + 1, xml.count(b"row") // 2)
    width = max(columns) - min(columns) + 1 if columns else 1
    if height * width > _MAX_HEAD_CELLS:
        raise InvalidInput(
            f"The sheet's first cells are spread over {height} rows x {width} columns; "
            "a sheet this sparse cannot be read safely."
        )


def _check_whole_sheet_spread(archive: zipfile.ZipFile, member: str) -> None:
    """Refuse a sheet whose cells, anywhere in it, spread over a huge box (`_SheetBox`): the
    head's check sees only its first rows, and calamine reads the whole sheet."""
    info = archive.getinfo(member)
    box = _SheetBox()
    turn = itertools.count()

    def prepare(chunk: bytes) -> _References | tuple[bytes, int]:
        # In the inflating thread, in order: joined to what waited, then one stretch in
        # `_SCANNED_AHEAD` is scanned there too (inflating costs the thread about half a
        # scan). numpy's loops release the GIL: the two scans share two cores.
        stretch = box.stitch(chunk)
        return _cell_references(*stretch) if next(turn) % _SCANNED_AHEAD == 0 else stretch

    for item in _prepared_ahead(archive, info, prepare):
        box.merge(item if isinstance(item, _References) else _cell_references(*item))
    box.check(info.file_size)


def _inflated_ahead(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Generator[bytes]:
    """A member's bytes chunk by chunk, inflated by a thread a few chunks ahead."""
    return _prepared_ahead(archive, info, lambda chunk: chunk)


def _prepared_ahead(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, prepare: Callable[[bytes], _T]
) -> Generator[_T]:
    """``prepare`` of each of a member's chunks, in order, run by a thread that inflates them
    a few chunks ahead of the caller.

    ISA-L and zlib release the GIL, and so do numpy's loops: inflating and scanning overlap,
    and the scan costs its own time rather than that plus the inflating. At most `_READ_AHEAD`
    items wait; when the caller stops early the thread stops at its next chunk.
    """
    items: queue.Queue[_T | _Failed | None] = queue.Queue(maxsize=_READ_AHEAD)
    stopped = threading.Event()

    def put(item: _T | _Failed | None) -> bool:
        while not stopped.is_set():
            with contextlib.suppress(queue.Full):
                items.put(item, timeout=0.1)
                return True
        return False

    def inflate() -> None:
        try:
            for chunk in _member_chunks(archive, info):
                if not put(prepare(chunk)):
                    return
            put(None)
        except BaseException as exc:  # handed to the caller, which raises it
            put(_Failed(exc))

    thread = threading.Thread(target=inflate, name="xlsx-inflate", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no thread to be had (the address-space limit is near): inline
        for chunk in _member_chunks(archive, info):
            yield prepare(chunk)
        return
    try:
        while (item := items.get()) is not None:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stopped.set()
        thread.join()


@dataclass(frozen=True)
class _Failed:
    """What the inflating thread raised, for the caller to raise."""

    error: BaseException


def _member_chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """A member's bytes chunk by chunk: deflated ones in memory through ISA-L (a third of
    zlib's time), others through zipfile; as zipfile does, it stops at the declared size or
    where the deflated bytes or their stream end, then checks the CRC."""
    raw = _deflated_bytes(archive, info)
    if raw is None:
        with archive.open(info) as source:
            while chunk := source.read(_CHUNK):
                yield chunk
        return
    inflater = isal_zlib.decompressobj(-15)
    crc, left, taken = 0, info.file_size, 0
    pending: bytes | memoryview = b""
    while left > 0 and not inflater.eof:  # a stream ending early fails its CRC check
        if not pending:
            if taken >= len(raw):
                break
            pending = raw[taken : taken + _RAW_PIECE]
            taken += len(pending)
        chunk = inflater.decompress(pending, min(_CHUNK, left))
        pending = inflater.unconsumed_tail
        if chunk:
            crc = isal_zlib.crc32(chunk, crc)
            left -= len(chunk)
            yield chunk
    if crc != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")


def _deflated_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> memoryview | None:
    """The member's deflated bytes, when the archive is in memory and the member is plainly
    deflated (not encrypted); else None. A view: a BytesIO made from bytes gives them back
    without a copy."""
    source = archive.fp
    if not isinstance(source, io.BytesIO) or info.compress_type != zipfile.ZIP_DEFLATED:
        return None
    if info.flag_bits & 0x1:
        return None
    whole = memoryview(source.getvalue())
    header = bytes(whole[info.header_offset : info.header_offset + _LOCAL_HEADER.size])
    if len(header) < _LOCAL_HEADER.size or not header.startswith(b"PK\x03\x04"):
        raise zipfile.BadZipFile(f"{info.filename} has no local header")
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
    start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    return whole[start : start + info.compress_size]


class _SheetBox:
    """Bounding box of every cell reference (r="B7") in a sheet's XML, fed chunk by chunk.

    calamine allocates every cell of that box: two cells at A1 and XFD1048576 make it ask for
    17 billion cells, and a failed allocation aborts the process rather than raising. The
    references are found with array operations over each chunk (a regex match per cell
    costs more than calamine's own read).
    """

    def __init__(self) -> None:
        self._tail = b""
        self.rows = (math.inf, -math.inf)
        self.columns = (math.inf, -math.inf)
        self.row_tags = (math.inf, -math.inf)
        self.row_names = 0  # "row" in the XML: twice per <row>...</row>, once per <row/>

    def stitch(self, chunk: bytes) -> tuple[bytes, int]:
        """What waited and the chunk, to be scanned up to the returned size (whole tags)."""
        # One copy per chunk: what waited, the chunk, and the zero bytes a read may pass over.
        buffer = b"".join((self._tail, chunk, _REF_PADDING))
        end = len(buffer) - len(_REF_PADDING)
        cut = buffer.rfind(b">", 0, end) + 1  # an attribute never spans a '>': the rest waits
        self._tail = buffer[cut:end]
        return buffer, cut

    def merge(self, found: _References) -> None:
        self.row_names += found.row_names
        if found.rows is not None and found.columns is not None:
            self.rows = (min(self.rows[0], found.rows[0]), max(self.rows[1], found.rows[1]))
            self.columns = (
                min(self.columns[0], found.columns[0]),
                max(self.columns[1], found.columns[1]),
            )
        if found.row_tags is not None:
            low, high = found.row_tags
            self.row_tags = (min(self.row_tags[0], low), max(self.row_tags[1], high))

    def add(self, chunk: bytes) -> None:
        self.merge(_cell_references(*self.stitch(chunk)))

    def check(self, xml_bytes: int) -> None:
        self.add(b">")
        if math.isfinite(self.row_tags[0]):
            # A cell without r="B7" is placed in its <row r="7">: a far row is a far cell, as
            # the head's check counts it too.
            self.rows = (min(self.rows[0], self.row_tags[0]), max(self.rows[1], self.row_tags[1]))
            if not math.isfinite(self.columns[0]):
                self.columns = (1, 1)
        if not math.isfinite(self.rows[0]):
            return
        # A row without r="7" takes the next number: the box is at least as tall as its rows
        # ("row" opens and closes each; a self-closing one holds no cell).
        height = max(int(self.rows[1] - self.rows[0]) + 1, self.row_names // 2)
        width = int(self.columns[1] - self.columns[0]) + 1
        # A dense sheet writes at least 8 bytes of XML per cell of its box.
        if height * width > max(_MAX_HEAD_CELLS, xml_bytes // 8):
            raise InvalidInput(
                f"The sheet's cells are spread over {height} rows x {width} columns; "
                "a sheet this sparse cannot be read safely."
            )


_REF_PADDING = bytes(16)  # > '"' + 3 letters + 7 digits
_REF_WORD = ord("r") | ord("=") << 8 | ord('"') << 16  # the three bytes as a little-endian word
_ROW_WORD = ord("r") | ord("o") << 8 | ord("w") << 16
# A cell's opening tag, bare or with attributes, with or without a namespace prefix.


def _cell_references(buffer: bytes, size: int) -> _References:
    """The bounds, 1-based, of the references r="B7" in ``buffer[:size]`` (whole tags: it ends
    with a '>'), of the row references r="7", and how many times "row" occurs there.

    ``buffer`` holds at least `_REF_PADDING` more bytes, which the reads of a reference may
    reach but never use: the letters and digits of a reference stop at the '>' of its tag.
    """
    found = _References()
    if size < 4:
        return found
    text = np.frombuffer(buffer, dtype=np.uint8)
    # Both r=" and "row" start with an 'r': one pass over the bytes finds every candidate
    # (a pass per pattern byte, or bytes.count, cost as much each), then the three bytes
    # from each 'r' are read at once, as an unaligned little-endian word.
    words = np.ndarray(shape=(len(buffer) - 3,), dtype="<u4", buffer=buffer, strides=(1,))
    candidates = np.flatnonzero(text[: size - 2] == ord("r"))
    three = words[candidates] & np.uint32(0xFFFFFF)
    found.row_names = int(np.count_nonzero(three == _ROW_WORD))
    at = candidates[(three == _REF_WORD) & (candidates >= 1)]
    space = text[at - 1]
    starts = at[(space == 32) | (space == 9) | (space == 10) | (space == 13)] + 3
    if starts.shape[0] == 0:
        return found
    # Letters: up to 3 (A..XFD), as 1..26 each; then up to 7 digits. Gathered as bytes and
    # widened only where needed (a conversion of the whole buffer cost a tenth of the scan);
    # in uint8 a byte below 'A' or '0' wraps to a large value, so one comparison tests a range.
    first, second, third = (text[starts + k] - np.uint8(ord("A") - 1) for k in range(3))
    letters = (first - np.uint8(1)) < 26
    two = letters & ((second - np.uint8(1)) < 26)
    three_letters = two & ((third - np.uint8(1)) < 26)
    count = letters.view(np.uint8) + two.view(np.uint8) + three_letters.view(np.uint8)
    at_digit = starts + count
    numbered = (text[at_digit] - np.uint8(ord("0"))) <= 9
    cells = letters & numbered
    row_tags = ~letters & numbered  # r="7": a <row> (any other tag with a number is one too)
    if not (cells.any() or row_tags.any()):
        return found
    row = np.zeros(starts.shape[0], dtype=np.int32)
    reading = numbered
    for place in range(7):  # np.where, not masked assignment: that copies twice per digit
        digit = text[at_digit + place] - np.uint8(ord("0"))
        reading = reading & (digit <= 9)
        if not reading.any():
            break
        row = np.where(reading, row * 10 + digit, row)
    if row_tags.any():
        numbers = row[row_tags]
        found.row_tags = (int(numbers.min()), int(numbers.max()))
    if cells.any():
        wide = first.astype(np.int32)
        pair = np.where(two, wide * 26 + second, wide)
        column = np.where(three_letters, wide * 676 + second.astype(np.int32) * 26 + third, pair)
        rows, columns = row[cells], column[cells]
        found.rows = (int(rows.min()), int(rows.max()))
        found.columns = (int(columns.min()), int(columns.max()))
    return found


@dataclass
class _References:
    """What `_cell_references` found in a stretch of sheet XML."""

    rows: tuple[int, int] | None = None
    columns: tuple[int, int] | None = None
    row_tags: tuple[int, int] | None = None
    row_names: int = 0  # "row" occurrences: twice per <row>...</row>, once per <row/>


def _merged_ranges(archive: zipfile.ZipFile, member: str, head_rows: int) -> list[Merge]:
    """Merged ranges of the sheet that start within its first ``head_rows`` rows.

    The sheet XML is streamed and scanned for ``<mergeCell ref=...>`` without building a tree;
    a range is kept as declared here and clipped to the cells present where it is used.
    """
    found: set[Merge] = set()
    try:
        with archive.open(member) as stream:
            tail = b""
            while chunk := stream.read(_CHUNK):
                window = tail + chunk
                if b"mergeCell" in window:
                    for match in _MERGE_REF.finditer(window):
                        c1, r1, c2, r2 = match.groups()
                        first_row = int(r1) - 1
                        if first_row < head_rows:  # only the head has header labels
                            found.add(
                                (first_row, _column_index(c1), int(r2) - 1, _column_index(c2))
                            )
                tail = window[-256:]  # overlaps are deduplicated by the set
    except (KeyError, zipfile.BadZipFile, OSError, EOFError):
        return []
    return sorted(found)


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


@dataclass(frozen=True)
class Layout:
    """Where the table sits in a sheet: its labels and the absolute row its data starts at.

    ``grid`` holds the head rows read (cleaned, ``width`` columns from column A) and ``filled``
    the indices of the non-empty ones; ``labels`` is empty when the sheet has no header row.
    """

    grid: list[Row]
    filled: list[int]
    width: int
    has_header: bool
    body_start: int
    labels: list[str]


def find_layout(head: Iterable[Sequence[Cell]], merges: Callable[[], list[Merge]] = list) -> Layout:
    """Find the header in the head rows (skipping empty and title rows, joining merged cells).

    ``merges`` is called only when a merged range could change the labels (a blank header cell
    or a possible second header row): reading them means inflating the whole sheet XML.
    """
    grid, filled = _scan_head(iter(head))
    return _layout(grid, filled, merges)


def _scan_head(iterator: Iterable[Sequence[Cell]]) -> tuple[list[Row], list[int]]:
    head: list[Row] = []
    filled: list[int] = []
    for row in iterator:
        cleaned = [_cell(row, col) for col in range(len(row))]
        head.append(cleaned)
        if any(value is not None for value in cleaned):
            filled.append(len(head) - 1)
            if len(filled) >= _HEAD_ROWS:
                break
    return head, filled


def _layout(raw: list[Row], filled: list[int], merges: Callable[[], list[Merge]]) -> Layout:
    if not filled:
        raise InvalidInput(NO_COLUMNS_MESSAGE)
    width = max(len(raw[index]) for index in filled)
    check_column_count(
        sum(1 for col in range(width) if any(_cell(raw[i], col) is not None for i in filled))
    )
    grid = [[_cell(row, col) for col in range(width)] for row in raw]
    start = _header_row(grid, filled)
    has_header = _is_header(grid[start], [grid[i] for i in filled if i > start][:50])
    if not has_header:
        return Layout(grid, filled, width, False, start, [])
    header_rows = [start]
    second = _second_header_row(grid, filled, start)
    known: list[Merge] = merges() if second or any(v is None for v in grid[start]) else []
    if second and any(r1 <= start <= r2 and c2 > c1 for r1, c1, r2, c2 in known):
        header_rows = [start, start + 1]
    labels = _labels(grid, header_rows, known, width)
    return Layout(grid, filled, width, True, header_rows[-1] + 1, labels)


def _second_header_row(grid: list[Row], filled: list[int], start: int) -> bool:
    """Below a header row: is the next row labels (text over typed data) too?"""
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


def _labels(grid: list[Row], header_rows: list[int], merges: list[Merge], width: int) -> list[str]:
    """Header labels, copying a merged cell's value over its range and joining two rows.

    A merged range is clipped to the header rows and the ``width`` columns present, so a
    declared ``A1:XFD1048576`` costs no more than a two-cell one.
    """
    cells = {(r, c): grid[r][c] for r in header_rows for c in range(width)}
    for r1, c1, r2, c2 in merges:
        if (r1, c1) not in cells:
            continue
        source = cells[(r1, c1)]
        for r in header_rows:
            if not r1 <= r <= r2:
                continue
            for col in range(max(c1, 0), min(c2, width - 1) + 1):
                if cells[(r, col)] is None:
                    cells[(r, col)] = source
    labels: list[str] = []
    for col in range(width):
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


# --------------------------------------------------------------------------- the body (Arrow)


def _read_body(data: bytes, body_start: int, name: str) -> dict[int, pd.Series] | None:
    """Columns by absolute index, from ``body_start`` on; None if a column mixes cell types.

    Types are guessed from the first rows (guessing from every row costs a third of the read);
    a later cell that does not fit its column's type is reported by fastexcel and sends the
    sheet to the cell-by-cell path. A column blank in those first rows would be guessed as
    text, so one with values further down is read again with every row deciding its type.
    """
    body = _arrow_body(data, body_start, name, _SCHEMA_SAMPLE_ROWS)
    if body is not None and any(_late_values(column) for column in body[1].columns):
        body = _arrow_body(data, body_start, name, None)
    if body is None:
        return None
    positions, batch = body
    frame = pa.RecordBatch.from_arrays(
        [_blank_as_null(column) for column in batch.columns], names=batch.schema.names
    ).to_pandas()
    frame.columns = pd.RangeIndex(len(positions))
    frame = frame.dropna(how="all").reset_index(drop=True)
    return {position: _tidy(frame[index]) for index, position in enumerate(positions)}


def _arrow_body(
    data: bytes, body_start: int, name: str, sample_rows: int | None
) -> _ArrowBody | None:
    """(absolute column indices, record batch), or None when a column mixes cell types."""
    try:
        sheet = fastexcel.read_excel(data).load_sheet(
            name,
            header_row=None,
            skip_rows=body_start,
            schema_sample_rows=sample_rows,
            dtype_coercion="strict",
        )
    except (fastexcel.UnsupportedColumnTypeCombinationError, fastexcel.CalamineCellError):
        return None  # mixed types, or an error cell fastexcel has no null for (#NAME?, ...)
    batch, errors = sheet.to_arrow_with_errors()
    if errors is not None and errors.errors:
        return None
    return [column.absolute_index for column in sheet.selected_columns], batch


def _late_values(column: pa.Array) -> bool:
    """Text guessed from a blank sample, with values further down: the guess may be wrong."""
    if not pa.types.is_string(column.type) or len(column) <= _SCHEMA_SAMPLE_ROWS:
        return False
    sample = column.slice(0, _SCHEMA_SAMPLE_ROWS)
    return bool(sample.null_count == len(sample) and column.null_count < len(column))


def _blank_as_null(column: pa.Array) -> pa.Array:
    """Whitespace-only text is a missing value (fastexcel's own option costs a second pass)."""
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        return column
    blank = pc.equal(pc.utf8_trim_whitespace(column), "")
    return pc.if_else(blank, None, column) if pc.any(blank).as_py() else column


def _assemble(layout: Layout, body: dict[int, pd.Series]) -> pd.DataFrame:
    rows = len(next(iter(body.values()))) if body else 0
    width = max(layout.width, max(body, default=-1) + 1)
    labels = layout.labels + [""] * (width - len(layout.labels))
    columns: list[pd.Series] = []
    names: list[str] = []
    for position in range(width):
        column = body.get(position)
        label = labels[position]
        has_data = column is not None and bool(column.notna().any())
        if not has_data and (not label or label.startswith("Unnamed: ")):
            continue  # an empty, unlabelled column is not a column
        if column is None:
            column = pd.Series([None] * rows, dtype=object)
        columns.append(column)
        names.append(label)
    check_column_count(len(columns))
    frame = pd.concat(columns, axis=1, ignore_index=True)
    frame.columns = names if layout.has_header else generated_names(len(columns))
    return frame


def _tidy(column: pd.Series) -> pd.Series:
    """Whole-number floats as integers (calamine, like Excel, stores every number as a float).

    Timestamps get the microsecond unit Python's datetimes (the cell-by-cell path) give.
    """
    if column.dtype.kind == "M":
        return column.astype("datetime64[us]")
    if column.dtype.kind == "f" and len(column) and not column.isna().any():
        values = column.to_numpy()
        if bool(np.all(np.abs(values) < _MAX_EXACT_FLOAT)) and bool(
            np.all(values == np.floor(values))
        ):
            return column.astype(np.int64)
    return column


# --------------------------------------------------------------------------- the slow path


def _read_cell_by_cell(data: bytes, merges: list[Merge], name: str) -> tuple[pd.DataFrame, bool]:
    workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    sheet = workbook.get_sheet_by_name(name)
    _LOGGER.info("xlsx sheet mixes cell types in a column: reading it cell by cell")
    return frame_from_rows(_from_a1(sheet), merges)


def _from_a1(sheet: python_calamine.CalamineSheet) -> Iterator[Row]:
    """The sheet's rows as from cell A1 (calamine starts at the first cell present), lazily."""
    first_row, first_col = sheet.start or (0, 0)
    for _ in range(first_row):
        yield []
    padding: Row = [None] * first_col
    for row in sheet.iter_rows():
        yield padding + list(row)


def frame_from_rows(
    rows: Iterable[Sequence[Cell]], merges: list[Merge] | None = None
) -> tuple[pd.DataFrame, bool]:
    """Build the frame from rows of typed cells (the slow path: each cell keeps its own type).

    Only the first rows are kept as Python lists (to find the header); the body is
    streamed into typed column chunks so that memory stays near the size of the data.
    Returns the frame and whether a header row was found.
    """
    iterator = iter(rows)
    raw, filled = _scan_head(iterator)
    layout = _layout(raw, filled, lambda: merges or [])
    builder = _ColumnBuilder()
    for index in filled:
        if index >= layout.body_start:
            builder.add(layout.grid[index])
    for row in iterator:
        # Inline rather than _cell per cell: this loop sees every cell of the sheet.
        builder.add(
            [
                None if value is None or (isinstance(value, str) and not value.strip()) else value
                for value in row
            ]
        )
    body = dict(enumerate(builder.finish(layout.width)))
    return _assemble(layout, body), layout.has_header


class _ColumnBuilder:
    """Collects rows into per-column chunks of typed Series (numbers as float64 arrays)."""

    def __init__(self) -> None:
        self.chunks: list[list[pd.Series]] = []
        self.pending: list[Row] = []
        self.rows = 0

    def add(self, row: Row) -> None:
        if row.count(None) != len(row):
            self.pending.append(row)
            if len(self.pending) >= _CHUNK_ROWS:
                self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        count = len(self.pending)
        for col, values in enumerate(itertools.zip_longest(*self.pending)):  # short rows: None
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
                columns.append(pd.Series([None] * self.rows, dtype=object))
                continue
            column = pd.concat(typed, ignore_index=True) if len(typed) > 1 else typed[0]
            if column.dtype == object:
                column = _dates_as_datetimes(column.infer_objects())
            columns.append(_tidy(column.reset_index(drop=True)))
        return columns


def _dates_as_datetimes(column: pd.Series) -> pd.Series:
    """calamine gives a midnight date cell as a ``date``: a column of them is a datetime column."""
    present = column.dropna()
    if (
        column.dtype == object
        and len(present)
        and all(isinstance(value, dt.date) for value in present)
    ):
        return pd.to_datetime(column)
    return column
