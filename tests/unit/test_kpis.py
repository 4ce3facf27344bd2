"""Unit tests for the KPI report (checked against pandas computed here)."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis_svc.engine import SCHEMA_VERSION
from analysis_svc.engine.kpis.report import compute_report
from analysis_svc.engine.readers.dispatch import Table, read_table

ROWS = 30


def _table(data: dict[str, Any], source_format: str = "csv") -> Table:
    return Table(frame=pd.DataFrame(data), source_format=source_format)


def _column(report: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [column for column in report["columns"] if column["name"] == name]
    assert len(matches) == 1
    found: dict[str, Any] = matches[0]
    return found


def _min_max(column: dict[str, Any]) -> dict[str, Any]:
    return {key: column["datetime"][key] for key in ("min", "max")}


def _kind(data: dict[str, Any], name: str) -> str:
    return str(_column(compute_report(_table(data)), name)["type"])


def _assert_plain_json(value: Any) -> None:
    """Only str/int/float/bool/None/list/dict, no numpy scalars, no NaN/inf."""
    if isinstance(value, dict):
        assert all(isinstance(key, str) for key in value)
        for item in value.values():
            _assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            _assert_plain_json(item)
    elif isinstance(value, float):
        assert type(value) is float and math.isfinite(value)
    else:
        assert value is None or type(value) in (str, int, bool)


def _sample_frame() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    amount = rng.normal(100.0, 15.0, ROWS).round(3)
    amount[[3, 17]] = np.nan
    return pd.DataFrame(
        {
            "order_id": np.arange(1000, 1000 + ROWS),
            "amount": amount,
            "qty": rng.integers(1, 9, ROWS),
            "region": [["North", "South", "East", "West"][i % 4] for i in range(ROWS)],
            "day": [f"2024-01-{i + 1:02d}" for i in range(ROWS)],
            "flag": ["yes" if i % 3 else "no" for i in range(ROWS)],
            "const": ["same"] * ROWS,
            "nothing": [None] * ROWS,
        }
    )


# --------------------------------------------------------------------------- shape


def test_report_shape_and_key_order() -> None:
    report = compute_report(Table(frame=_sample_frame(), source_format="csv"))
    assert list(report) == [
        "schemaVersion",
        "dataset",
        "roles",
        "roleWarnings",
        "timeAxis",
        "columns",
        "timeSeries",
        "correlations",
        "alerts",
        "candidates",
    ]
    assert report["schemaVersion"] == SCHEMA_VERSION == "3.0"
    assert list(report["dataset"]) == [
        "format",
        "rows",
        "columns",
        "missingCells",
        "missingCellsPct",
        "duplicateRows",
        "duplicateRowsPct",
        "memoryBytes",
        "skippedRows",
        "headerRow",
        "columnTypes",
        "reshapedFrom",
    ]
    assert [column["name"] for column in report["columns"]] == list(_sample_frame().columns)
    for column in report["columns"]:
        assert list(column)[:6] == ["name", "type", "role", "missing", "missingPct", "distinct"]
    _assert_plain_json(report)


def test_dataset_totals_match_pandas() -> None:
    frame = _sample_frame()
    report = compute_report(Table(frame=frame, source_format="xlsx"))
    dataset = report["dataset"]
    missing = int(frame.isna().sum().sum())
    assert {key: dataset[key] for key in list(dataset)[:6]} == {
        "format": "xlsx",
        "rows": ROWS,
        "columns": frame.shape[1],
        "missingCells": missing,
        "missingCellsPct": round(100 * missing / (ROWS * frame.shape[1]), 2),
        "duplicateRows": 0,
    }
    assert dataset["duplicateRowsPct"] == 0.0
    assert dataset["memoryBytes"] == int(frame.memory_usage(index=False, deep=True).sum())
    assert dataset["skippedRows"] == 0
    assert dataset["headerRow"] is True
    assert dataset["columnTypes"] == {
        "numeric": 2,
        "id": 1,
        "datetime": 1,
        "boolean": 1,
        "categorical": 1,
        "text": 0,
        "constant": 1,
        "empty": 1,
    }


def test_duplicate_rows() -> None:
    frame = pd.DataFrame({"a": [1, 1, 2, 1], "b": ["x", "x", "y", "x"]})
    report = compute_report(Table(frame=frame, source_format="csv"))
    assert report["dataset"]["duplicateRows"] == int(frame.duplicated().sum()) == 2


def test_column_types_of_sample() -> None:
    report = compute_report(Table(frame=_sample_frame(), source_format="csv"))
    kinds = {column["name"]: column["type"] for column in report["columns"]}
    assert kinds == {
        "order_id": "id",
        "amount": "numeric",
        "qty": "numeric",
        "region": "categorical",
        "day": "datetime",
        "flag": "boolean",
        "const": "constant",
        "nothing": "empty",
    }
    assert "numeric" not in _column(report, "order_id")
    assert "topValues" not in _column(report, "const")


# --------------------------------------------------------------------------- numeric


@pytest.mark.parametrize("name", ["amount", "qty"])
def test_numeric_stats_match_pandas(name: str) -> None:
    frame = _sample_frame()
    column = _column(compute_report(Table(frame=frame, source_format="csv")), name)
    series = frame[name].dropna().astype("float64")
    expected = {
        "sum": float(series.sum()),
        "mean": float(series.mean()),
        "median": float(series.median()),
        "min": float(series.min()),
        "max": float(series.max()),
        "std": float(series.std(ddof=1)),
    }
    assert list(column["numeric"])[:6] == list(expected)
    for key, value in expected.items():
        assert type(column["numeric"][key]) is float
        assert column["numeric"][key] == pytest.approx(value, rel=1e-12, abs=0.0)
    assert column["missing"] == int(frame[name].isna().sum())
    assert column["missingPct"] == round(100 * column["missing"] / ROWS, 2)
    assert column["distinct"] == int(frame[name].nunique())


def test_integer_sum_is_float_with_full_precision() -> None:
    report = compute_report(_table({"amount": [1, 2, 4, 10**12 + 3]}))
    numeric = _column(report, "amount")["numeric"]
    assert numeric["sum"] == 1000000000010.0
    assert type(numeric["sum"]) is float
    assert numeric["mean"] == pytest.approx(250000000002.5, rel=1e-15)


def test_infinite_values_become_none() -> None:
    report = compute_report(_table({"x": [1.0, 2.0, np.inf, 4.0]}))
    numeric = _column(report, "x")["numeric"]
    assert numeric["sum"] is None
    assert numeric["max"] is None
    assert numeric["std"] is None
    assert numeric["min"] == 1.0
    assert numeric["median"] == 3.0
    json.dumps(report, allow_nan=False)


# --------------------------------------------------------------------------- types


def test_numeric_id_needs_id_like_name_integers_and_20_rows() -> None:
    ids = list(range(1, ROWS + 1))
    assert _kind({"id": ids}, "id") == "id"
    assert _kind({"customerId": ids}, "customerId") == "id"
    assert _kind({"ID_customer": ids}, "ID_customer") == "id"
    assert _kind({"amount": ids}, "amount") == "numeric"
    assert _kind({"id": ids[:19]}, "id") == "numeric"
    # A foreign key repeats (customer_id in an orders table) and is still never summed.
    assert _kind({"id": [*ids[:-1], 1]}, "id") == "id"
    assert _kind({"customer_id": [i % 7 for i in ids]}, "customer_id") == "id"
    assert _kind({"id": [i + 0.5 for i in ids]}, "id") == "numeric"
    assert _kind({"id": [float(i) for i in ids]}, "id") == "id"


def test_string_id_and_categorical() -> None:
    codes = [f"C-{i:04d}" for i in range(ROWS)]
    assert _kind({"code": codes}, "code") == "id"
    assert _kind({"code": codes[:10]}, "code") == "categorical"
    assert _kind({"code": ["a", "b"] * 15}, "code") == "categorical"


def test_long_strings_are_text() -> None:
    notes = [f"{i} " + "lorem ipsum " * 5 for i in range(10)]
    assert _kind({"note": notes}, "note") == "text"


@pytest.mark.parametrize(
    "values",
    [
        ["yes", "no", "yes"],
        ["TRUE", "false", "false"],
        [True, False, True],
        [0, 1, 1],
        [1.0, 0.0, np.nan],
        ["1", "0", None],
    ],
)
def test_boolean(values: list[Any]) -> None:
    column = _column(compute_report(_table({"b": values})), "b")
    assert column["type"] == "boolean"
    assert column["distinct"] == 2
    assert sum(item["count"] for item in column["topValues"]) == 3 - column["missing"]


def test_boolean_values_are_printed_without_decimal() -> None:
    column = _column(compute_report(_table({"b": [1.0, 0.0, 1.0, np.nan]})), "b")
    assert [item["value"] for item in column["topValues"]] == ["1", "0"]


def test_two_other_values_are_not_boolean() -> None:
    assert _kind({"b": ["yes", "maybe", "no"]}, "b") == "categorical"
    assert _kind({"b": [2, 3, 2]}, "b") == "numeric"


def test_constant_and_empty() -> None:
    report = compute_report(_table({"c": [5, 5, None], "e": [None, "", "  "]}))
    constant, empty = _column(report, "c"), _column(report, "e")
    assert (constant["type"], constant["distinct"], constant["missing"]) == ("constant", 1, 1)
    assert (empty["type"], empty["distinct"], empty["missing"]) == ("empty", 0, 3)
    assert empty["missingPct"] == 100.0


def test_datetime_from_strings() -> None:
    values = [f"2024-02-{day:02d} 13:45:00" for day in range(1, 29)] + [None, ""]
    column = _column(compute_report(_table({"when": values})), "when")
    assert column["type"] == "datetime"
    assert column["missing"] == 2
    assert column["distinct"] == 28
    assert _min_max(column) == {"min": "2024-02-01T13:45:00", "max": "2024-02-28T13:45:00"}


def test_datetime_from_mixed_formats_and_offsets() -> None:
    values = ["2024-03-01T10:00:00+02:00", "2024-03-02 08:00", "March 3, 2024"]
    column = _column(compute_report(_table({"when": values})), "when")
    assert column["type"] == "datetime"
    assert _min_max(column) == {"min": "2024-03-01T08:00:00", "max": "2024-03-03T00:00:00"}


def test_day_first_dates_are_parsed_consistently() -> None:
    # 01/02 .. 12/02 are ambiguous; 13/02 onwards prove the column is day-first.
    values = [f"{day:02d}/02/2024 08:30" for day in range(1, 29)]
    column = _column(compute_report(_table({"when": values})), "when")
    assert column["type"] == "datetime"
    assert _min_max(column) == {"min": "2024-02-01T08:30:00", "max": "2024-02-28T08:30:00"}


def test_datetime_dtype_column() -> None:
    stamps = pd.to_datetime(
        ["2023-05-01 00:00:01", "2021-01-01", None, "2022-06-30 23:59:59"], format="mixed"
    )
    column = _column(compute_report(_table({"ts": stamps})), "ts")
    assert column["type"] == "datetime"
    assert column["missing"] == 1
    assert _min_max(column) == {
        "min": pd.Series(stamps).min().strftime("%Y-%m-%dT%H:%M:%S"),
        "max": "2023-05-01T00:00:01",
    }


def test_date_threshold_is_95_percent() -> None:
    dates = [f"2024-01-{day:02d}" for day in range(1, 20)]
    assert _kind({"d": [*dates, "unknown"]}, "d") == "datetime"  # 19/20 = 95%
    assert _kind({"d": [*dates[:18], "unknown", "n/a?"]}, "d") != "datetime"


def test_words_and_plain_numbers_are_not_dates() -> None:
    assert _kind({"m": ["May", "June", "May"]}, "m") == "categorical"
    assert _kind({"n": ["12", "15", "12", "x"]}, "n") == "categorical"
    assert _kind({"t": ["10:30", "11:00", "10:30"]}, "t") == "categorical"


# --------------------------------------------------------------------------- missing / top values


def test_empty_strings_count_as_missing() -> None:
    column = _column(compute_report(_table({"s": ["a", "", "  ", None, "b", "a"]})), "s")
    assert column["missing"] == 3
    assert column["missingPct"] == 50.0
    assert column["distinct"] == 2


def test_missing_pct_is_rounded_to_two_decimals() -> None:
    column = _column(compute_report(_table({"x": [1.0, None, 2.0]})), "x")
    assert column["missingPct"] == 33.33


def test_top_values_order_limit_and_share() -> None:
    values = ["b", "a", "c", "a", "b", "d"] + [f"v{i:02d}" for i in range(12)]
    column = _column(compute_report(_table({"cat": values})), "cat")
    top = column["topValues"]
    assert len(top) == 10
    assert [item["value"] for item in top[:4]] == ["a", "b", "c", "d"]
    assert [item["count"] for item in top[:4]] == [2, 2, 1, 1]
    assert [item["value"] for item in top[4:]] == [f"v{i:02d}" for i in range(6)]
    assert top[0] == {"value": "a", "count": 2, "share": round(2 / len(values), 4)}
    counts = pd.Series(values).value_counts()
    for item in top:
        assert item["count"] == int(counts[item["value"]])


def test_top_values_of_sample_match_pandas() -> None:
    frame = _sample_frame()
    column = _column(compute_report(Table(frame=frame, source_format="csv")), "region")
    counts = frame["region"].value_counts()
    assert {item["value"]: item["count"] for item in column["topValues"]} == counts.to_dict()
    assert all(item["share"] == round(item["count"] / ROWS, 4) for item in column["topValues"])


# --------------------------------------------------------------------------- global properties


def test_report_is_deterministic_and_json_safe() -> None:
    frame = _sample_frame()
    first = compute_report(Table(frame=frame, source_format="csv"))
    second = compute_report(Table(frame=frame.copy(), source_format="csv"))
    assert json.dumps(first, sort_keys=False) == json.dumps(second, sort_keys=False)
    json.dumps(first, allow_nan=False)
    _assert_plain_json(first)


def test_zero_row_table() -> None:
    report = compute_report(_table({"a": pd.Series([], dtype="float64"), "b": []}))
    assert report["dataset"]["rows"] == 0
    assert report["dataset"]["missingCellsPct"] == 0.0
    assert [column["type"] for column in report["columns"]] == ["empty", "empty"]
    assert all(column["missingPct"] == 0.0 for column in report["columns"])
    json.dumps(report, allow_nan=False)


def test_end_to_end_from_csv(tmp_path: pathlib.Path) -> None:
    lines = ["order_id;amount;region;day"]
    lines += [
        f"{i};{i * 2.5};{'North' if i % 2 else 'South'};2024-03-{i % 28 + 1:02d}"
        for i in range(1, 26)
    ]
    path = tmp_path / "orders.csv"
    path.write_text("\n".join(lines) + "\n", encoding="cp1252")
    report = compute_report(read_table(path, "orders.csv"))
    assert report["dataset"]["format"] == "csv"
    assert report["dataset"]["rows"] == 25
    kinds = [column["type"] for column in report["columns"]]
    assert kinds == ["id", "numeric", "categorical", "datetime"]
    assert _column(report, "amount")["numeric"]["sum"] == sum(i * 2.5 for i in range(1, 26))
    json.dumps(report, allow_nan=False)


def test_end_to_end_from_xlsx(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "sheet.xlsx"
    frame = pd.DataFrame(
        {
            "when": pd.date_range("2024-01-01", periods=5, freq="D"),
            "amount": [1.5, 2.5, None, 4.0, 5.0],
            "ok": [True, False, True, True, False],
        }
    )
    frame.to_excel(path, index=False, engine="openpyxl")
    report = compute_report(read_table(path))
    assert report["dataset"]["format"] == "xlsx"
    assert [column["type"] for column in report["columns"]] == ["datetime", "numeric", "boolean"]
    assert _min_max(_column(report, "when")) == {
        "min": "2024-01-01T00:00:00",
        "max": "2024-01-05T00:00:00",
    }
    assert _column(report, "amount")["numeric"]["sum"] == 13.0
    assert _column(report, "amount")["missing"] == 1
    json.dumps(report, allow_nan=False)
