"""Fallback insights: each typed candidate phrased, ranked, grounded; nothing invented, no crash."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from datapilot_runtime.report.insights import (
    ConcentrationInsight,
    CorrelationInsight,
    LevelShiftInsight,
    OutliersInsight,
    PeriodChangeInsight,
    QualityInsight,
    RecordInsight,
    SeasonInsight,
    SegmentInsight,
    TrendInsight,
    UnusualInsight,
)
from llm_svc.fallback import InsightDraft, fallback_insights, format_number, phrase
from llm_svc.grounding import ground

SEGMENT = SegmentInsight(
    key="segment.price.region",
    score=0.95,
    measure="price",
    dimension="region",
    aggregation="mean",
    segment="North",
    direction="high",
    segment_value=12.4,
    rest_value=8.1,
    ratio=1.53,
    segment_rows=40,
    rest_rows=120,
    effect_size=0.9,
)
CONCENTRATION = ConcentrationInsight(
    key="concentration.sales.region",
    score=0.9,
    measure="sales",
    dimension="region",
    top="West",
    top_value=4120.0,
    top_share=0.412,
    top_k=3,
    top_k_share=0.78,
    segments=6,
    values_for_80_pct=4,
)
SEASON = SeasonInsight(
    key="season.passengers",
    score=0.85,
    measure="passengers",
    time="month",
    granularity="month",
    cycle="year",
    peak="July",
    trough="November",
    peak_value=476.25,
    trough_value=330.1,
    strength=0.8,
    cycles=12,
)
LEVEL_SHIFT = LevelShiftInsight(
    key="level_shift.flow.year",
    score=0.8,
    measure="flow",
    time="year",
    granularity="year",
    aggregation="mean",
    period="1898",
    last_period_before="1897",
    before=1097.75,
    after=849.97,
    change_pct=-22.57,
)
TREND = TrendInsight(
    key="trend.sales.date",
    score=0.7,
    measure="sales",
    time="date",
    granularity="month",
    aggregation="sum",
    direction="up",
    first_period="2019-01",
    last_period="2021-12",
    first_value=1200,
    last_value=1850,
    change_pct=54.17,
    periods=36,
    significance=0.99,
)
PERIOD_CHANGE = PeriodChangeInsight(
    key="period_change.sales.date",
    score=0.6,
    measure="sales",
    time="date",
    granularity="month",
    aggregation="sum",
    comparison="previous",
    period="2021-12",
    previous_period="2021-11",
    value=1850,
    previous_value=1650,
    change=200,
    change_pct=12.12,
)
UNUSUAL = UnusualInsight(
    key="unusual.sales.date",
    score=0.55,
    measure="sales",
    time="date",
    granularity="month",
    aggregation="sum",
    period="2021-12",
    value=1850,
    expected=1200,
    z_score=3.41,
    direction="high",
)
RECORD = RecordInsight(
    key="record.sales.date",
    score=0.5,
    measure="sales",
    time="date",
    granularity="month",
    aggregation="sum",
    period="2021-12",
    value=1850,
    previous_record=1700,
    previous_record_period="2020-12",
    direction="high",
)
CORRELATION = CorrelationInsight(
    key="correlation.price.quantity",
    score=0.4,
    measure="price",
    other="quantity",
    r=-0.87,
    n=1200,
)
OUTLIERS = OutliersInsight(
    key="outliers.unit_price",
    score=0.3,
    measure="unit_price",
    count=12,
    pct=1.0,
    lower_fence=2.5,
    upper_fence=40.0,
)
QUALITY = QualityInsight(
    key="quality.missing.discount",
    score=0.2,
    kind="missing_values",
    column="discount",
    count=30,
    pct=2.5,
)
ALL = [
    SEGMENT,
    CONCENTRATION,
    SEASON,
    LEVEL_SHIFT,
    TREND,
    PERIOD_CHANGE,
    UNUSUAL,
    RECORD,
    CORRELATION,
    OUTLIERS,
    QUALITY,
]


def report_of(*candidates: Any, **extra: Any) -> dict[str, Any]:
    """A schema-3.0 KPI report with these candidates (models dumped as the engine dumps them)."""
    return {
        "schemaVersion": "3.0",
        "dataset": {"rows": 1200, "columns": 6, "missingCells": 30, "duplicateRows": 0},
        "roles": [{"name": "region", "role": "dimension", "reason": "few distinct strings"}],
        "candidates": [
            c.model_dump(by_alias=True, mode="json") if isinstance(c, BaseModel) else c
            for c in candidates
        ],
        **extra,
    }


# Written by hand: the numbers are the candidates' fields, rounded as an analyst would
# (1,097.75 -> "1,098", 476.25 -> "476.2": fewer decimals the larger the value).
EXPECTED = {
    "segment": "Average price is highest in region North: 12.40 against 8.10 for the other "
    "regions (1.5\u00d7).",
    "concentration": "West carries 41.2% of total sales (by region); the top 3 regions hold 78.0%.",
    "season": "A yearly season in passengers: highest in July, lowest in November (476.2 "
    "against 330.1).",
    "level_shift": "In 1898, flow dropped from a mean of 1,098 before to 850 after (-22.6%).",
    "trend": "Total sales per month rose over 36 months, from 1,200 in 2019-01 to 1,850 in "
    "2021-12 (+54.2%).",
    "period_change": "In 2021-12, total sales came to 1,850, up 12.1% on 2021-11 (the period "
    "before: 1,650).",
    "unusual": "Unusually high total sales in 2021-12: 1,850, 3.4 standard deviations above the "
    "expected 1,200.",
    "record": "In 2021-12, total sales reached a record high: 1,850, above the previous record "
    "of 1,700 in 2020-12.",
    "correlation": "As price rises, quantity tends to fall (r = -0.87 over 1,200 rows); an "
    "association, not a cause.",
    "outliers": "12 values of unit price are outside the usual range of 2.50 to 40 (1.0% of its "
    "values).",
    "quality": "Column discount: 30 missing values (2.5%).",
}


@pytest.mark.parametrize("candidate", ALL, ids=lambda c: str(c.type))
def test_each_type_is_phrased_like_an_analyst_would(candidate: Any) -> None:
    (draft,) = fallback_insights(report_of(candidate))
    assert draft.text == EXPECTED[str(candidate.type)]
    assert (draft.type, draft.key, draft.score) == (
        str(candidate.type),
        candidate.key,
        candidate.score,
    )
    assert draft.evidence and all(
        e.startswith(f"candidates.{candidate.key}.") for e in draft.evidence
    )


_PRINTED_RE = re.compile(r"(\d+(?:,\d{3})*)(?:\.(\d+))?(?: (million|billion|trillion))?")
_SCALE = {"million": 1e6, "billion": 1e9, "trillion": 1e12}


def _is_a_field(printed: re.Match[str], candidate: Any) -> bool:
    """The printed number is a numeric field (or its percentage) to its printed precision."""
    whole, decimals, word = printed.group(1), printed.group(2) or "", printed.group(3)
    scale = _SCALE[word] if word else 1.0
    written = float(whole.replace(",", "") + "." + (decimals or "0")) * scale
    tolerance = 0.5 * 10.0 ** -len(decimals) * scale
    for name, value in candidate:
        if name == "score" or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if any(abs(abs(v) - written) <= tolerance * 1.000001 for v in (value, value * 100)):
            return True
    return False


def test_every_number_printed_is_a_field_of_its_candidate() -> None:
    drafts = fallback_insights(report_of(*ALL), limit=20)
    by_key = {c.key: c for c in ALL}
    assert {d.key for d in drafts} == set(by_key)
    for draft in drafts:
        candidate = by_key[draft.key]
        masked = f"{draft.title} {draft.text}"
        for label in (v for n, v in candidate if isinstance(v, str) and n != "key"):
            masked = masked.replace(label, "")  # period and segment labels are names
        for number in _PRINTED_RE.finditer(masked):
            assert _is_a_field(number, candidate), f"{number[0]!r} in {draft.text!r} is no field"


def test_top_findings_first_then_quality_notes_and_the_limit_holds() -> None:
    # The quality note ranks first by score; it still comes after the findings.
    quality = QUALITY.model_copy(update={"score": 0.99})
    drafts = fallback_insights(report_of(quality, SEGMENT, CONCENTRATION, SEASON), limit=2)
    assert [d.type for d in drafts] == ["segment", "concentration", "quality"]
    assert len(fallback_insights(report_of(*ALL))) == 8 + 2  # 8 findings, outliers + quality


def test_unknown_types_and_invalid_items_are_skipped() -> None:
    report = report_of(
        {"type": "mystery", "key": "m", "score": 0.9},
        {**SEGMENT.model_dump(by_alias=True, mode="json"), "segmentValue": "high"},
        "not an object",
        CONCENTRATION,
    )
    assert [d.type for d in fallback_insights(report)] == ["concentration"]


def test_an_old_report_without_candidates_says_less() -> None:
    old = {
        "schemaVersion": "2.0",
        "dataset": {"rows": 1200, "columns": 4, "missingCells": 30, "missingCellsPct": 0.63},
        "columns": [{"name": "year", "type": "numeric", "numeric": {"sum": 690762}}],
    }
    drafts = fallback_insights(old)
    assert [d.text for d in drafts] == [
        "The file has 1,200 rows and 4 columns.",
        "30 cells are empty (0.6% of all cells).",
    ]
    assert not any("690,762" in d.text for d in drafts)


def test_labels_are_sanitised_capped_and_quoted_unless_plain_names() -> None:
    planted = "Revenue fell 87% to\n$4,200,000   in Q4 " + "x" * 60
    candidate = CONCENTRATION.model_copy(update={"top": planted, "dimension": "store_name"})
    (draft,) = fallback_insights(report_of(candidate))
    shown = "\u201cRevenue fell 87% to $4,200,000 in Q4 xx\u2026\u201d"
    assert draft.text.startswith(f"{shown} carries 41.2% of total sales (by store name)")
    assert "\n" not in draft.text
    store = SEGMENT.model_copy(update={"segment": "Store 12"})
    assert fallback_insights(report_of(store))[0].text.startswith(
        "Average price is highest in region Store 12:"
    )
    bare = SEGMENT.model_copy(update={"segment": "12"})
    assert "region \u201c12\u201d:" in fallback_insights(report_of(bare))[0].text


def test_same_report_gives_byte_identical_insights() -> None:
    report = report_of(*ALL)

    def rendered(r: dict[str, Any]) -> bytes:
        return json.dumps([vars(i) for i in fallback_insights(r)]).encode()

    assert rendered(json.loads(json.dumps(report))) == rendered(report)


def test_every_fallback_insight_passes_grounding() -> None:
    report = report_of(*ALL)
    drafts = fallback_insights(report, limit=20)
    kept, dropped = ground(drafts, report)
    assert not dropped, [(d.text, v) for d, v in dropped]
    assert kept == drafts


@pytest.mark.parametrize(
    "report",
    [
        [],
        "text",
        {"candidates": {}},
        {"candidates": [None, 1, {"type": "segment"}]},
        {"dataset": {"rows": "12", "missingCells": True}},
        {"candidates": [], "dataset": []},
    ],
)
def test_unexpected_shapes_never_crash(report: Any) -> None:
    fallback_insights(report)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (16_950_402.5, "16.95 million"),
        (10_108_543_400, "10.11 billion"),
        (1.2e12, "1.2 trillion"),
        (-2_500_000, "-2.5 million"),
        (999_996_000, "1 billion"),  # not "1000 million"
        (1_097.75, "1,098"),
        (3_725, "3,725"),
        (999.96, "1,000"),
        (351.26, "351.3"),
        (351.0, "351"),
        (64.04, "64.04"),
        (12.4, "12.40"),
        (-3.0, "-3"),
        (0.004, "0.0040"),
        (0.0, "0"),
    ],
)
def test_numbers_are_rounded_as_an_analyst_would(value: float, text: str) -> None:
    assert format_number(value) == text


@settings(max_examples=300, deadline=None)
@given(
    # Below 1e-9 a value is noise the templates do not print (fallback._SMALLEST).
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15).filter(
        lambda v: v == 0 or abs(v) >= 1e-9
    )
)
def test_every_printed_number_is_grounded_and_never_reads_as_zero(value: float) -> None:
    trend = TREND.model_copy(update={"first_value": value})
    report = report_of(trend)
    drafts = fallback_insights(report)
    _kept, dropped = ground(drafts, report)
    assert not dropped, [(d.text, v) for d, v in dropped]
    printed = format_number(value)
    assert (value == 0) == (printed.strip("-0.,") == "")


_TRICKY = st.sampled_from(
    ["5", "12", "1898", "2019-07", "4,200,000", "87%", "$", "k", "M", "bn", "x", "\u00d7", "five"]
) | st.sampled_from(
    ["half", "a third", "doubled", "times", "percent", "'", '"', "\u201c", " ", "-", ".", ","]
)
_LABEL = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=60
) | st.lists(_TRICKY | st.text(max_size=3), min_size=1, max_size=6).map("".join).filter(bool)
_VALUE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)


@settings(max_examples=300, deadline=None)
@given(
    segment=_LABEL,
    top=_LABEL,
    period=_LABEL,
    measure=_LABEL,
    dimension=_LABEL,
    value=_VALUE,
    share=st.floats(0, 1),
)
def test_any_labels_and_values_give_grounded_insights(
    segment: str, top: str, period: str, measure: str, dimension: str, value: float, share: float
) -> None:
    candidates = [
        SEGMENT.model_copy(
            update={
                "segment": segment,
                "measure": measure,
                "dimension": dimension,
                "rest_value": value,
            }
        ),
        CONCENTRATION.model_copy(update={"top": top, "top_share": share, "dimension": dimension}),
        LEVEL_SHIFT.model_copy(update={"period": period, "after": value, "measure": measure}),
    ]
    report = report_of(*candidates)
    drafts = fallback_insights(report)
    _kept, dropped = ground(drafts, report)
    assert not dropped, [(d.text, v) for d, v in dropped]


def test_a_measure_named_as_an_average_is_not_averaged_twice_and_one_value_is_singular() -> None:
    temp = PERIOD_CHANGE.model_copy(update={"measure": "avg_temp", "aggregation": "mean"})
    # The name keeps its case: the sentence is built not to start with it.
    assert fallback_insights(report_of(temp))[0].text.startswith(
        "In 2021-12, avg temp came to 1,850,"
    )
    one = OUTLIERS.model_copy(update={"count": 1})
    assert "1 value of unit price is outside" in fallback_insights(report_of(one))[0].text


@pytest.mark.parametrize(
    ("kind", "column", "count", "pct", "text"),
    [
        ("duplicates", None, 4, 0.33, "4 rows are exact duplicates of another row (0.3%)."),
        # a count is exact: never "2 million rows"
        (
            "duplicates",
            None,
            1_999_999,
            99.9,
            "1,999,999 rows are exact duplicates of another row (99.9%).",
        ),
        ("skippedRows", None, 2, None, "2 rows could not be read and were skipped."),
        ("constant", "product_name", None, None, "Column product name holds a single value."),
        ("highMissing", "discount", None, 42.5, "Column discount is often empty (42.5%)."),
        ("somethingNew", "x_y", None, None, "Column x y: something new."),
    ],
)
def test_quality_kinds_are_phrased(
    kind: str, column: str | None, count: int | None, pct: float | None, text: str
) -> None:
    note = QUALITY.model_copy(update={"kind": kind, "column": column, "count": count, "pct": pct})
    assert fallback_insights(report_of(note))[0].text == text


# The engine is adding these optional fields (issue 12); the fallback reads them when present.
def _text(candidate: Any, **extra: Any) -> str:
    (draft,) = fallback_insights(report_of(candidate, **extra))
    return draft.text


def test_column_names_keep_their_case_and_no_sentence_starts_with_one() -> None:
    life = SEGMENT.model_copy(update={"measure": "lifeExp", "dimension": "continent"})
    assert _text(life).startswith("Average lifeExp is highest in continent North:")
    said = SEGMENT.model_copy(update={"measure": "avg_temp"})
    assert _text(said).startswith("The highest avg temp is in region North:")
    gdp = LEVEL_SHIFT.model_copy(update={"measure": "gdpPercap"})
    assert _text(gdp).startswith("In 1898, gdpPercap dropped from")
    sepal = CORRELATION.model_copy(update={"measure": "Sepal.Length", "other": "petal_width"})
    assert _text(sepal).startswith("As Sepal Length rises, petal width tends to fall")


@pytest.mark.parametrize(
    ("dimension", "others"),
    [
        ("city", "the other cities"),
        ("clarity", "the other clarities"),
        ("class", "the other classes"),
        ("box", "the other boxes"),
        ("day", "the other days"),
        ("region", "the other regions"),
        ("Sex", "the other values of Sex"),
        ("Survived", "the other values of Survived"),
        ("sales", "the other values of sales"),  # may already be a plural
        ("store_id", "the other values of store id"),
        ("married", "the other values of married"),  # a participle
        ("cyl", "the other values of cyl"),  # abbreviations: no vowel, or no English ending
        ("drv", "the other values of drv"),
        ("agegp", "the other values of agegp"),
        ("result", "the other results"),
        ("month", "the other months"),
    ],
)
def test_a_dimension_is_pluralised_only_when_that_is_safe(dimension: str, others: str) -> None:
    text = _text(SEGMENT.model_copy(update={"dimension": dimension}))
    assert f"for {others} (" in text


@pytest.mark.parametrize(
    ("segment", "title"),
    [
        ("North", "North stands out on average price"),
        ("8", "region \u201c8\u201d stands out on average price"),
        ("yes", "region yes stands out on average price"),
        ("f", "region f stands out on average price"),
        ("55-64", "region 55-64 stands out on average price"),
        ("FALSE", "region FALSE stands out on average price"),
        # a month or a day names itself, short or not: "May" as "July"
        ("May", "May stands out on average price"),
        ("July", "July stands out on average price"),
        ("Fri", "Fri stands out on average price"),
    ],
)
def test_a_title_names_the_column_of_a_code_or_a_number(segment: str, title: str) -> None:
    draft = phrase(SEGMENT.model_copy(update={"segment": segment}))
    assert draft is not None and draft.title == title


def test_a_dimension_of_two_values_names_the_other_one() -> None:
    two = SEGMENT.model_copy(update={"dimension": "law", "segment": "0", "rest_segment": "1"})
    draft = phrase(two)
    assert draft is not None
    assert draft.text == (
        "Average price is highest in law \u201c0\u201d: 12.40 against 8.10 "
        "for law \u201c1\u201d (1.5\u00d7)."
    )


def test_a_ratio_is_printed_only_when_it_says_something() -> None:
    close = SEGMENT.model_copy(update={"segment_value": 64.04, "rest_value": 61.68, "ratio": 1.04})
    assert _text(close) == (
        "Average price is highest in region North: 64.04 against 61.68 for the other regions."
    )
    low = SEGMENT.model_copy(update={"direction": "low", "ratio": 0.3})
    assert "\u00d7" not in _text(low)
    # With the engine's change_pct, a lower segment says by how much (23.4% -> "23%").
    lower = SegmentInsight(
        **{**low.model_dump(), "ratio": 0.77, "change_pct": -23.4, "segment_value": 6.2}
    )
    draft = phrase(lower)
    assert draft is not None and draft.text.endswith("for the other regions (23% lower).")
    assert "candidates.segment.price.region.changePct" in draft.evidence
    higher = SegmentInsight(**{**SEGMENT.model_dump(), "ratio": 1.1, "change_pct": 10.2})
    higher_draft = phrase(higher)
    assert higher_draft is not None and higher_draft.text.endswith("(10% higher).")


def test_a_measure_named_total_is_not_a_total_of_a_total() -> None:
    bill = CONCENTRATION.model_copy(update={"measure": "total_bill", "dimension": "day"})
    assert _text(bill).startswith("West carries 41.2% of all total bill (by day); the top 3 days")


def test_a_pure_series_is_not_called_an_average_and_day_periods_take_on() -> None:
    flow = TREND.model_copy(
        update={
            "measure": "flow",
            "aggregation": "mean",
            "granularity": "year",
            "direction": "down",
            "first_period": "1871",
            "last_period": "1970",
            "first_value": 1120,
            "last_value": 740,
            "change_pct": -33.93,
            "periods": 100,
        }
    )
    axis = {"name": "year", "granularity": "year", "periods": 100}
    pure = report_of(flow, timeAxis=axis, dataset={"rows": 100, "columns": 2})
    (draft,) = fallback_insights(pure)
    assert draft.text == "Over 100 years, flow fell from 1,120 in 1871 to 740 in 1970 (-33.9%)."
    assert not ground([draft], pure)[1]
    panel = report_of(flow, timeAxis=axis, dataset={"rows": 1200, "columns": 3})
    assert fallback_insights(panel)[0].text.startswith("Average flow per year fell over 100 years")
    # One row per day, a monthly candidate: a month still sums many rows.
    days = {"name": "date", "granularity": "day", "periods": 1200}
    monthly = report_of(TREND, timeAxis=days, dataset={"rows": 1200, "columns": 3})
    assert fallback_insights(monthly)[0].text.startswith("Total sales per month rose")
    daily = TREND.model_copy(
        update={"granularity": "day", "first_period": "2013-01-01", "last_period": "2013-10-01"}
    )
    assert "from 1,200 on 2013-01-01 to 1,850 on 2013-10-01" in _text(daily)
    record = RECORD.model_copy(update={"granularity": "day", "period": "2013-10-01"})
    assert _text(record).startswith("On 2013-10-01, total sales reached a record high")


def test_outliers_name_only_the_side_that_has_them() -> None:
    fields = {
        **OUTLIERS.model_dump(exclude={"low_count", "high_count"}),
        "lower_fence": -12.5,
    }
    above = phrase(OutliersInsight(**fields, low_count=0, high_count=12))
    assert above is not None
    assert above.text == "12 values of unit price are above 40 (1.0% of its values)."
    below = phrase(OutliersInsight(**fields, low_count=12, high_count=0))
    assert below is not None and "are below -12.50 (" in below.text
    both = phrase(OutliersInsight(**fields, low_count=4, high_count=8))
    assert both is not None and "outside the usual range of -12.50 to 40" in both.text


def test_large_numbers_printed_with_scale_words_are_grounded() -> None:
    big = CONCENTRATION.model_copy(update={"top_value": 16_950_402.5})
    segment = SEGMENT.model_copy(update={"segment_value": 10_108_543_400, "rest_value": 1.2e12})
    report = report_of(segment, big)
    (draft, _concentration) = fallback_insights(report)
    assert "10.11 billion against 1.2 trillion" in draft.text
    assert not ground(fallback_insights(report), report)[1]
    wrong = InsightDraft("x", "North: 10.21 billion.", [f"candidates.{SEGMENT.key}"])
    assert ground([wrong], report)[1]


def test_a_yes_no_measure_is_phrased_as_the_share_that_says_yes() -> None:
    smoking = SegmentInsight(
        key="segment.smoker.day",
        score=0.7,
        measure="smoker",
        dimension="day",
        aggregation="mean",
        segment="Fri",
        direction="high",
        segment_value=0.7895,
        rest_value=0.3468,
        ratio=2.276,
        segment_rows=19,
        rest_rows=225,
        effect_size=0.9,
        measure_label="Yes",
    )
    report = report_of(smoking)
    (draft,) = fallback_insights(report)
    assert draft.text == (
        "The share of smoker Yes is highest in day Fri: 79.0% against 34.7% for the other days."
    )
    assert not ground([draft], report)[1]


def test_a_season_of_a_total_says_per_period_and_an_average_does_not() -> None:
    weekly = SEASON.model_copy(
        update={
            "aggregation": "sum",
            "granularity": "day",
            "cycle": "week",
            "peak": "Monday",
            "trough": "Saturday",
            "measure": "distance",
            "peak_value": 1_010_000.0,
            "trough_value": 845_092.0,
        }
    )
    (draft,) = fallback_insights(report_of(weekly))
    assert draft.text == (
        "A weekly pattern in total distance: highest on Monday, lowest on Saturday "
        "(1.01 million a day against 845,092, on average)."
    )
    hourly = weekly.model_copy(
        update={"granularity": "hour", "cycle": "day", "peak": "15:00", "trough": "05:00"}
    )
    (draft,) = fallback_insights(report_of(hourly))
    assert draft.title == "Daily cycle in distance"
    assert draft.text == (
        "A daily cycle in total distance: highest at 15:00, lowest at 05:00 "
        "(1.01 million an hour against 845,092, on average)."
    )
    averaged = SEASON.model_copy(update={"aggregation": "mean", "measure": "temp max"})
    (draft,) = fallback_insights(report_of(averaged))
    assert draft.text.startswith("A yearly season in average temp max: highest in July")
    assert draft.text.endswith("(476.2 against 330.1).")
    for candidate in (weekly, hourly, averaged):
        drafts = fallback_insights(report_of(candidate))
        kept, dropped = ground(drafts, report_of(candidate))
        assert len(kept) == 1 and not dropped  # every number printed is a field of the candidate


def test_a_record_or_change_too_small_to_print_is_not_said() -> None:
    record = RECORD.model_copy(update={"value": 1022.4, "previous_record": 1022.1})
    change = PERIOD_CHANGE.model_copy(
        update={"value": 1022.4, "previous_value": 1022.3, "change": 0.1, "change_pct": 0.01}
    )
    assert fallback_insights(report_of(record, change)) == []


def test_titles_that_would_read_alike_name_their_dimension() -> None:
    by_eye = CONCENTRATION.model_copy(
        update={"key": "concentration.sales.channel", "dimension": "channel", "score": 0.8}
    )
    titles = [d.title for d in fallback_insights(report_of(CONCENTRATION, by_eye))]
    assert titles == ["region West leads sales", "channel West leads sales"]
    (alone,) = fallback_insights(report_of(CONCENTRATION))
    assert alone.title == "West leads sales"


def test_a_correlated_group_is_one_finding_that_names_its_other_members() -> None:
    group = CORRELATION.model_copy(update={"also": ["discount", "returns", "visits", "clicks"]})
    (draft,) = fallback_insights(report_of(group))
    assert draft.title == "price, quantity and more move together"  # names keep their case
    assert draft.text == (
        "As price rises, quantity tends to fall (r = -0.87 over 1,200 rows); an association, "
        "not a cause. discount, returns, visits and others are strongly associated with them too."
    )
    assert f"candidates.{group.key}.also" in draft.evidence
