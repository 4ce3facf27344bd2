"""Chart specs: Vega-Lite v5, aggregated data only, each tied to a report key."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from analysis_svc.engine.charts import MAX_CHARTS, SCATTER_SAMPLE, VEGA_LITE_SCHEMA, build_charts
from analysis_svc.engine.kpis.report import compute_report
from analysis_svc.engine.readers.dispatch import Table
from tests.unit.test_kpi_evidence import resolve
from tests.unit.test_kpi_timeseries import sales_frame


def _table() -> Table:
    frame = sales_frame()
    rng = np.random.default_rng(2)
    # Correlated, not derived (a near-exact linear function of revenue would be left out).
    noise = rng.normal(0, 0.3 * float(frame["revenue"].std()), len(frame))
    frame["cost"] = frame["revenue"] * 0.6 + noise
    frame.loc[frame.index % 10 == 0, "units"] = np.nan
    return Table(frame=frame, source_format="csv")


def _charts() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    table = _table()
    report = compute_report(table)
    return build_charts(table, report), report


def test_charts_are_vega_lite_with_titles_and_report_keys() -> None:
    charts, report = _charts()
    assert 1 <= len(charts) <= MAX_CHARTS
    ids = [chart["usermeta"]["id"] for chart in charts]
    assert ids == [
        "timeSeries",
        "drivers",
        "topValues.region",
        "distribution.revenue",
        "correlation",
        "missing",
    ]
    for chart in charts:
        assert chart["$schema"] == VEGA_LITE_SCHEMA
        assert chart["title"]
        assert "mark" in chart and "encoding" in chart
        resolve(report, chart["usermeta"]["reportKey"])
        assert len(chart["data"]["values"]) <= SCATTER_SAMPLE
    json.dumps(charts, allow_nan=False)


def test_time_series_chart_holds_the_report_points() -> None:
    charts, report = _charts()
    series = resolve(report, charts[0]["usermeta"]["reportKey"])
    assert [v["value"] for v in charts[0]["data"]["values"]] == [
        p["value"] for p in series["points"]
    ]


def test_histogram_counts_every_value_once() -> None:
    charts = _charts()[0]
    histogram = next(c for c in charts if c["usermeta"]["id"] == "distribution.revenue")
    assert sum(v["count"] for v in histogram["data"]["values"]) == len(sales_frame())


def test_scatter_is_a_small_deterministic_sample() -> None:
    first = _charts()[0]
    second = _charts()[0]
    scatter = next(c for c in first if c["usermeta"]["id"] == "correlation")
    assert scatter == next(c for c in second if c["usermeta"]["id"] == "correlation")
    assert len(scatter["data"]["values"]) == min(SCATTER_SAMPLE, len(sales_frame()))


def test_no_charts_for_a_table_without_facts() -> None:
    table = Table(frame=pd.DataFrame({"note": ["same"] * 5}), source_format="csv")
    assert build_charts(table, compute_report(table)) == []


def test_charts_from_the_report_profiles_equal_charts_that_profile_again() -> None:
    from analysis_svc.engine.kpis.report import profile_table

    table = _table()
    profiles = profile_table(table)
    report = compute_report(table, profiles=profiles)
    assert report == compute_report(table)
    shared = build_charts(table, report, {p.name: p.numbers for p in profiles})
    ids = {chart["usermeta"]["id"] for chart in shared}
    assert {"correlation", "distribution.revenue"} <= ids
    assert shared == build_charts(table, report)
