"""Per-column KPIs and typing on real-world shapes, checked against numpy/pandas computed here."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis_svc.engine.kpis.report import compute_report
from analysis_svc.engine.readers.dispatch import Table, read_table

ROWS = 200


def _report(data: dict[str, Any]) -> dict[str, Any]:
    return compute_report(Table(frame=pd.DataFrame(data), source_format="csv"))


def _column(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in report["columns"] if c["name"] == name)
    return found


def test_numeric_distribution_facts() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [rng.normal(50, 10, ROWS - 20), np.zeros(10), -rng.random(5), [500.0] * 5]
    )
    numeric = _column(_report({"amount": values}), "amount")["numeric"]
    p5, q1, median, q3, p95 = np.percentile(values, [5, 25, 50, 75, 95])
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    assert numeric["p5"] == pytest.approx(p5, rel=1e-12)
    assert numeric["p25"] == pytest.approx(q1, rel=1e-12)
    assert numeric["median"] == pytest.approx(median, rel=1e-12)
    assert numeric["p75"] == pytest.approx(q3, rel=1e-12)
    assert numeric["p95"] == pytest.approx(p95, rel=1e-12)
    assert numeric["zerosPct"] == round(100 * 10 / ROWS, 2)
    assert numeric["negativesPct"] == round(100 * int((values < 0).sum()) / ROWS, 2)
    assert numeric["outliers"]["count"] == int(((values < low) | (values > high)).sum())
    assert numeric["outliers"]["lowerFence"] == pytest.approx(low)
    assert numeric["skew"] == pytest.approx(pd.Series(values).skew(), abs=1e-4)
    assert numeric["count"] == ROWS


def test_integer_ids_are_never_summed(tmp_path: pathlib.Path) -> None:
    lines = ["order_id,customer_id,Invoice Number,qty"]
    lines += [f"{1000 + i},{i % 17},{5_000_000 + i},{i % 5 + 1}" for i in range(60)]
    path = tmp_path / "orders.csv"
    path.write_text("\n".join(lines) + "\n")
    report = compute_report(read_table(path))
    kinds = {c["name"]: c["type"] for c in report["columns"]}
    assert kinds == {
        "order_id": "id",
        "customer_id": "id",
        "Invoice Number": "id",
        "qty": "numeric",
    }
    for name in ("order_id", "customer_id", "Invoice Number"):
        assert "numeric" not in _column(report, name)
        assert all(name not in item["key"] for item in report["correlations"])


def test_numbers_stored_as_text_are_converted_and_reported() -> None:
    prices = [f"${i * 1000 + 0.5:,.2f}" for i in range(1, 41)] + ["n/a-ish"]
    column = _column(_report({"price": prices}), "price")
    expected = [i * 1000 + 0.5 for i in range(1, 41)]
    assert column["type"] == "numeric"
    assert column["numeric"]["sum"] is None  # a price: averaged, never totalled
    assert column["numeric"]["mean"] == pytest.approx(sum(expected) / 40)
    assert column["numeric"]["max"] == pytest.approx(max(expected))
    assert column["numbersAsText"] == {"converted": 40, "unparsed": 1}
    alerts = [a for a in _report({"price": prices})["alerts"] if a["type"] == "numbersAsText"]
    assert [a["key"] for a in alerts] == ["alerts.numbersAsText.price"]


def test_percent_and_decimal_comma_text() -> None:
    shares = ["12,5 %", "7,25 %", "80 %", "0,25 %"] * 10
    column = _column(_report({"share": shares}), "share")
    assert column["type"] == "numeric"
    assert column["numeric"]["sum"] is None  # a share: averaged, never totalled
    assert column["numeric"]["mean"] == pytest.approx((12.5 + 7.25 + 80 + 0.25) / 4)


def test_mixed_date_formats_are_parsed_and_flagged() -> None:
    values = ["2024-01-05", "2024-01-06", "07/01/2024", "January 8, 2024"] * 6
    report = _report({"when": values})
    column = _column(report, "when")
    assert column["type"] == "datetime"
    assert column["mixedDateFormats"] is True
    assert column["datetime"]["min"] == "2024-01-05T00:00:00"
    assert "alerts.mixedDateFormats.when" in [a["key"] for a in report["alerts"]]
    clean = _column(_report({"when": [f"2024-01-{d:02d}" for d in range(1, 25)]}), "when")
    assert "mixedDateFormats" not in clean
    assert clean["datetime"]["granularity"] == "day"
    assert clean["datetime"]["spanDays"] == 23.0


def test_categorical_top_values_other_share_and_concentration() -> None:
    counts = {"a": 50, "b": 30, "c": 10, "d": 4} | {f"z{i:02d}": 1 for i in range(10)}
    values = [value for value, count in counts.items() for _ in range(count)]
    column = _column(_report({"cat": values}), "cat")
    total = len(values)
    assert [t["value"] for t in column["topValues"]] == ["a", "b", "c", "d"] + [
        f"z{i:02d}" for i in range(6)
    ]
    assert column["otherCount"] == 4
    assert column["otherShare"] == round(4 / total, 4)
    assert column["concentration"] == {
        "top1Share": round(50 / total, 4),
        "valuesFor80Pct": 3,  # a+b = 80 of 104 (76.9%) < 80%, a+b+c = 90 (86.5%)
    }


def test_report_is_json_safe_without_nan() -> None:
    report = _report({"x": [np.nan, 1.0, np.inf, 2.0] * 10, "t": ["a", None, "b", ""] * 10})
    import json

    json.dumps(report, allow_nan=False)


@pytest.mark.parametrize(
    ("name", "looks_like_id"),
    [
        ("id", True),
        ("customer_id", True),
        ("customerId", True),
        ("ID_customer", True),
        ("Invoice Number", True),
        ("order_no", True),
        ("zip", True),
        ("number", False),
        ("Number of items", False),
        ("video", False),
        ("paid", False),
    ],
)
def test_id_like_names(name: str, looks_like_id: bool) -> None:
    from analysis_svc.engine.column_profile import name_looks_like_id

    assert name_looks_like_id(name) is looks_like_id


def test_rates_are_averaged_and_amounts_summed_per_period() -> None:
    days = pd.date_range("2024-01-01", periods=90, freq="D")
    frame = pd.DataFrame(
        {"d": days, "page_views": np.arange(90.0), "unit_price": np.arange(90.0) % 7 + 1}
    )
    report = _report(frame.to_dict("list"))
    aggregations = {item["measure"]: item["aggregation"] for item in report["timeSeries"]}
    assert aggregations == {None: "count", "page_views": "sum", "unit_price": "mean"}
