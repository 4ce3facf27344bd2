"""Grounding: evidence keys must exist, numbers must be KPI values under the documented rounding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_svc.fallback import InsightDraft, fallback_insights
from llm_svc.grounding import Facts, ground, resolve, unsupported_numbers
from tests.support.sample_report import sample_report_with_traps

REPORT: dict[str, Any] = sample_report_with_traps()
FACTS = Facts.of(REPORT)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dataset.rows", 1200),
        ("columns.revenue.numeric.sum", 1234567.891),
        ("columns.region.topValues.0", {"value": "Store 12", "count": 500, "share": 0.4167}),
        ("columns.region.topValues.1.share", 0.25),
        ("columns.unit.price.numeric.mean", 3.5),
        ("columns.1.name", "revenue"),
        ("timeSeries.0.changePct", -7.25),
    ],
)
def test_evidence_keys_resolve(key: str, value: Any) -> None:
    assert resolve(REPORT, key) == (True, value)


@pytest.mark.parametrize(
    "key",
    ["", "dataset.nope", "columns.profit.numeric.sum", "columns.region.topValues.9", "x", "."],
)
def test_unknown_evidence_keys_do_not_resolve(key: str) -> None:
    assert resolve(REPORT, key)[0] is False


@pytest.mark.parametrize(
    "text",
    [
        "Revenue totals 1,234,567.89.",
        "Revenue totals 1234567.891.",
        "Revenue totals 1,234,568.",
        "Revenue totals about 1.2 million.",
        "Revenue totals 1.23M and 1,235k.",
        "The mean is 102.97, the median 99.5 and the maximum 999.",
        "Mean price 3.5 (median 3).",
        "'Store 12' leads with 500 rows (41.7% of values).",
        "'Store 12' leads with 41.67% and South follows with 25%.",
        "0.63% of all cells are empty; revenue misses 0.25%.",
        "Revenue fell by 7.25% in 'revenue by 2024-03'.",
        "Revenue fell by -7.3% over the period.",
        "Dates run from 2024-01-31T00:00:00 to 2024-12-31T00:00:00 in q3_sales.",
        "Sales through 2024 were steady.",
        "The spread is 0.004 at most, the minimum is 0.",
        "No numbers at all.",
    ],
)
def test_numbers_within_documented_rounding_are_grounded(text: str) -> None:
    assert unsupported_numbers(text, FACTS) == []


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("Revenue totals 1,234,600.", ["1,234,600"]),
        ("Revenue grew 15% this quarter.", ["15%"]),
        ("The top 6 regions carry most sales.", ["6"]),
        ("Revenue totals 1.3 million.", ["1.3 million"]),
        ("'Store 12' and 'Store 13' lead.", ["13"]),
        ("Average price is 3.6.", ["3.6"]),
        ("Spread is 0.00 and 0.", []),
        ("Shares: 0.4167 is 42.67%.", ["42.67%"]),
        ("Sales in 2023 were weak.", ["2023"]),
        ("Revenue per row is 1,028.81.", ["1,028.81"]),
    ],
)
def test_numbers_not_in_the_report_are_found(text: str, bad: list[str]) -> None:
    assert unsupported_numbers(text, FACTS) == bad


def test_zero_is_only_a_kpi_that_is_zero() -> None:
    facts = Facts.of({"a": 0.004})
    assert unsupported_numbers("a is 0.00", facts) == ["0.00"]
    assert unsupported_numbers("a is 0", facts) == ["0"]
    assert unsupported_numbers("a is 0.004", facts) == []


def test_ground_keeps_good_insights_and_says_why_others_are_dropped() -> None:
    good = InsightDraft("Revenue", "Revenue totals 1,234,567.89.", ["columns.revenue.numeric.sum"])
    invented = InsightDraft("Growth", "Revenue grew 15%.", ["columns.revenue.numeric.sum"])
    unknown = InsightDraft("Profit", "Profit is high.", ["columns.profit.numeric.sum"])
    bare = InsightDraft("Rows", "1,200 rows.", [])
    in_title = InsightDraft("Top 8 regions", "Regions vary.", ["columns.region.distinct"])
    kept, dropped = ground([good, invented, unknown, bare, in_title], REPORT)
    assert kept == [good]
    assert [(d.title, v.reason) for d, v in dropped] == [
        ("Growth", "ungrounded_number"),
        ("Profit", "unknown_evidence"),
        ("Rows", "no_evidence"),
        ("Top 8 regions", "ungrounded_number"),
    ]
    assert dropped[0][1].detail == "15%"


# --------------------------------------------------------------------------- properties

_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
_ANY_JSON = st.recursive(
    _JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_FINITE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
_NAME = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
_COLUMN = st.fixed_dictionaries(
    {
        "name": _NAME,
        "type": st.sampled_from(["numeric", "categorical", "boolean", "datetime", "id", "x"]),
        "missing": st.integers(0, 10**6) | _FINITE,
        "missingPct": _FINITE,
        "distinct": st.integers(0, 10**6),
        "numeric": st.fixed_dictionaries(
            {k: _FINITE | st.none() for k in ("sum", "mean", "median", "min", "max", "std")}
        ),
        "topValues": st.lists(
            st.fixed_dictionaries(
                {"value": _NAME, "count": st.integers(0, 10**6), "share": _FINITE}
            ),
            max_size=3,
        ),
        "extra": _ANY_JSON,
    }
)
_REPORT = st.fixed_dictionaries(
    {
        "schemaVersion": st.just("1.0"),
        "dataset": st.fixed_dictionaries(
            {
                "rows": st.integers(0, 10**9),
                "columns": st.integers(0, 500),
                "missingCells": st.integers(0, 10**6),
                "missingCellsPct": _FINITE,
                "duplicateRows": st.integers(0, 10**6),
            }
        ),
        "columns": st.lists(_COLUMN, max_size=5),
        "timeSeries": st.lists(
            st.dictionaries(st.text(max_size=10), _FINITE | st.text(max_size=6), max_size=5).map(
                lambda d: d
            )
            | st.fixed_dictionaries(
                {"key": _NAME, "changePct": _FINITE, "slope": _FINITE, "direction": _NAME}
            ),
            max_size=3,
        ),
        "unknown": _ANY_JSON,
    }
)


@settings(max_examples=300, deadline=None)
@given(_REPORT)
def test_fallback_on_any_report_is_deterministic_and_fully_grounded(report: dict[str, Any]) -> None:
    insights = fallback_insights(report)
    again = fallback_insights(json.loads(json.dumps(report)))
    assert [vars(i) for i in again] == [vars(i) for i in insights]
    _kept, dropped = ground(insights, report)
    assert not dropped, [(d.title, d.text, v) for d, v in dropped]


@settings(max_examples=200, deadline=None)
@given(_ANY_JSON)
def test_fallback_and_grounding_never_crash_on_any_json(report: Any) -> None:
    insights = fallback_insights(report)
    ground(insights, report)
    ground([InsightDraft("t", "1 2.5 3%", ["a.b", "0"])], report)
