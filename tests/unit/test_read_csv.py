"""Delimited-text reading: encodings, delimiters, decimal marks, headers, tolerance, properties."""

from __future__ import annotations

import codecs
import pathlib
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis_svc.engine.readers.csv_reader import MAX_BAD_ROW_SHARE
from analysis_svc.engine.readers.dispatch import InvalidInput, read_table

TEXT = "city;amount\nZürich;1\nSão Paulo;2\nKraków;3\n"


def _write(tmp_path: pathlib.Path, data: bytes, name: str = "data.csv") -> pathlib.Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "data",
    [
        TEXT.encode("utf-8"),
        codecs.BOM_UTF8 + TEXT.encode("utf-8"),
        TEXT.encode("utf-16"),
        codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
        TEXT.encode("utf-16-le"),
        TEXT.encode("utf-16-be"),
        TEXT.encode("cp1252"),
        TEXT.encode("latin-1"),
    ],
    ids=[
        "utf8",
        "utf8-bom",
        "utf16-native-bom",
        "utf16le-bom",
        "utf16be-bom",
        "utf16le-no-bom",
        "utf16be-no-bom",
        "cp1252",
        "latin1",
    ],
)
def test_each_encoding_gives_the_same_table(tmp_path: pathlib.Path, data: bytes) -> None:
    frame = read_table(_write(tmp_path, data)).frame
    assert list(frame.columns) == ["city", "amount"]
    assert [str(v) for v in frame["city"]] == ["Zürich", "São Paulo", "Kraków"]
    assert frame["amount"].tolist() == [1, 2, 3]


def test_cp1252_only_characters(tmp_path: pathlib.Path) -> None:
    frame = read_table(_write(tmp_path, "name,price\n€uro “quoted”,5\n".encode("cp1252"))).frame
    assert str(frame["name"].iloc[0]) == "€uro “quoted”"


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_with_quoted_delimiters_and_newlines(
    tmp_path: pathlib.Path, delimiter: str
) -> None:
    rows = [["id", "note", "value"], ["1", f'"a{delimiter}b"', "10"], ["2", '"x\ny"', "20"]]
    rows += [[str(i), f"n{i}", str(i * 10)] for i in range(3, 8)]
    text = "\n".join(delimiter.join(row) for row in rows) + "\n"
    frame = read_table(_write(tmp_path, text.encode())).frame
    assert list(frame.columns) == ["id", "note", "value"]
    assert [str(v) for v in frame["note"][:2]] == [f"a{delimiter}b", "x\ny"]
    assert frame["value"].tolist() == [10, 20, 30, 40, 50, 60, 70]


def test_decimal_comma_with_thousands_separator(tmp_path: pathlib.Path) -> None:
    text = "produit;prix;quantité\nA;1.234,50;3\nB;2,25;4\nC;-3,75;5\nD;10.000,00;6\n"
    frame = read_table(_write(tmp_path, text.encode("cp1252"))).frame
    assert frame["prix"].tolist() == [1234.5, 2.25, -3.75, 10000.0]
    assert frame["quantité"].tolist() == [3, 4, 5, 6]


def test_dot_decimal_with_thousands_commas_in_quotes(tmp_path: pathlib.Path) -> None:
    text = 'item,revenue\na,"1,234.50"\nb,"12,000.00"\nc,7.25\n'
    frame = read_table(_write(tmp_path, text.encode())).frame
    assert frame["revenue"].tolist() == [1234.5, 12000.0, 7.25]


def test_no_header_is_detected_and_names_are_generated(tmp_path: pathlib.Path) -> None:
    text = "1,Anna,10.5,2024-01-03\n2,Bob,20,2024-01-04\n3,Cleo,30.25,2024-01-05\n"
    table = read_table(_write(tmp_path, text.encode()))
    assert table.header is False
    assert list(table.frame.columns) == ["column_1", "column_2", "column_3", "column_4"]
    assert table.frame.shape == (3, 4)
    assert table.frame["column_3"].tolist() == [10.5, 20.0, 30.25]


def test_header_above_numbers_is_kept(tmp_path: pathlib.Path) -> None:
    table = read_table(_write(tmp_path, b"a,b\n1,2\n3,4\n"))
    assert table.header is True
    assert table.frame.to_dict("list") == {"a": [1, 3], "b": [2, 4]}


def test_few_malformed_rows_are_skipped_and_counted(tmp_path: pathlib.Path) -> None:
    lines = ["a,b"] + [f"{i},{i * 2}" for i in range(300)]
    lines[150] = "149,298,EXTRA"
    table = read_table(_write(tmp_path, ("\n".join(lines) + "\n").encode()))
    assert table.skipped_rows == 1
    assert table.frame.shape == (299, 2)
    assert 300 * MAX_BAD_ROW_SHARE >= 1


def test_many_malformed_rows_are_refused_with_the_first_line(tmp_path: pathlib.Path) -> None:
    lines = ["a,b"] + [f"{i},{i}" + (",SECRET" if i % 10 == 0 else "") for i in range(1, 101)]
    with pytest.raises(InvalidInput) as info:
        read_table(_write(tmp_path, ("\n".join(lines) + "\n").encode()))
    assert "Line 11 has 3 fields but 2 were expected" in str(info.value)
    assert "SECRET" not in str(info.value)


def test_invalid_utf16_is_refused(tmp_path: pathlib.Path) -> None:
    data = codecs.BOM_UTF16_LE + "a,b\n".encode("utf-16-le") + b"\x00\xd8\x41\x00"
    with pytest.raises(InvalidInput, match="could not be decoded as UTF-16"):
        read_table(_write(tmp_path, data))


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n" + bytes(range(256)) * 4,
        b"\x1f\x8b\x08\x00" + bytes(100),
        bytes(range(32)) * 50,
    ],
    ids=["pdf", "gzip", "control-bytes"],
)
def test_binary_files_are_refused(tmp_path: pathlib.Path, data: bytes) -> None:
    with pytest.raises(InvalidInput, match="not a CSV, XLSX, JSON or Parquet"):
        read_table(_write(tmp_path, data))


def test_legacy_xls_gets_a_specific_message(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidInput, match=r"legacy Excel \(\.xls\)"):
        read_table(_write(tmp_path, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "a.xls"))


def test_columns_limit_counts_the_header(tmp_path: pathlib.Path) -> None:
    header = ",".join(f"c{i}" for i in range(2001))
    with pytest.raises(InvalidInput, match="2001 columns; at most 2000"):
        read_table(_write(tmp_path, f"{header}\n{header}\n".encode()))


def test_a_header_longer_than_the_sample_is_counted_as_a_lower_bound(
    tmp_path: pathlib.Path,
) -> None:
    header = ",".join(f"c{i}" for i in range(200_000))  # 1.9 MB: past the sniffer's sample
    with pytest.raises(InvalidInput, match=r"The file has at least \d+ columns; at most 2000"):
        read_table(_write(tmp_path, f"{header}\n{header}\n".encode()))


# --------------------------------------------------------------------------- properties

_ALPHABET = string.ascii_letters + " é\"'\n"
_NULL_LIKE = {"na", "nan", "null", "none", "n/a"}


def _text_cell(delimiter: str) -> st.SearchStrategy[str]:
    # A leading letter keeps cells from looking like numbers, dates, booleans or null tokens;
    # cells may hold the file's own delimiter (quoted on write), not the other candidates.
    return st.builds(
        lambda head, tail: head + tail,
        st.sampled_from("qxzQXZ"),
        st.text(alphabet=_ALPHABET + delimiter, max_size=8),
    ).filter(lambda value: value.strip().lower() not in _NULL_LIKE and value == value.strip())


@st.composite
def _tables(draw: st.DrawFn, delimiter: str) -> pd.DataFrame:
    rows = draw(st.integers(min_value=1, max_value=25))
    width = draw(st.integers(min_value=1, max_value=5))
    data: dict[str, pd.Series] = {}
    for index in range(width):
        kind = draw(st.sampled_from(["int", "float", "text"]))
        if kind == "int":
            cells: list[object] = draw(
                st.lists(st.integers(-(10**12), 10**12), min_size=rows, max_size=rows)
            )
        elif kind == "float":
            cells = draw(
                st.lists(
                    st.floats(-1e9, 1e9, allow_nan=False, allow_subnormal=False) | st.none(),
                    min_size=rows,
                    max_size=rows,
                )
            )
        else:
            cells = draw(st.lists(_text_cell(delimiter), min_size=rows, max_size=rows))
        dtype = {"int": "int64", "float": "float64", "text": object}[kind]
        data[f"col_{index}"] = pd.Series(cells, dtype=dtype)
    return pd.DataFrame(data)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), delimiter=st.sampled_from([",", ";", "\t", "|"]))
def test_random_tables_round_trip_through_csv(
    tmp_path: pathlib.Path, data: st.DataObject, delimiter: str
) -> None:
    frame = data.draw(_tables(delimiter))
    path = tmp_path / "round.csv"
    frame.to_csv(path, sep=delimiter, index=False)
    back = read_table(path).frame
    assert list(back.columns) == list(frame.columns)
    assert back.shape == frame.shape
    for name in frame.columns:
        expected, actual = frame[name], back[name]
        if expected.dtype == object:
            assert [str(v) for v in actual] == expected.tolist()
        elif expected.isna().all():
            assert actual.isna().all()
        else:
            np.testing.assert_array_equal(
                actual.to_numpy(dtype="float64"), expected.to_numpy(dtype="float64")
            )


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_lone_carriage_returns_end_lines(tmp_path: pathlib.Path, delimiter: str) -> None:
    """Old Mac (and some Excel) exports end lines with CR alone; a quoted CR stays in its field."""
    text = delimiter.join(["region", "units"]) + "\r"
    text += "".join(delimiter.join([f"r{i % 3}", str(i)]) + "\r" for i in range(50))
    text += f'"two\rlines"{delimiter}7\r'
    frame = read_table(_write(tmp_path, text.encode())).frame
    assert list(frame.columns) == ["region", "units"]
    assert frame.shape == (51, 2)
    assert frame["units"].tolist() == [*range(50), 7]
    assert frame["region"].iloc[-1] == "two\rlines"


def test_ascii_is_utf8_and_one_invalid_byte_after_it_is_not() -> None:
    from analysis_svc.engine.readers.csv_reader import to_utf8

    ascii_text = b"name,price\n" + b"widget,5\n" * 1000
    assert to_utf8(ascii_text) == ("utf-8", ascii_text)
    assert to_utf8(ascii_text + "é,1\n".encode())[0] == "utf-8"
    assert to_utf8(ascii_text + "é,1\n".encode("cp1252"))[0] == "cp1252"
