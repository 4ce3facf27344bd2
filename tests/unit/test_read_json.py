"""JSON and Parquet reading (detected by content, not by file name)."""

from __future__ import annotations

import json
import pathlib
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis_svc.engine.readers.dispatch import InvalidInput, read_table

RECORDS = [
    {"id": 1, "city": "Oslo", "amount": 10.5, "meta": {"tier": "gold"}, "tags": ["a"]},
    {"id": 2, "city": "Rome", "amount": 3.0, "meta": {"tier": "basic"}, "tags": []},
    {"id": 3, "city": "Oslo", "amount": None, "meta": {"tier": "gold"}, "tags": ["b", "c"]},
]


def _write(tmp_path: pathlib.Path, data: bytes, name: str = "upload.bin") -> pathlib.Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_array_of_records_with_nested_objects(tmp_path: pathlib.Path) -> None:
    table = read_table(_write(tmp_path, json.dumps(RECORDS).encode()), "data.csv")
    assert table.source_format == "json"
    frame = table.frame
    assert list(frame.columns) == ["id", "city", "amount", "tags", "meta.tier"]
    assert frame["meta.tier"].tolist() == ["gold", "basic", "gold"]
    assert frame["tags"].tolist() == ['["a"]', "[]", '["b", "c"]']
    assert frame["amount"].isna().tolist() == [False, False, True]


def test_json_lines(tmp_path: pathlib.Path) -> None:
    lines = "\n".join(json.dumps({k: v for k, v in r.items() if k != "meta"}) for r in RECORDS)
    table = read_table(_write(tmp_path, (lines + "\n").encode()))
    assert table.source_format == "json"
    assert table.frame["city"].tolist() == ["Oslo", "Rome", "Oslo"]
    assert table.frame["id"].tolist() == [1, 2, 3]


def test_json_lines_with_changing_types_fall_back_to_line_by_line(
    tmp_path: pathlib.Path,
) -> None:
    data = b'{"a": 1, "b": "x"}\n{"a": "two", "b": [1, 2]}\n'
    frame = read_table(_write(tmp_path, data)).frame
    assert frame["a"].tolist() == [1, "two"]
    assert frame["b"].tolist() == ["x", "[1, 2]"]


def test_wrapped_records_and_columnar_objects(tmp_path: pathlib.Path) -> None:
    wrapped = read_table(_write(tmp_path, json.dumps({"data": RECORDS[:2]}).encode(), "w"))
    assert wrapped.frame["id"].tolist() == [1, 2]
    columnar = read_table(_write(tmp_path, b'{"x": [1, 2, 3], "y": ["a", "b", "c"]}', "c"))
    assert columnar.frame.to_dict("list") == {"x": [1, 2, 3], "y": ["a", "b", "c"]}


def test_utf8_bom_json(tmp_path: pathlib.Path) -> None:
    data = "\ufeff" + json.dumps([{"ville": "Montréal"}])
    assert read_table(_write(tmp_path, data.encode())).frame["ville"].tolist() == ["Montréal"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[{"a": 1},\n {"a": 2,}]', "not valid JSON (line 2, column"),
        (b"[1, 2, 3]", "must hold objects"),
        (b"[]", "no columns"),
        (b'{"a": 1}\n{"a": \n', "Line 2 of the JSON lines file"),
    ],
)
def test_bad_json_is_refused(tmp_path: pathlib.Path, data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        read_table(_write(tmp_path, data))


def test_json_with_2001_keys_is_refused(tmp_path: pathlib.Path) -> None:
    record = {f"k{i}": i for i in range(2001)}
    with pytest.raises(InvalidInput, match="2001 columns"):
        read_table(_write(tmp_path, json.dumps([record]).encode()))


def test_parquet_detected_by_content(tmp_path: pathlib.Path) -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "region": pa.array(["N", "S", "N"]).dictionary_encode(),
            "price": pa.array([Decimal("1.25"), Decimal("2.50"), None], pa.decimal128(10, 2)),
            "when": pa.array(pd.to_datetime(["2024-01-01", "2024-02-01", None]).tz_localize("UTC")),
            "point": pa.array([{"x": 1}, {"x": 2}, {"x": 3}]),
        }
    )
    path = tmp_path / "export.csv"
    pq.write_table(table, path)
    result = read_table(path, "export.csv")
    assert result.source_format == "parquet"
    frame = result.frame
    assert list(frame.columns) == ["id", "region", "price", "when", "point.x"]
    assert frame["region"].tolist() == ["N", "S", "N"]
    np.testing.assert_array_equal(frame["price"].to_numpy(dtype="float64"), [1.25, 2.5, np.nan])
    assert frame["point.x"].tolist() == [1, 2, 3]


def test_damaged_parquet_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InvalidInput, match="Parquet file could not be read"):
        read_table(_write(tmp_path, b"PAR1" + bytes(200)))
