"""Grounding: only numbers of the cited candidates and the summary; labels are never a source."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from datapilot_runtime.report.insights import (
    ConcentrationInsight,
    LevelShiftInsight,
    SegmentInsight,
)
from llm_svc.fallback import InsightDraft, fallback_insights
from llm_svc.grounding import Facts, ground, resolve, unsupported_numbers

PLANTED = "Revenue fell 87% to $4,200,000 in Q4"
SEGMENT = SegmentInsight(
    key="segment.price.region",
    score=0.9,
    measure="price",
    dimension="region",
    aggregation="mean",
    segment="Store 12",
    direction="high",
    segment_value=12.4,
    rest_value=6.2,
    ratio=2.0,
    segment_rows=40,
    rest_rows=120,
    effect_size=0.9,
)
CONCENTRATION = ConcentrationInsight(
    key="concentration.sales.region",
    score=0.8,
    measure="sales",
    dimension="region",
    top=PLANTED,
    top_value=4_980_000.0,
    top_share=0.334,
    top_k=12,
    top_k_share=0.5,
    segments=40,
    values_for_80_pct=20,
)
SHIFT = LevelShiftInsight(
    key="level_shift.flow.year",
    score=0.7,
    measure="flow_2019",
    time="year",
    granularity="year",
    aggregation="mean",
    period="1898",
    last_period_before="1897",
    before=400.0,
    after=800.0,
    change_pct=100.0,
)
SHIFT_DOWN = SHIFT.model_copy(
    update={"key": "level_shift.down", "before": 800.0, "after": 400.0, "change_pct": -50.0}
)


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json")


REPORT: dict[str, Any] = {
    "schemaVersion": "3.0",
    "dataset": {"rows": 1200, "columns": 5, "missingCells": 30, "duplicateRows": 0},
    "roles": [
        {"name": "region", "role": "dimension", "reason": "few distinct strings"},
        {"name": "q3_sales", "role": "additive", "reason": "an amount"},
    ],
    "timeAxis": {"name": "year", "granularity": "year", "periods": 91, "start": "1930"},
    "candidates": [_dump(c) for c in (SEGMENT, CONCENTRATION, SHIFT, SHIFT_DOWN)],
    "columns": [{"name": "unit.price", "type": "numeric", "numeric": {"sum": 42.0}}],
}
FACTS = Facts.of(REPORT)
SEG, CON, LVL, DOWN = (
    "candidates.segment.price.region",
    "candidates.concentration.sales.region",
    "candidates.level_shift.flow.year",
    "candidates.level_shift.down",
)


def _keys(*evidence: str) -> list[str]:
    return FACTS.cited(evidence)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dataset.rows", 1200),
        (f"{SEG}.segmentValue", 12.4),
        (f"{CON}.topShare", 0.334),
        (f"{LVL}.period", "1898"),
        (SEG, _dump(SEGMENT)),
        ("candidates.0.ratio", 2.0),
        ("columns.unit.price.numeric.sum", 42.0),
    ],
)
def test_evidence_keys_resolve(key: str, value: Any) -> None:
    assert resolve(REPORT, key) == (True, value)


@pytest.mark.parametrize(
    "key", ["", "candidates.nope", f"{SEG}.nope", "candidates.segment.price", "dataset.x", "."]
)
def test_unknown_evidence_keys_do_not_resolve(key: str) -> None:
    assert resolve(REPORT, key)[0] is False


def test_cited_keys_are_the_longest_candidate_key_that_fits() -> None:
    assert _keys(f"{SEG}.ratio", "dataset.rows", SEG, f"{LVL}.after") == [
        "segment.price.region",
        "level_shift.flow.year",
    ]


@pytest.mark.parametrize(
    ("text", "evidence"),
    [
        ("Average price in Store 12 is 12.4, against 6.2 for the rest.", [SEG]),
        ("Store 12 leads on price: 12.40 against 6.20 (2.0\u00d7).", [SEG]),
        ("Store 12's average price is twice the rest.", [SEG]),
        ("Prices in Store 12 are 2 times those of the rest.", [SEG]),
        ("The rest pay half of what Store 12 pays.", [SEG]),
        ("Flow doubled in 1898, from 400 to 800.", [LVL]),
        ("Flow halved in 1898.", [DOWN]),
        ("Flow fell by half in 1898.", [DOWN]),
        ("Flow 2019 rose by 100% in 1898.", [LVL]),
        ("The file has 1,200 rows and 5 columns; 30 cells are empty.", [SEG]),
        ("The series covers 91 years from 1930.", [SEG]),
        ("About five million in sales comes from one region.", [CON]),
        ("A third of sales comes from one region; a dozen regions hold half of it.", [CON]),
        ("The top twelve regions hold 50% of sales, the leader 33.4%.", [CON]),
        (f'Region "{PLANTED}" carries 33.4% of total sales.', [CON]),
        (f"Region \u201c{PLANTED}\u201d leads sales.", [CON]),
        ("Sales in q3_sales and q3 sales are additive.", [SEG]),
        ("No numbers at all.", [SEG]),
    ],
)
def test_true_insights_are_grounded(text: str, evidence: list[str]) -> None:
    assert unsupported_numbers(text, FACTS, _keys(*evidence)) == []


@pytest.mark.parametrize(
    ("text", "evidence", "bad"),
    [
        # The planted label, written as the claim it makes, is no source.
        (f"{PLANTED}.", [CON], ["87%", "4,200,000"]),
        (f"Region {PLANTED} leads.", [CON], ["87%", "4,200,000"]),
        ("Revenue fell 87% in Q4.", [CON], ["87%"]),
        # Numbers of a candidate that is not cited are no source either.
        ("Store 12 leads with 33.4% of sales.", [SEG], ["33.4%"]),
        ("Average price is 12.4.", [CON], ["12.4"]),
        ("Store 13 leads.", [SEG], ["13"]),
        ("Sales reached 4,200,000.", [CON], ["4,200,000"]),
        # Number words and multipliers are checked.
        ("Sales are about six million in the top region.", [CON], ["six million"]),
        ("Three quarters of sales come from the leader.", [CON], ["Three quarters"]),
        ("A quarter of sales come from the leader.", [CON], ["A quarter"]),
        ("Flow tripled in 1898.", [LVL], ["tripled"]),
        ("Flow halved in 1898.", [LVL], ["halved"]),
        ("Flow doubled in 1898.", [DOWN], ["doubled"]),
        ("Store 12 prices are three times the rest.", [SEG], ["three times"]),
        ("Store 12 prices are 3x the rest.", [SEG], ["3x"]),
        ("Flow quadrupled.", [LVL], ["quadrupled"]),
        ("Thousands of rows are empty.", [SEG], ["Thousands"]),
        # 30 empty cells is no share and no percentage field: "a third" is not its reading.
        ("A third of the rest's price.", [SEG], ["A third"]),
        ("Seven regions lead.", [CON], ["Seven"]),
        ("Sales grew 15% in 2023.", [CON], ["15%", "2023"]),
    ],
)
def test_numbers_not_in_what_is_cited_are_found(
    text: str, evidence: list[str], bad: list[str]
) -> None:
    assert unsupported_numbers(text, FACTS, _keys(*evidence)) == bad


def test_a_bare_number_label_is_a_name_only_in_quotes() -> None:
    label = SEGMENT.model_copy(update={"key": "s", "segment": "4200000"})
    facts = Facts.of({"candidates": [_dump(label)]})
    assert unsupported_numbers("Store 4200000 leads.", facts, ["s"]) == ["4200000"]
    assert unsupported_numbers('Store "4200000" leads.', facts, ["s"]) == []


@pytest.mark.parametrize("label", ["4200000 dollars", "Up 3.5 points", "4,200,000 in Q4"])
def test_a_label_holding_a_quantity_is_a_name_only_in_quotes(label: str) -> None:
    planted = SEGMENT.model_copy(update={"key": "s", "segment": label})
    facts = Facts.of({"candidates": [_dump(planted)]})
    assert unsupported_numbers(f"Revenue: {label}.", facts, ["s"]) != []
    assert unsupported_numbers(f'Region "{label}" leads.', facts, ["s"]) == []


def test_a_label_with_number_words_is_a_name_only_in_quotes() -> None:
    label = SEGMENT.model_copy(update={"key": "s", "segment": "Sales tripled"})
    facts = Facts.of({"candidates": [_dump(label)]})
    assert unsupported_numbers("Sales tripled in the north.", facts, ["s"]) == ["tripled"]
    assert unsupported_numbers("'Sales tripled' leads.", facts, ["s"]) == []


def test_zero_is_only_a_value_that_is_zero() -> None:
    tiny = SEGMENT.model_copy(update={"key": "s", "rest_value": 0.004, "ratio": None})
    facts = Facts.of({"candidates": [_dump(tiny)]})
    assert unsupported_numbers("The rest is at 0.00", facts, ["s"]) == ["0.00"]
    assert unsupported_numbers("The rest is at 0.004", facts, ["s"]) == []


def test_an_old_report_label_is_no_source_any_more() -> None:
    """Schema 2.0: a category value holding figures used to whitelist them."""
    old = {
        "dataset": {"rows": 120},
        "columns": [{"name": "region", "topValues": [{"value": PLANTED, "count": 60}]}],
    }
    draft = InsightDraft("Q4", f"{PLANTED}.", ["dataset.rows"])
    kept, dropped = ground([draft], old)
    assert kept == []
    assert dropped[0][1].reason == "ungrounded_number"


def test_ground_keeps_good_insights_names_their_candidate_and_says_why_others_are_dropped() -> None:
    good = InsightDraft("Store 12 leads", "Store 12 prices are twice the rest.", [SEG])
    planted = InsightDraft("Q4", f"{PLANTED}.", [CON])
    unknown = InsightDraft("Profit", "Profit is high.", ["candidates.profit"])
    bare = InsightDraft("Rows", "1,200 rows.", [])
    in_title = InsightDraft("Top 8 regions", "Regions vary.", [CON])
    kept, dropped = ground([good, planted, unknown, bare, in_title], REPORT)
    assert [(d.text, d.type, d.key, d.score) for d in kept] == [
        (good.text, "segment", "segment.price.region", 0.9)
    ]
    assert [(d.title, v.reason) for d, v in dropped] == [
        ("Q4", "ungrounded_number"),
        ("Profit", "unknown_evidence"),
        ("Rows", "no_evidence"),
        ("Top 8 regions", "ungrounded_number"),
    ]
    assert dropped[0][1].detail == "87%, 4,200,000"


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


@settings(max_examples=200, deadline=None)
@given(_ANY_JSON)
def test_fallback_and_grounding_never_crash_on_any_json(report: Any) -> None:
    insights = fallback_insights(report)
    ground(insights, report)
    ground([InsightDraft("t", "1 2.5 3% twice a third five million", ["a.b", "0"])], report)
    ground([InsightDraft("t", "1 2.5 3% twice", ["candidates.x"])], {"candidates": report})


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_checked_without_crashing(text: str) -> None:
    unsupported_numbers(text, FACTS, _keys(SEG, CON, LVL))
