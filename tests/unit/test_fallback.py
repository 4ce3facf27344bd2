"""Fallback insights: byte-identical for the same report, and no number the report lacks."""

from __future__ import annotations

import json
import re
from typing import Any

from llm_svc.fallback import fallback_insights, format_number, format_share

REPORT: dict[str, Any] = {
    "schemaVersion": "1.0",
    "dataset": {
        "format": "csv",
        "rows": 1200,
        "columns": 4,
        "missingCells": 30,
        "missingCellsPct": 0.63,
        "duplicateRows": 2,
    },
    "columns": [
        {
            "name": "region",
            "type": "categorical",
            "missing": 0,
            "missingPct": 0.0,
            "distinct": 4,
            "topValues": [
                {"value": "North", "count": 500, "share": 0.4167},
                {"value": "South", "count": 300, "share": 0.25},
            ],
        },
        {
            "name": "revenue",
            "type": "numeric",
            "missing": 3,
            "missingPct": 0.25,
            "distinct": 900,
            "numeric": {
                "sum": 123456.789,
                "mean": 102.97,
                "median": 99.5,
                "min": 0.0,
                "max": 999.0,
                "std": 12.5,
            },
        },
        {
            "name": "units",
            "type": "numeric",
            "missing": 0,
            "missingPct": 0.0,
            "distinct": 40,
            "numeric": {
                "sum": 4800.0,
                "mean": 4.0,
                "median": 4.0,
                "min": 1.0,
                "max": 40.0,
                "std": 2.0,
            },
        },
        {"name": "order_id", "type": "id", "missing": 0, "missingPct": 0.0, "distinct": 1200},
    ],
}


def _rendered(report: dict[str, Any]) -> bytes:
    return json.dumps([vars(i) for i in fallback_insights(report)]).encode()


def test_same_report_gives_byte_identical_insights() -> None:
    first = _rendered(REPORT)
    copy = json.loads(json.dumps(REPORT))
    assert _rendered(copy) == first
    assert _rendered(REPORT) == first


def _allowed_numbers(report: dict[str, Any]) -> set[str]:
    allowed: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, bool):
            return
        elif isinstance(value, int | float):
            allowed.add(format_number(float(value)))
            allowed.add(format_share(float(value)).rstrip("%"))

    walk(report)
    return allowed


def test_every_number_in_the_text_is_a_kpi_value() -> None:
    allowed = _allowed_numbers(REPORT)
    insights = fallback_insights(REPORT)
    assert insights
    for insight in insights:
        for number in re.findall(r"\d[\d,]*(?:\.\d+)?", insight.text):
            assert number in allowed, f"{number!r} in {insight.text!r} is not a KPI value"


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


def test_an_empty_report_says_little_and_does_not_crash() -> None:
    insights = fallback_insights({})
    assert [i.title for i in insights] == ["Dataset size", "Missing data"]
