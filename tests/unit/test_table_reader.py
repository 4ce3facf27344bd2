"""Unit tests for analysis_svc.engine.readers.dispatch (fixtures are generated in tmp_path)."""

from __future__ import annotations

import datetime as dt
import io
import pathlib
import random
import zipfile
from typing import Any

import fastexcel
import openpyxl
import pandas as pd
import pytest
import python_calamine

from analysis_svc.engine.readers import dispatch as table_reader
from analysis_svc.engine.readers import xlsx_reader as read_xlsx
from analysis_svc.engine.readers.dispatch import InvalidInput, Table, read_table

PNG_HEADER = b"\x89PNG\r\n\x1a\n"


def _write(tmp_path: pathlib.Path, name: str, data: bytes) -> pathlib.Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _refusal(path: pathlib.Path, hint: str = "") -> str:
    with pytest.raises(InvalidInput) as info:
        read_table(path, hint)
    message = str(info.value)
    assert message
    return message


# --------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_delimiters(tmp_path: pathlib.Path, delimiter: str) -> None:
    lines = ["name,amount,city", "Anna,10,Paris", "Bob,20.5,Rome", "Cleo,,Oslo"]
    text = "\n".join(line.replace(",", delimiter) for line in lines) + "\n"
    table = read_table(_write(tmp_path, "data.txt", text.encode()))
    assert isinstance(table, Table)
    assert table.source_format == "csv"
    assert list(table.frame.columns) == ["name", "amount", "city"]
    assert table.frame.shape == (3, 3)
    assert table.frame["name"].tolist() == ["Anna", "Bob", "Cleo"]
    assert table.frame["amount"].iloc[:2].tolist() == [10.0, 20.5]
    assert pd.isna(table.frame["amount"].iloc[2])


def test_semicolon_with_decimal_commas(tmp_path: pathlib.Path) -> None:
    text = "product;price;qty\nfoo;1,5;3\nbar;2,25;4\nbaz;3,75;5\n"
    frame = read_table(_write(tmp_path, "eu.csv", text.encode())).frame
    assert list(frame.columns) == ["product", "price", "qty"]
    assert frame["price"].tolist() == [1.5, 2.25, 3.75]
    assert frame["qty"].tolist() == [3, 4, 5]


def test_quoted_fields_with_delimiters_and_newlines(tmp_path: pathlib.Path) -> None:
    text = 'id,comment\n1,"hello, world"\n2,"two\nlines"\n3,plain\n'
    frame = read_table(_write(tmp_path, "q.csv", text.encode())).frame
    assert frame.shape == (3, 2)
    assert frame["comment"].tolist() == ["hello, world", "two\nlines", "plain"]


def test_single_column_file(tmp_path: pathlib.Path) -> None:
    frame = read_table(_write(tmp_path, "one.csv", b"value\n1\n2\n3\n")).frame
    assert list(frame.columns) == ["value"]
    assert frame["value"].tolist() == [1, 2, 3]


def test_header_only_file_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidInput, match="no data rows"):
        read_table(_write(tmp_path, "h.csv", b"a,b,c\n"))


@pytest.mark.parametrize(
    "content", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000]
)
def test_deeply_nested_json_is_refused(tmp_path: pathlib.Path, content: bytes) -> None:
    with pytest.raises(InvalidInput, match="nested too deeply"):
        read_table(_write(tmp_path, "deep.json", content))


@pytest.mark.parametrize("name", ["long.json", "long.jsonl"])
def test_a_number_too_long_for_python_to_parse_is_invalid_input(
    tmp_path: pathlib.Path, name: str
) -> None:
    rows = [b'{"a": %d, "b": 1%s}' % (i, b"0" * 5000) for i in range(3)]
    content = b"[" + b",".join(rows) + b"]" if name.endswith(".json") else b"\n".join(rows)
    with pytest.raises(InvalidInput, match="number of more than 4300 digits"):
        read_table(_write(tmp_path, name, content))


def test_crlf_and_blank_lines(tmp_path: pathlib.Path) -> None:
    frame = read_table(_write(tmp_path, "w.csv", b"a;b\r\n1;2\r\n\r\n3;4\r\n")).frame
    assert frame.to_dict("list") == {"a": [1, 3], "b": [2, 4]}


def test_utf8_with_bom(tmp_path: pathlib.Path) -> None:
    data = "città,n\nZürich,1\nSão Paulo,2\n".encode("utf-8-sig")
    assert data.startswith(b"\xef\xbb\xbf")
    frame = read_table(_write(tmp_path, "bom.csv", data)).frame
    assert list(frame.columns) == ["città", "n"]
    assert frame["città"].tolist() == ["Zürich", "São Paulo"]


def test_utf8_without_bom(tmp_path: pathlib.Path) -> None:
    data = "name,n\nÅsa,1\n日本,2\n".encode()
    frame = read_table(_write(tmp_path, "u.csv", data)).frame
    assert frame["name"].tolist() == ["Åsa", "日本"]


def test_cp1252_with_accents(tmp_path: pathlib.Path) -> None:
    data = "nom;prix\nCafé crème;2\nDéjà vu €;3\n".encode("cp1252")
    frame = read_table(_write(tmp_path, "fr.csv", data)).frame
    assert list(frame.columns) == ["nom", "prix"]
    assert frame["nom"].tolist() == ["Café crème", "Déjà vu €"]


def test_latin1_last_resort(tmp_path: pathlib.Path) -> None:
    # 0x81 is undefined in cp1252, so only latin-1 decodes this file.
    data = b"a,b\nx\x81y,1\n"
    frame = read_table(_write(tmp_path, "l1.csv", data)).frame
    assert frame["a"].tolist() == ["x\x81y"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom(tmp_path: pathlib.Path, codec: str) -> None:
    text = "name\tqty\nÉlise\t3\nZoë\t4\n"
    data = text.encode(codec)
    if codec != "utf-16":
        bom = "\ufeff".encode(codec)
        data = bom + data
    frame = read_table(_write(tmp_path, "u16.csv", data)).frame
    assert list(frame.columns) == ["name", "qty"]
    assert frame["name"].tolist() == ["Élise", "Zoë"]
    assert frame["qty"].tolist() == [3, 4]


def test_duplicate_column_names_are_made_unique(tmp_path: pathlib.Path) -> None:
    frame = read_table(_write(tmp_path, "d.csv", b"a,b,a,a\n1,2,3,4\n")).frame
    assert list(frame.columns) == ["a", "b", "a.1", "a.2"]
    assert all(isinstance(name, str) for name in frame.columns)


def test_numeric_header_names_are_strings(tmp_path: pathlib.Path) -> None:
    # Numbers above text columns are a header; numbers above numbers are data (see no-header).
    frame = read_table(_write(tmp_path, "n.csv", b"2023,2024\nup,down\nflat,up\n")).frame
    assert list(frame.columns) == ["2023", "2024"]
    assert frame["2023"].tolist() == ["up", "flat"]


def test_unique_names_is_deterministic() -> None:
    assert table_reader.unique_names(["a", "a", "a.1", "b"]) == ["a", "a.2", "a.1", "b"]
    assert table_reader.unique_names(["x", "x", "x"]) == ["x", "x.1", "x.2"]


def test_tsv_hint_breaks_exact_tie(tmp_path: pathlib.Path) -> None:
    data = b"a,b\tc\n1,2\t3\n4,5\t6\n"
    assert list(read_table(_write(tmp_path, "t1", data)).frame.columns) == ["a", "b\tc"]
    frame = read_table(_write(tmp_path, "t2", data), filename_hint="export.TSV").frame
    assert list(frame.columns) == ["a,b", "c"]


def test_csv_detected_by_content_not_name(tmp_path: pathlib.Path) -> None:
    table = read_table(_write(tmp_path, "report.xlsx", b"a,b\n1,2\n"), "report.xlsx")
    assert table.source_format == "csv"


# --------------------------------------------------------------------------- CSV refusals


def test_ragged_rows_are_refused_with_line_number(tmp_path: pathlib.Path) -> None:
    data = b"a,b\n1,2\n3,4,SECRETVALUE\n5,6\n"
    message = _refusal(_write(tmp_path, "r.csv", data))
    assert "Line 3" in message
    assert "SECRETVALUE" not in message


def test_every_row_one_field_longer_than_header_is_refused(tmp_path: pathlib.Path) -> None:
    # Without a check pandas would silently use (or drop) the first column.
    data = b"a,b\n0,2,3\n1,5,6\n2,8,9\n"
    message = _refusal(_write(tmp_path, "r2.csv", data))
    assert "header" in message


def test_trailing_delimiter_on_data_rows_is_tolerated(tmp_path: pathlib.Path) -> None:
    frame = read_table(_write(tmp_path, "t.csv", b"a,b\n1,2,\n3,4,\n")).frame
    assert frame.to_dict("list") == {"a": [1, 3], "b": [2, 4]}


def test_unterminated_quote_is_refused(tmp_path: pathlib.Path) -> None:
    message = _refusal(_write(tmp_path, "q.csv", b'a,b\n1,"never closed\n2,3\n'))
    assert "quoted" in message


def test_too_many_columns_is_refused(tmp_path: pathlib.Path) -> None:
    header = ",".join(f"c{i}" for i in range(2001))
    values = ",".join("1" for _ in range(2001))
    message = _refusal(_write(tmp_path, "wide.csv", f"{header}\n{values}\n".encode()))
    assert "2001" in message
    assert "2000" in message


def test_exactly_max_columns_is_accepted(tmp_path: pathlib.Path) -> None:
    header = ",".join(f"c{i}" for i in range(2000))
    values = ",".join("1" for _ in range(2000))
    frame = read_table(_write(tmp_path, "wide.csv", f"{header}\n{values}\n".encode())).frame
    assert frame.shape == (1, 2000)


@pytest.mark.parametrize(
    "data",
    [b"", b"   \n\t\r\n  ", "\n \n".encode("utf-16"), b"\xef\xbb\xbf\n\n"],
    ids=["zero-bytes", "whitespace", "utf16-whitespace", "bom-only"],
)
def test_empty_file_is_refused(tmp_path: pathlib.Path, data: bytes) -> None:
    assert _refusal(_write(tmp_path, "empty.csv", data)) == "The file is empty."


def test_binary_file_is_refused(tmp_path: pathlib.Path) -> None:
    noise = random.Random(1234).randbytes(16 * 1024)
    data = PNG_HEADER + b"\x00\x00\x00\rIHDR" + noise
    message = _refusal(_write(tmp_path, "pic.csv", data), "pic.csv")
    assert "not a CSV, XLSX, JSON or Parquet" in message


def test_control_characters_without_nul_are_refused(tmp_path: pathlib.Path) -> None:
    rng = random.Random(99)
    noise = bytes(rng.choice(range(1, 32)) for _ in range(4096))
    message = _refusal(_write(tmp_path, "ctl.csv", b"a,b\n" + noise))
    assert "not a CSV, XLSX, JSON or Parquet" in message


def test_utf16_bom_that_does_not_decode_is_refused(tmp_path: pathlib.Path) -> None:
    # A lone high surrogate followed by a non-surrogate cannot be decoded.
    data = b"\xff\xfe" + "a,b\n".encode("utf-16-le") + b"\x00\xd8\x41\x00"
    assert "could not be decoded as UTF-16" in _refusal(_write(tmp_path, "bad16.csv", data))


# --------------------------------------------------------------------------- XLSX


def test_xlsx_is_read_with_types(tmp_path: pathlib.Path) -> None:
    rows: list[list[Any]] = [
        ["id", "name", "when", "amount", "ok"],
        [1, "Anna", dt.datetime(2024, 1, 1), 1.5, True],
        [2, "Bob", dt.datetime(2024, 1, 2), 2.0, False],
        [3, None, dt.datetime(2024, 1, 3), None, True],
    ]
    table = read_table(_write(tmp_path, "upload.bin", _xlsx_bytes(rows)), "upload.csv")
    assert table.source_format == "xlsx"
    frame = table.frame
    assert list(frame.columns) == ["id", "name", "when", "amount", "ok"]
    assert frame.shape == (3, 5)
    assert pd.api.types.is_integer_dtype(frame["id"].dtype)
    assert pd.api.types.is_float_dtype(frame["amount"].dtype)
    assert pd.api.types.is_datetime64_any_dtype(frame["when"].dtype)
    assert pd.api.types.is_bool_dtype(frame["ok"].dtype)
    assert frame["id"].tolist() == [1, 2, 3]
    assert frame["name"].iloc[:2].tolist() == ["Anna", "Bob"]


def test_xlsx_drops_fully_empty_rows_and_columns(tmp_path: pathlib.Path) -> None:
    rows: list[list[Any]] = [
        [None, None, None, None],
        [None, "a", None, "b"],
        [None, 1, None, "x"],
        [None, None, None, None],
        [None, 2, None, "y"],
    ]
    frame = read_table(_write(tmp_path, "sparse.xlsx", _xlsx_bytes(rows))).frame
    assert list(frame.columns) == ["a", "b"]
    assert frame.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
    assert isinstance(frame.index, pd.RangeIndex)


def test_xlsx_header_names_are_strings_and_unique(tmp_path: pathlib.Path) -> None:
    rows: list[list[Any]] = [["x", "x", 2024, None], [1, 2, 3, 4]]
    frame = read_table(_write(tmp_path, "h.xlsx", _xlsx_bytes(rows))).frame
    assert list(frame.columns) == ["x", "x.1", "2024", "Unnamed: 3"]


def test_xlsx_empty_sheet_is_refused(tmp_path: pathlib.Path) -> None:
    message = _refusal(_write(tmp_path, "blank.xlsx", _xlsx_bytes([])))
    assert "no columns" in message


def test_xlsx_too_many_columns_is_refused(tmp_path: pathlib.Path) -> None:
    rows: list[list[Any]] = [[f"c{i}" for i in range(2001)], list(range(2001))]
    assert "2001" in _refusal(_write(tmp_path, "wide.xlsx", _xlsx_bytes(rows)))


def test_zip_that_is_not_xlsx_is_refused(tmp_path: pathlib.Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("readme.txt", "hello")
        archive.writestr("data.csv", "a,b\n1,2\n")
    message = _refusal(_write(tmp_path, "archive.xlsx", buffer.getvalue()))
    assert "not an XLSX" in message


def test_damaged_zip_is_refused(tmp_path: pathlib.Path) -> None:
    data = b"PK\x03\x04" + random.Random(7).randbytes(2048)
    assert "XLSX" in _refusal(_write(tmp_path, "broken.xlsx", data))


def _xlsx_with_extra_member(payload: bytes) -> bytes:
    """A valid workbook plus an extra, highly compressible member."""
    source = zipfile.ZipFile(io.BytesIO(_xlsx_bytes([["a"], [1]])))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in source.infolist():
            archive.writestr(member, source.read(member.filename))
        archive.writestr("xl/media/padding.bin", payload)
    return buffer.getvalue()


def _forbid_excel_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("workbook must not be loaded")

    monkeypatch.setattr(openpyxl, "load_workbook", refuse)
    monkeypatch.setattr(pd, "read_excel", refuse)
    monkeypatch.setattr(fastexcel, "read_excel", refuse)
    monkeypatch.setattr(python_calamine, "CalamineWorkbook", refuse)


def test_zip_bomb_ratio_is_refused_before_loading(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "bomb.xlsx", _xlsx_with_extra_member(bytes(20 * 1024 * 1024)))
    _forbid_excel_loading(monkeypatch)
    assert "compressed" in _refusal(path)


def test_uncompressed_size_limit_is_refused_before_loading(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = random.Random(3).randbytes(64 * 1024)  # incompressible: ratio stays low
    path = _write(tmp_path, "big.xlsx", _xlsx_with_extra_member(payload))
    monkeypatch.setattr(read_xlsx, "MAX_XLSX_UNCOMPRESSED_BYTES", 32 * 1024)
    _forbid_excel_loading(monkeypatch)
    assert "too large" in _refusal(path)


def test_normal_xlsx_passes_the_zip_guard(tmp_path: pathlib.Path) -> None:
    payload = random.Random(5).randbytes(4096)
    frame = read_table(_write(tmp_path, "ok.xlsx", _xlsx_with_extra_member(payload))).frame
    assert frame.to_dict("list") == {"a": [1]}
