"""The sample KPI report (schema 1.0 shape) of the fallback and grounding tests and LLM bench."""

from __future__ import annotations

import copy
from typing import Any

_SAMPLE: dict[str, Any] = {
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


def sample_report() -> dict[str, Any]:
    """A fresh copy: 1,200 rows of region, revenue, units and an id column."""
    return copy.deepcopy(_SAMPLE)


def sample_report_with_traps() -> dict[str, Any]:
    """The sample with what grounding must see through: numbers in names and labels, odd values.

    A category label with a digit ('Store 12'), a column named with a dot ('unit.price'), a
    datetime column named with digits ('q3_sales'), a seven-digit total, a spread below 0.005.
    """
    report = sample_report()
    region, revenue, _units, _order_id = report["columns"]
    region["topValues"][0]["value"] = "Store 12"
    revenue["numeric"].update(sum=1234567.891, std=0.004)
    report["columns"] = [
        region,
        revenue,
        {
            "name": "unit.price",
            "type": "numeric",
            "missing": 0,
            "missingPct": 0.0,
            "distinct": 4,
            "numeric": {"sum": 42.0, "mean": 3.5, "median": 3.0, "min": 1, "max": 9, "std": 1},
        },
        {
            "name": "q3_sales",
            "type": "datetime",
            "missing": 0,
            "missingPct": 0.0,
            "distinct": 90,
            "datetime": {"min": "2024-01-31T00:00:00", "max": "2024-12-31T00:00:00"},
        },
    ]
    report["timeSeries"] = [{"key": "revenue by 2024-03", "changePct": -7.25}]
    return report
