"""Fallback insights: byte-identical for the same report, and no number the report lacks."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from llm_svc.fallback import fallback_insights, format_number
from llm_svc.grounding import ground
from tests.support.sample_report import sample_report

REPORT: dict[str, Any] = sample_report()


def _rendered(report: dict[str, Any]) -> bytes:
    return json.dumps([vars(i) for i in fallback_insights(report)]).encode()


def test_same_report_gives_byte_identical_insights() -> None:
    first = _rendered(REPORT)
    copy = json.loads(json.dumps(REPORT))
    assert _rendered(copy) == first
    assert _rendered(REPORT) == first


def _report_values(report: dict[str, Any]) -> list[float]:
    values: list[float] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            values.append(float(value))

    walk(report)
    return values


def _is_a_report_value(number: str, values: list[float]) -> bool:
    """`number` as printed is a report value (or a 0-1 share as a percentage), rounded.

    Worked out from the text itself, not with the fallback's own formatter: the printed number
    may differ from a value by at most half a unit of its last printed decimal.
    """
    printed = float(number.replace(",", ""))
    decimals = len(number.partition(".")[2])
    tolerance = 0.5 * 10**-decimals + 1e-9
    return any(abs(printed - v) <= tolerance or abs(printed - 100 * v) <= tolerance for v in values)


def test_every_number_in_the_text_is_a_kpi_value() -> None:
    values = _report_values(REPORT)
    insights = fallback_insights(REPORT)
    assert insights
    for insight in insights:
        for number in re.findall(r"\d[\d,]*(?:\.\d+)?", insight.text):
            assert _is_a_report_value(number, values), (
                f"{number!r} in {insight.text!r} is not a KPI value"
            )


def test_id_columns_are_never_summed() -> None:
    assert not any("order_id" in i.text for i in fallback_insights(REPORT))


def test_evidence_points_at_existing_keys() -> None:
    for insight in fallback_insights(REPORT):
        for key in insight.evidence:
            parts = key.split(".")
            node: Any = REPORT
            for part in parts:
                if isinstance(node, list):
                    node = next((c for c in node if c.get("name") == part), None) or node[int(part)]
                else:
                    node = node[part]
            assert node is not None


def test_an_empty_report_says_nothing_rather_than_invent() -> None:
    assert fallback_insights({}) == []
    only_rows = fallback_insights({"dataset": {"rows": 0, "missingCells": 0}})
    assert [i.text for i in only_rows] == ["The dataset has 0 rows.", "No cells are empty."]


@pytest.mark.parametrize(
    "report",
    [
        [],
        "text",
        {"dataset": [], "columns": {}},
        {"dataset": {"rows": "12", "columns": None, "missingCells": True}},
        {"columns": [1, None, {"name": 3}, {"type": "numeric"}, {"name": "x", "numeric": []}]},
        {"columns": [{"name": "x", "type": "categorical", "topValues": [None, 1]}]},
        {"columns": [{"name": "x", "type": "categorical", "topValues": [{"value": {}}]}]},
        {"columns": [{"name": "x", "type": "numeric", "numeric": {"sum": float("nan")}}]},
        {"timeSeries": {"key": "x"}},
        {"timeSeries": [None, {"key": 5}, {"key": "k", "changePct": "12"}, {"nokey": 1}]},
    ],
)
def test_unexpected_shapes_never_crash(report: Any) -> None:
    fallback_insights(report)


TIME_SERIES_REPORT: dict[str, Any] = {
    **REPORT,
    "timeSeries": [
        {"key": "timeSeries.date.(rows)", "datetime": "date", "measure": None, "periods": 12},
        {
            "key": "timeSeries.date.revenue",
            "datetime": "date",
            "measure": "revenue",
            "aggregation": "sum",
            "granularity": "month",
            "periods": 14,
            "trend": {"direction": "up", "slopePerPeriod": 12.5, "changeOverWindowPct": 18.25},
            "lastChange": {
                "period": "2025-12-01",
                "value": 4100.0,
                "previousValue": 3900.0,
                "change": 200.0,
                "changePct": 5.128205,
            },
            "unusualLast": {
                "value": 4100.0,
                "mean": 2000.0,
                "isUnusual": True,
                "direction": "high",
            },
            "drivers": {
                "region": {
                    "totalChange": 200.0,
                    "contributors": [{"value": "North", "change": 250.0}],
                    "detractors": [{"value": "South", "change": -50.0}],
                }
            },
        },
        {"key": "timeSeries.date.units", "measure": "units", "unknownField": {"a": 1}},
    ],
    "correlations": [
        {"key": "correlations.revenue.units", "a": "revenue", "b": "units", "r": 0.93}
    ],
}


def test_time_series_facts_are_stated_with_their_evidence() -> None:
    insights = fallback_insights(TIME_SERIES_REPORT)
    trend = next(i for i in insights if i.title == "'revenue' over time")
    assert trend.text == (
        "'revenue' per month trends up (18.25% over the series); in the last complete month "
        "(2025-12-01) 'revenue' was 4,100, against 3,900 the month before (up 5.13%); the largest "
        "contributor was region 'North' (+250); that last value is unusually high next to the "
        "recent mean of 2,000."
    )
    key = "timeSeries.date.revenue"
    assert trend.evidence == [
        f"{key}.trend.direction",
        f"{key}.trend.changeOverWindowPct",
        f"{key}.lastChange.value",
        f"{key}.lastChange.previousValue",
        f"{key}.lastChange.changePct",
        f"{key}.drivers.region.contributors.0.change",
        f"{key}.unusualLast.isUnusual",
        f"{key}.unusualLast.mean",
    ]
    assert trend.severity == "warning"
    titles = [i.title for i in insights]
    assert "'units' over time" not in titles  # nothing to say about it
    assert not any("(rows)" in t for t in titles)
    assert _rendered(TIME_SERIES_REPORT) == _rendered(json.loads(json.dumps(TIME_SERIES_REPORT)))


def test_every_fallback_insight_passes_grounding() -> None:
    for report in (REPORT, TIME_SERIES_REPORT):
        insights = fallback_insights(report)
        kept, dropped = ground(insights, report)
        assert not dropped, [(d.text, v) for d, v in dropped]
        assert kept == insights


def test_tiny_values_never_read_as_zero() -> None:
    assert format_number(0.004) == "0.0040"
    assert format_number(1234.5) == "1,234.50"
    assert format_number(-3.0) == "-3"
