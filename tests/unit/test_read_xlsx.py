"""XLSX reading: header finding (merged cells, titles, empty rows), streaming, zip-bomb guard."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import pathlib
import re
import struct
import zipfile
from typing import Any

import fastexcel
import openpyxl
import pandas as pd
import pytest
import python_calamine

from analysis_svc.engine.readers import xlsx_reader as read_xlsx
from analysis_svc.engine.readers.dispatch import InvalidInput, read_table
from analysis_svc.engine.readers.xlsx_reader import frame_from_rows


def _save(workbook: Any, tmp_path: pathlib.Path, name: str = "book.xlsx") -> pathlib.Path:
    path = tmp_path / name
    workbook.save(path)
    return path


def test_merged_header_cells_with_title_and_empty_leading_rows(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append([])
    sheet.append(["Quarterly sales report"])
    sheet.append([])
    sheet.append(["Region", "Sales", None, "Notes"])
    sheet.append([None, "2023", "2024", None])
    sheet.merge_cells("A1:D1")
    sheet.merge_cells("B4:C4")
    sheet.merge_cells("A4:A5")
    sheet.merge_cells("D4:D5")
    sheet.append(["North", 10, 12, "ok"])
    sheet.append(["South", 7, 5, None])
    table = read_table(_save(workbook, tmp_path))
    assert table.source_format == "xlsx"
    assert list(table.frame.columns) == ["Region", "Sales 2023", "Sales 2024", "Notes"]
    assert table.frame["Sales 2024"].tolist() == [12, 5]
    assert table.frame.shape == (2, 4)


def test_merged_header_over_one_row_copies_the_label(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Name", "Amount", None])
    sheet.merge_cells("B1:C1")
    sheet.append(["a", 1, 2])
    sheet.append(["b", 3, 4])
    frame = read_table(_save(workbook, tmp_path)).frame
    # The row below the merged header holds data, so it is not a second header row.
    assert list(frame.columns) == ["Name", "Amount", "Amount.1"]
    assert frame.shape == (2, 3)


def test_sheet_without_header_gets_generated_names(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in ([1, 2.5], [2, 3.5], [3, 4.5]):
        sheet.append(row)
    table = read_table(_save(workbook, tmp_path))
    assert table.header is False
    assert list(table.frame.columns) == ["column_1", "column_2"]
    assert table.frame["column_2"].tolist() == [2.5, 3.5, 4.5]


def test_streamed_chunks_keep_types_and_late_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_xlsx, "_CHUNK_ROWS", 3)
    rows: list[list[Any]] = [["n", "label"]]
    rows += [[i, f"v{i}"] for i in range(10)]
    rows += [[10, "v10", "late"], [11, "v11", None]]
    frame, header = frame_from_rows(rows)
    assert header is True
    assert list(frame.columns) == ["n", "label", "Unnamed: 2"]
    assert frame["n"].tolist() == list(range(12))
    assert frame["n"].dtype.kind in "if"
    assert frame["Unnamed: 2"].iloc[-2] == "late"
    assert frame["Unnamed: 2"].isna().sum() == 11


def test_mixed_column_stays_object_for_the_profiler() -> None:
    frame, _ = frame_from_rows([["x"], [1], ["two"], [3.5]])
    assert frame["x"].tolist() == [1, "two", 3.5]


def test_blank_strings_are_missing_and_blank_rows_skipped() -> None:
    frame, _ = frame_from_rows([["a", "b"], ["  ", 1], [None, None], ["x", 2]])
    assert frame.shape == (2, 2)
    assert frame["a"].isna().tolist() == [True, False]


def _zip_bomb() -> bytes:
    workbook = openpyxl.Workbook()
    buffer = io.BytesIO()
    workbook.save(buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in source.infolist():
            archive.writestr(member, source.read(member.filename))
        archive.writestr("xl/worksheets/sheet2.xml", b"<a>" + b" " * (50 * 1024 * 1024) + b"</a>")
    return out.getvalue()


def test_zip_bomb_is_refused_without_opening_the_workbook(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the workbook must not be opened")

    monkeypatch.setattr(openpyxl, "load_workbook", refuse)
    monkeypatch.setattr(fastexcel, "read_excel", refuse)
    monkeypatch.setattr(python_calamine, "CalamineWorkbook", refuse)
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(_zip_bomb())
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(InvalidInput, match="compressed suspiciously well"):
        read_table(path)


def test_2001_columns_are_refused_before_reading_the_body(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append([f"c{i}" for i in range(2001)])
    sheet.append(list(range(2001)))
    path = tmp_path / "wide.xlsx"
    workbook.save(path)
    with pytest.raises(InvalidInput, match="2001 columns"):
        read_table(path)


# --------------------------------------------------------------------------- calamine paths


def _rewrite_sheet(path: pathlib.Path, edit: Any) -> pathlib.Path:
    """Rewrite the first sheet's XML of a saved workbook with ``edit(xml) -> xml``."""
    with zipfile.ZipFile(path) as source:
        members = [(info, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            if info.filename == "xl/worksheets/sheet1.xml":
                data = edit(data)
            archive.writestr(info, data)
    return path


def _small_table(tmp_path: pathlib.Path) -> pathlib.Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Region", None, "Units"])
    sheet.append(["North", "a", 3])
    sheet.append(["South", "b", 5])
    return _save(workbook, tmp_path)


def test_merge_over_the_whole_sheet_is_clipped_to_the_header(tmp_path: pathlib.Path) -> None:
    # 17 billion cells declared; a reader that loops over the declared range never returns.
    def merge_everything(xml: bytes) -> bytes:
        merges = b'<mergeCells count="1"><mergeCell ref="A1:XFD1048576"/></mergeCells>'
        return xml.replace(b"</sheetData>", b"</sheetData>" + merges)

    path = _rewrite_sheet(_small_table(tmp_path), merge_everything)
    assert path.stat().st_size < 10_000
    table = read_table(path)
    # The merged A1 label is copied over the blank B1, and nowhere else: C1 keeps its own.
    assert list(table.frame.columns) == ["Region", "Region.1", "Units"]
    assert table.frame.to_dict("list") == {
        "Region": ["North", "South"],
        "Region.1": ["a", "b"],
        "Units": [3, 5],
    }


def test_declared_dimension_of_the_whole_sheet_is_not_trusted(tmp_path: pathlib.Path) -> None:
    def declare_everything(xml: bytes) -> bytes:
        declared = re.sub(rb'<dimension ref="[^"]*"\s*/>', b'<dimension ref="A1:XFD1048576"/>', xml)
        assert declared != xml
        return declared

    path = _rewrite_sheet(_small_table(tmp_path), declare_everything)
    assert path.stat().st_size < 10_000
    frame = read_table(path).frame
    assert frame.shape == (2, 3)
    assert frame["Units"].tolist() == [3, 5]


def test_mixed_column_in_a_workbook_keeps_each_cells_type(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (["x", "n"], [1, 10], ["two", 20], [3.5, 30]):
        sheet.append(row)
    frame = read_table(_save(workbook, tmp_path)).frame
    assert frame["x"].tolist() == [1, "two", 3.5]
    assert frame["n"].tolist() == [10, 20, 30]
    assert pd.api.types.is_integer_dtype(frame["n"].dtype)


def test_long_sheet_beyond_the_head_keeps_types_late_columns_and_dates(
    tmp_path: pathlib.Path,
) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append([])
    sheet.append(["Daily visitors"])
    sheet.append(["day", "visitors", "share"])
    start = dt.date(2024, 1, 1)
    count = 3 * read_xlsx._HEAD_XML_ROWS
    for n in range(count):
        sheet.append([start + dt.timedelta(days=n), n, n / count])
    sheet.append([None, None, None, "late note"])
    sheet.append([])
    sheet.append([start, 0, 0.5])
    table = read_table(_save(workbook, tmp_path))
    frame = table.frame
    assert table.header is True
    assert list(frame.columns) == ["day", "visitors", "share", "Unnamed: 3"]
    assert frame.shape == (count + 2, 4)
    assert pd.api.types.is_datetime64_any_dtype(frame["day"].dtype)
    assert frame["day"].iloc[count - 1] == pd.Timestamp(start + dt.timedelta(days=count - 1))
    assert pd.api.types.is_float_dtype(frame["visitors"].dtype)  # the late row left a gap
    assert frame["visitors"].iloc[:count].tolist() == list(range(count))
    assert frame["Unnamed: 3"].iloc[count] == "late note"
    assert frame["Unnamed: 3"].notna().sum() == 1


def test_first_sheet_is_read_whatever_the_part_names(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook()
    first = workbook.active
    assert first is not None
    first.title = "Summary"
    first.append(["kind", "total"])
    first.append(["a", 1])
    other = workbook.create_sheet("Raw", 0)
    other.append(["id", "value"])
    other.append([7, "x"])
    other.append([8, "y"])
    path = _save(workbook, tmp_path)
    # Swap the parts so that the first sheet ("Raw") lives in sheet2.xml: the reader must follow
    # the workbook's relationships, not the part names.
    sheets = {f"xl/worksheets/sheet{n}.xml" for n in (1, 2)}
    with zipfile.ZipFile(path) as source:
        members = [(info, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            if info.filename in sheets:
                info.filename = (sheets - {info.filename}).pop()
            if info.filename == "xl/_rels/workbook.xml.rels":
                swapped = data.replace(b"sheet1.xml", b"sheetX.xml")
                data = swapped.replace(b"sheet2.xml", b"sheet1.xml").replace(b"sheetX", b"sheet2")
            archive.writestr(info, data)
    frame = read_table(path).frame
    assert frame.to_dict("list") == {"id": [7, 8], "value": ["x", "y"]}


def test_whitespace_cells_are_missing_in_a_workbook(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (["name", "n"], ["  ", 1], ["\t", 2], ["x", "   "], [" y ", 4]):
        sheet.append(row)
    frame = read_table(_save(workbook, tmp_path)).frame
    assert frame["name"].isna().tolist() == [True, True, False, False]
    assert frame["name"].iloc[3] == " y "
    assert frame["n"].isna().tolist() == [False, False, True, False]
    assert pd.api.types.is_float_dtype(frame["n"].dtype)


def test_cell_that_breaks_its_columns_type_after_the_sample_keeps_its_type(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_xlsx, "_SCHEMA_SAMPLE_ROWS", 5)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["amount", "sparse", "label"])
    for n in range(10):
        sheet.append([n + 0.5, None, f"t{n}"])
    sheet.append(["n/a yet", 7, "late"])
    frame = read_table(_save(workbook, tmp_path)).frame
    assert frame["amount"].iloc[-1] == "n/a yet"
    assert frame["amount"].iloc[0] == 0.5
    assert frame["sparse"].iloc[-1] == 7
    assert frame["sparse"].isna().sum() == 10


def test_column_blank_in_the_sample_gets_its_type_from_later_rows(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_xlsx, "_SCHEMA_SAMPLE_ROWS", 5)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["id", "refund"])
    for n in range(10):
        sheet.append([n, None])
    sheet.append([10, 2.5])
    sheet.append([11, 4.0])
    frame = read_table(_save(workbook, tmp_path)).frame
    assert pd.api.types.is_float_dtype(frame["refund"].dtype)
    assert frame["refund"].iloc[-2:].tolist() == [2.5, 4.0]


def test_two_cells_at_opposite_corners_are_refused(tmp_path: pathlib.Path) -> None:
    # calamine would allocate the 17 billion cells between them (and abort the process).
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["a", "b"])
    sheet.append([1, 2])
    sheet["XFD1048576"] = 3
    path = _save(workbook, tmp_path)
    assert path.stat().st_size < 10_000
    with pytest.raises(InvalidInput, match="1048576 rows x 16384 columns"):
        read_table(path)


@pytest.mark.parametrize("error", [b"#DIV/0!", b"#NAME?"])
def test_error_cells_are_missing_values(tmp_path: pathlib.Path, error: bytes) -> None:
    def error_in_c3(xml: bytes) -> bytes:
        cell = b'<c r="C3" t="n"><v>4</v></c>'
        assert cell in xml
        return xml.replace(cell, b'<c r="C3" t="e"><v>' + error + b"</v></c>")

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (["a", "b", "c"], [1, "x", 3], [2, "y", 4]):
        sheet.append(row)
    frame = read_table(_rewrite_sheet(_save(workbook, tmp_path), error_in_c3)).frame
    assert frame["a"].tolist() == [1, 2]
    assert frame["c"].iloc[0] == 3
    assert pd.isna(frame["c"].iloc[1])


def test_styled_empty_rows_above_the_table_do_not_hide_it(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    empty_rows = 40_000  # more than the first chunk of inflated XML holds
    for row in range(1, empty_rows + 1):  # formatted but empty: a <row> with a styled <c/>
        sheet.cell(row=row, column=1).font = openpyxl.styles.Font(bold=True)
    sheet.append(["region", "units", None])
    sheet.merge_cells(
        start_row=empty_rows + 1, start_column=2, end_row=empty_rows + 1, end_column=3
    )
    count = 2 * read_xlsx._HEAD_XML_ROWS  # longer than the head: the head is cut
    for n in range(count):
        sheet.append(["North", n, -n])
    path = _save(workbook, tmp_path)
    with zipfile.ZipFile(path) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml")
    assert xml.count(b"<row ") > empty_rows
    assert xml.index(b"<v>") > read_xlsx._CHUNK
    frame = read_table(path).frame
    # The merge over the header row (found below the empty rows) copies "units" over C.
    assert list(frame.columns) == ["region", "units", "units.1"]
    assert frame["units"].tolist() == list(range(count))
    assert frame["units.1"].iloc[-1] == 1 - count


def test_the_head_is_cut_at_its_last_row_even_inside_the_first_chunk() -> None:
    # 1000 short rows fit in one inflated chunk: the head still ends after _HEAD_XML_ROWS
    # rows holding a value (the head workbook is parsed cell by cell), closed again.
    rows = b"".join(
        b'<row r="%d"><c r="A%d"><v>%d</v></c></row>' % (i, i, i) for i in range(1, 1001)
    )
    sheet = b"<worksheet><sheetData>" + rows + b"</sheetData></worksheet>"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    with zipfile.ZipFile(buffer) as archive:
        head = read_xlsx._head_xml(archive, "xl/worksheets/sheet1.xml")
    assert len(sheet) < read_xlsx._CHUNK
    assert head.count(b"</row>") == read_xlsx._HEAD_XML_ROWS
    assert head.endswith(b"<v>%d</v></c></row></sheetData></worksheet>" % read_xlsx._HEAD_XML_ROWS)


def _table_with_a_far_cell(tmp_path: pathlib.Path, far: str, rows: int) -> pathlib.Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["a", "b"])
    for n in range(rows):
        sheet.append([n, 2 * n])
    sheet[far] = 3
    return _save(workbook, tmp_path)


def test_a_far_cell_below_the_head_is_refused(tmp_path: pathlib.Path) -> None:
    # The head (its first rows) is dense; calamine would still allocate the 17 billion cells
    # up to XFD1048576 and abort the process (tests/integration/test_sandbox.py runs it there).
    path = _table_with_a_far_cell(tmp_path, "XFD1048576", 30_000)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("xl/worksheets/sheet1.xml").file_size > read_xlsx._CHUNK
    with pytest.raises(InvalidInput, match="1048576 rows x 16384 columns"):
        read_table(path)


def test_a_far_cell_in_a_narrow_sheet_is_read(tmp_path: pathlib.Path) -> None:
    # A million rows of two columns is a box calamine can hold: read, blank rows dropped.
    frame = read_table(_table_with_a_far_cell(tmp_path, "B1048576", 30_000)).frame
    assert frame.shape == (30_001, 2)
    assert frame["b"].iloc[-1] == 3


def test_cell_references_are_found_across_chunk_boundaries() -> None:
    xml = (
        b'<row r="7"><c r="B7" t="s"><v>1</v></c><c r="XFD1048576"/>'
        b'<c\tr="AA12"/><selection sqref="A1"/><c r="C3"><v>2</v></c></row>'
    )
    for cut in range(1, len(xml)):
        box = read_xlsx._SheetBox()
        box.add(xml[:cut])
        box.add(xml[cut:])
        with pytest.raises(InvalidInput, match="1048574 rows x 16383 columns"):
            box.check(len(xml))  # flushes what waited for its closing '>'
        assert box.rows == (3, 1048576)
        assert box.columns == (2, 16384)


@pytest.mark.parametrize("stretch", range(read_xlsx._SCANNED_AHEAD + 1))
def test_a_far_cell_is_found_whichever_thread_scans_its_stretch(stretch: int) -> None:
    # The inflating thread scans one stretch in _SCANNED_AHEAD, the caller the others.
    row = b'<row r="%d"><c r="A%d"><v>1</v></c><c r="B%d"><v>2</v></c></row>'
    rows = [row % (i, i, i) for i in range(1, 150_000)]
    ends = itertools.accumulate(map(len, rows))
    at = next(i for i, end in enumerate(ends) if end > stretch * read_xlsx._CHUNK)
    rows[at] = rows[at].replace(b'r="B', b'r="XFD', 1)
    sheet = b"<worksheet><sheetData>" + b"".join(rows) + b"</sheetData></worksheet>"
    assert len(sheet) > (read_xlsx._SCANNED_AHEAD + 1) * read_xlsx._CHUNK
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    with (
        zipfile.ZipFile(buffer) as archive,
        pytest.raises(InvalidInput, match="149999 rows x 16384 columns"),
    ):
        read_xlsx._check_whole_sheet_spread(archive, "xl/worksheets/sheet1.xml")


def test_the_sheet_inflated_ahead_is_the_sheet_and_stops_with_its_reader() -> None:
    sheet = b"".join(
        b'<row r="%d"><c r="A%d"><v>%d</v></c></row>' % (i, i, i) for i in range(1, 200_000)
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    with zipfile.ZipFile(buffer) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
        assert b"".join(read_xlsx._inflated_ahead(archive, info)) == sheet
        chunks = read_xlsx._inflated_ahead(archive, info)
        assert next(chunks) == sheet[: read_xlsx._CHUNK]
        chunks.close()  # the inflating thread stops (and is joined) with its reader


def test_a_damaged_sheet_inflated_ahead_raises_in_its_reader() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"<row/>" * 1000)
    data = buffer.getvalue().replace(b"<row/><row/>", b"<row/><rox/>", 1)  # CRC mismatch
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
        with pytest.raises(zipfile.BadZipFile):
            b"".join(read_xlsx._inflated_ahead(archive, info))


def _deflated_sheet(sheet: bytes, crc_delta: int, deflated_delta: int, size_delta: int) -> bytes:
    """A zip of one deflated sheet whose directory entry declares a CRC, a deflated size and
    a size off by the deltas (the local header keeps the true ones)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
    data = bytearray(buffer.getvalue())
    entry = data.index(b"PK\x01\x02")
    crc, deflated, size = struct.unpack_from("<III", data, entry + 16)
    deltas = (crc_delta, deflated_delta, size_delta)
    values = [
        (value + delta) % 2**32 for value, delta in zip((crc, deflated, size), deltas, strict=True)
    ]
    struct.pack_into("<III", data, entry + 16, *values)
    return bytes(data)


def _outcome(read: Any) -> Any:
    try:
        return read()
    except (zipfile.BadZipFile, EOFError) as exc:
        return type(exc)


@pytest.mark.parametrize(
    ("crc_delta", "deflated_delta", "size_delta", "expected"),
    [
        (0, 0, 0, bytes),
        (1, 0, 0, zipfile.BadZipFile),  # a wrong CRC
        (0, 0, -6, zipfile.BadZipFile),  # declared shorter: cut there, and the CRC fails
        (0, 0, 100_000, bytes),  # declared longer: the stream's end ends it, the CRC holds
        (0, -100, 0, zipfile.BadZipFile),  # deflated bytes cut short: the CRC fails
    ],
)
def test_a_deflated_sheet_inflated_ahead_ends_as_zipfile_reads_it(
    crc_delta: int, deflated_delta: int, size_delta: int, expected: type
) -> None:
    sheet = b"".join(
        b'<row r="%d"><c r="A%d"><v>%d</v></c></row>' % (i, i, i) for i in range(1, 90_000)
    )
    data = _deflated_sheet(sheet, crc_delta, deflated_delta, size_delta)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
        ours = _outcome(lambda: b"".join(read_xlsx._inflated_ahead(archive, info)))
        assert ours == _outcome(lambda: archive.read(info))
    assert ours == sheet if expected is bytes else ours is expected


def _strip_references(xml: bytes, from_row: int) -> bytes:
    """Drop r="..." from the rows (and their cells) numbered `from_row` and above."""

    def row(match: re.Match[bytes]) -> bytes:
        if int(match.group(1)) < from_row:
            return match.group(0)
        return re.sub(rb' r="[A-Z]*\d+"', b"", match.group(0))

    return re.sub(rb'<row r="(\d+)".*?</row>', row, xml, flags=re.S)


def test_rows_without_references_count_toward_the_box(tmp_path: pathlib.Path) -> None:
    # A wide first row, then 30,000 rows whose cells name no reference: calamine numbers them
    # on, and the box of the head alone (two rows) would hide that it is 30,001 x 16,384.
    path = _table_with_a_far_cell(tmp_path, "XFD1", 30_000)
    _rewrite_sheet(path, lambda xml: _strip_references(xml, 2))
    with pytest.raises(InvalidInput, match="x 16384 columns"):
        read_table(path)


def test_a_far_row_holding_an_unreferenced_cell_is_refused() -> None:
    # <row r="1048576"><c> places that cell a million rows down with no r="A1048576" to see.
    xml = (
        b'<row r="1"><c r="A1"><v>1</v></c><c r="XFD1"><v>2</v></c></row>'
        b'<row r="1048576"><c><v>3</v></c></row>'
    )
    box = read_xlsx._SheetBox()
    box.add(xml)
    with pytest.raises(InvalidInput, match="1048576 rows x 16384 columns"):
        box.check(len(xml))


def test_a_cover_sheet_before_the_table_is_passed_over(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook()
    cover = workbook.active
    assert cover is not None
    cover.title = "Read me"
    cover["B2"] = "Quarterly figures, see the next sheet"
    chart = workbook.create_chartsheet("Chart & notes")  # not a worksheet: never chosen
    assert chart is not None
    data = workbook.create_sheet("Données & chiffres")
    data.append(["region", "units"])
    for n in range(30):
        data.append([f"r{n % 3}", n])
    frame = read_table(_save(workbook, tmp_path)).frame
    assert list(frame.columns) == ["region", "units"]
    assert frame["units"].tolist() == list(range(30))


def test_a_workbook_without_a_table_reads_its_first_sheet(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook()
    first = workbook.active
    assert first is not None
    first["A1"] = "only a title"
    workbook.create_sheet("second")["A1"] = "another title"
    with pytest.raises(InvalidInput, match="no data rows"):
        read_table(_save(workbook, tmp_path))
