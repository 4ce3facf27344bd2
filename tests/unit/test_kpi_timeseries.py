"""Time-series KPIs on a monthly sales table whose trend and top contributor are known."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis_svc.engine.kpis.report import compute_report
from analysis_svc.engine.readers.dispatch import Table, read_table
from tests.unit.test_kpi_evidence import resolve

REGIONS = ("East", "North", "South")
MONTHS = 24


def sales_frame() -> pd.DataFrame:
    """24 months x 3 regions x 3 days; growth of 10 a month a row; North jumps in Dec 2024."""
    rows: list[dict[str, Any]] = []
    order = 1
    for month in range(MONTHS):
        start = pd.Timestamp("2023-01-01") + pd.DateOffset(months=month)
        for position, region in enumerate(REGIONS):
            for day in (1, 15, 28):
                revenue = 100.0 + 10.0 * month + 5.0 * position + day / 10
                if region == "North" and month == MONTHS - 1:
                    revenue += 200.0
                if region == "South" and month == MONTHS - 1:
                    revenue -= 30.0
                rows.append(
                    {
                        "order_id": order,
                        "date": (start + pd.Timedelta(days=day - 1)).strftime("%Y-%m-%d"),
                        "region": region,
                        "revenue": round(revenue, 2),
                        "units": 1 + (order % 3),
                    }
                )
                order += 1
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("sales") / "sales.csv"
    sales_frame().to_csv(path, index=False)
    return compute_report(read_table(path, "sales.csv"))


def _series(report: dict[str, Any], key: str) -> dict[str, Any]:
    matches = [item for item in report["timeSeries"] if item["key"] == key]
    assert len(matches) == 1
    found: dict[str, Any] = matches[0]
    return found


def _monthly(frame: pd.DataFrame, column: str) -> pd.Series:
    dates = pd.to_datetime(frame["date"])
    return frame.groupby(dates.dt.to_period("M"))[column].sum()


def test_series_keys_and_order(report: dict[str, Any]) -> None:
    keys = [item["key"] for item in report["timeSeries"]]
    assert keys == ["timeSeries.date.(rows)", "timeSeries.date.revenue", "timeSeries.date.units"]
    assert all("order_id" not in key for key in keys)
    assert "numeric" not in next(c for c in report["columns"] if c["name"] == "order_id")
    json.dumps(report, allow_nan=False)


def test_monthly_totals_match_an_independent_groupby(report: dict[str, Any]) -> None:
    series = _series(report, "timeSeries.date.revenue")
    expected = _monthly(sales_frame(), "revenue")
    assert series["granularity"] == "month"
    assert series["aggregation"] == "sum"
    assert series["periods"] == MONTHS
    assert series["firstPeriodComplete"] is True
    assert series["lastPeriodComplete"] is True
    assert [p["start"] for p in series["points"]] == [
        str(period.start_time.date()) for period in expected.index
    ]
    assert [p["value"] for p in series["points"]] == pytest.approx(expected.tolist(), abs=1e-6)
    counts = _series(report, "timeSeries.date.(rows)")
    assert [p["value"] for p in counts["points"]] == [9.0] * MONTHS


def test_trend_is_up_with_the_least_squares_slope(report: dict[str, Any]) -> None:
    expected = _monthly(sales_frame(), "revenue").to_numpy()
    slope, _ = np.polyfit(np.arange(MONTHS), expected, 1)
    trend = _series(report, "timeSeries.date.revenue")["trend"]
    assert trend["direction"] == "up"
    assert trend["slopePerPeriod"] == pytest.approx(slope, abs=1e-6)
    assert trend["periodsUsed"] == MONTHS


def test_last_change_year_over_year_and_unusual_value(report: dict[str, Any]) -> None:
    expected = _monthly(sales_frame(), "revenue").to_numpy()
    series = _series(report, "timeSeries.date.revenue")
    change = series["lastChange"]
    assert (change["period"], change["previousPeriod"]) == ("2024-12-01", "2024-11-01")
    assert change["value"] == pytest.approx(expected[-1])
    assert change["change"] == pytest.approx(expected[-1] - expected[-2])
    assert change["changePct"] == pytest.approx(100 * (expected[-1] / expected[-2] - 1), abs=1e-6)
    yoy = series["yearOverYear"]
    assert yoy["previousPeriod"] == "2023-12-01"
    assert yoy["changePct"] == pytest.approx(100 * (expected[-1] / expected[-13] - 1), abs=1e-6)
    history = expected[-13:-1]
    z = (expected[-1] - history.mean()) / history.std(ddof=1)
    unusual = series["unusualLast"]
    assert unusual["zScore"] == pytest.approx(z, abs=1e-6)
    assert unusual["isUnusual"] is bool(abs(z) > 3)
    assert unusual["windowPeriods"] == 12


def test_top_contributor_and_detractor_by_region(report: dict[str, Any]) -> None:
    frame = sales_frame()
    dates = pd.to_datetime(frame["date"])
    last = frame[dates.dt.to_period("M") == pd.Period("2024-12")].groupby("region")["revenue"]
    prev = frame[dates.dt.to_period("M") == pd.Period("2024-11")].groupby("region")["revenue"]
    delta = (last.sum() - prev.sum()).sort_values(ascending=False)
    drivers = _series(report, "timeSeries.date.revenue")["drivers"]["region"]
    assert drivers["totalChange"] == pytest.approx(delta.sum())
    top = drivers["contributors"][0]
    assert top["value"] == "North" == delta.index[0]
    assert top["change"] == pytest.approx(delta["North"])
    assert top["shareOfChange"] == pytest.approx(delta["North"] / delta.sum())
    assert [d["value"] for d in drivers["detractors"]] == ["South"]
    assert drivers["detractors"][0]["change"] == pytest.approx(delta["South"])


def test_incomplete_last_period_is_left_out_of_comparisons() -> None:
    frame = sales_frame()
    extra = pd.DataFrame(
        [{"order_id": 10_000, "date": "2025-01-03", "region": "East", "revenue": 1.0, "units": 1}]
    )
    table = Table(frame=pd.concat([frame, extra], ignore_index=True), source_format="csv")
    series = next(
        s for s in compute_report(table)["timeSeries"] if s["key"] == "timeSeries.date.revenue"
    )
    assert series["periods"] == MONTHS + 1
    assert series["lastPeriodComplete"] is False
    assert series["lastChange"]["period"] == "2024-12-01"


def test_evidence_keys_resolve(report: dict[str, Any]) -> None:
    assert resolve(report, "timeSeries.date.revenue.trend.direction") == "up"
    assert resolve(report, "timeSeries.date.revenue.drivers.region.contributors.0.value") == (
        "North"
    )
    assert resolve(report, "columns.revenue.numeric.sum") == pytest.approx(
        sales_frame()["revenue"].sum()
    )


def test_short_span_has_no_series() -> None:
    frame = pd.DataFrame({"when": ["2024-01-01", "2024-01-02"] * 10, "x": range(20)})
    assert compute_report(Table(frame=frame, source_format="csv"))["timeSeries"] == []


def test_weekly_and_daily_granularity(tmp_path: pathlib.Path) -> None:
    days = pd.date_range("2024-01-01", periods=60, freq="D")
    daily = Table(pd.DataFrame({"d": days, "v": np.arange(60.0)}), "csv")
    series = compute_report(daily)["timeSeries"][1]
    assert series["granularity"] == "day"
    assert series["periods"] == 60
    long = pd.date_range("2023-01-02", periods=400, freq="D")
    weekly = Table(pd.DataFrame({"d": long, "units": np.arange(400.0) % 3}), "csv")
    series = compute_report(weekly)["timeSeries"][1]
    assert series["granularity"] == "week"
    assert series["points"][0] == {"start": "2023-01-02", "value": 6.0}  # Mon 2 Jan 2023
