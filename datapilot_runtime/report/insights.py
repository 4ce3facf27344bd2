"""Typed insight candidates: what the engine found, with its numbers, evidence and score.

The engine builds these; the fallback phrases them with templates; grounding accepts an LLM
sentence only when every number in it is one of the candidates' numbers. Fields that hold data
values (segment labels, period labels, column names) are strings, never numbers: they come from
the uploaded file, are untrusted, and are never a source of numbers.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class InsightType(StrEnum):
    """The kinds of finding, in no particular order (ranking is by score)."""

    SEGMENT = "segment"
    CONCENTRATION = "concentration"
    TREND = "trend"
    SEASON = "season"
    LEVEL_SHIFT = "level_shift"
    PERIOD_CHANGE = "period_change"
    UNUSUAL = "unusual"
    RECORD = "record"
    CORRELATION = "correlation"
    OUTLIERS = "outliers"
    QUALITY = "quality"


#: Business findings rank before these, whatever their score.
TRAILING_TYPES = frozenset({InsightType.OUTLIERS, InsightType.QUALITY})


class Role(StrEnum):
    """The role of a column, which decides what may be computed from it."""

    IDENTIFIER = "identifier"
    DIMENSION = "dimension"
    TIME = "time"
    CALENDAR = "calendar"
    CLOCK = "clock"
    COORDINATE = "coordinate"
    ADDITIVE = "additive"
    NON_ADDITIVE = "non_additive"
    STOCK = "stock"
    TEXT = "text"
    IGNORE = "ignore"


#: Roles an uploader may name in `options.roles`; `measure` means "a measure, additivity inferred".
OVERRIDE_ROLES = frozenset(
    {"identifier", "dimension", "time", "calendar", "clock", "coordinate", "measure"}
    | {"additive", "non_additive", "stock", "ignore"}
)

MEASURE_ROLES = frozenset({Role.ADDITIVE, Role.NON_ADDITIVE, Role.STOCK})

Aggregation = Literal["sum", "mean", "last", "count"]
Polarity = Literal["positive", "negative", "neutral"]
Direction = Literal["up", "down", "high", "low"]


class WireModel(BaseModel):
    """camelCase on the wire (as the rest of result.json), snake_case in Python; frozen."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )


class ColumnRole(WireModel):
    """The role the engine gave a column, and why (or that the uploader chose it)."""

    name: str
    role: Role
    reason: str
    overridden: bool = False


class _InsightBase(WireModel):
    key: str = Field(description="Stable id, also the evidence-key prefix: insights.<key>")
    score: float = Field(ge=0, le=1, description="Rank score; the formula is documented per type")
    measure: str | None = None
    dimension: str | None = None
    polarity: Polarity | None = None
    evidence: list[str] = Field(default_factory=list)


class SegmentInsight(_InsightBase):
    """One segment of a dimension stands out on a measure against the rest of the rows."""

    type: Literal[InsightType.SEGMENT] = InsightType.SEGMENT
    aggregation: Aggregation
    segment: str
    direction: Literal["high", "low"]
    segment_value: float
    rest_value: float
    ratio: float | None
    segment_rows: int
    rest_rows: int
    effect_size: float
    change_pct: float | None = Field(
        default=None, description="(segment value / rest value - 1) x 100, when both are positive"
    )
    measure_label: str | None = Field(
        default=None,
        description="For a yes/no measure (its mean is a share): the value counted as yes",
    )
    rest_segment: str | None = Field(
        default=None,
        description="The dimension's only other value, when it has two: the rest is that value",
    )


class ConcentrationInsight(_InsightBase):
    """A few values of a dimension hold most of an additive measure."""

    type: Literal[InsightType.CONCENTRATION] = InsightType.CONCENTRATION
    top: str
    top_value: float
    top_share: float
    top_rows_share: float | None = Field(
        default=None, description="The top value's share of the rows (0-1): the share it would hold"
    )
    top_k: int
    top_k_share: float
    segments: int
    values_for_80_pct: int


class TrendInsight(_InsightBase):
    """A measure moved steadily over the time axis."""

    type: Literal[InsightType.TREND] = InsightType.TREND
    time: str
    granularity: str
    aggregation: Aggregation
    direction: Literal["up", "down"]
    first_period: str
    last_period: str
    first_value: float
    last_value: float
    change_pct: float | None
    periods: int = Field(description="Periods with a value (the points the trend is fitted on)")
    span_periods: int | None = Field(
        default=None,
        description="Periods from the first to the last, gaps included, when some have no value",
    )
    significance: float = Field(description="1 - p-value of the Mann-Kendall test")
    trend_line: bool | None = Field(
        default=None,
        description="first_value and last_value (and change_pct) are the trend line's at the "
        "two ends, not the first and last periods' own values, which would misstate the change",
    )


class SeasonInsight(_InsightBase):
    """A series repeats a pattern within each cycle (months of a year, days of a week)."""

    type: Literal[InsightType.SEASON] = InsightType.SEASON
    time: str
    granularity: str
    aggregation: Aggregation | None = Field(
        default=None, description="How each period's value is made: peak and trough average it"
    )
    cycle: Literal["year", "week", "day"]
    peak: str
    trough: str
    peak_value: float
    trough_value: float
    strength: float
    cycles: int


class LevelShiftInsight(_InsightBase):
    """A series moved from one level to another at a point in time and stayed there."""

    type: Literal[InsightType.LEVEL_SHIFT] = InsightType.LEVEL_SHIFT
    time: str
    granularity: str
    aggregation: Aggregation
    period: str = Field(description="The first period at the new level")
    last_period_before: str = Field(description="The last period at the old level")
    before: float
    after: float
    change_pct: float | None


class PeriodChangeInsight(_InsightBase):
    """The last complete period against the one before it, or the same period a year before."""

    type: Literal[InsightType.PERIOD_CHANGE] = InsightType.PERIOD_CHANGE
    time: str
    granularity: str
    aggregation: Aggregation
    comparison: Literal["previous", "year_over_year"]
    period: str
    previous_period: str
    value: float
    previous_value: float
    change: float
    change_pct: float | None


class UnusualInsight(_InsightBase):
    """The last complete period lies far outside the recent range."""

    type: Literal[InsightType.UNUSUAL] = InsightType.UNUSUAL
    time: str
    granularity: str
    aggregation: Aggregation
    period: str
    value: float
    expected: float
    z_score: float
    direction: Literal["high", "low"]


class RecordInsight(_InsightBase):
    """The last complete period is the highest or lowest of the whole series."""

    type: Literal[InsightType.RECORD] = InsightType.RECORD
    time: str
    granularity: str
    aggregation: Aggregation
    period: str
    value: float
    previous_record: float
    previous_record_period: str
    direction: Literal["high", "low"]


class CorrelationInsight(_InsightBase):
    """Two measures move together (association, never cause)."""

    type: Literal[InsightType.CORRELATION] = InsightType.CORRELATION
    other: str
    r: float
    n: int
    also: list[str] = Field(
        default_factory=list,
        description="The other measures of its group (linked by pairs of |r| >= 0.9): the"
        " group's pairs are this one finding",
    )


class OutliersInsight(_InsightBase):
    """Values of a measure far outside its usual range (Tukey fences)."""

    type: Literal[InsightType.OUTLIERS] = InsightType.OUTLIERS
    count: int
    pct: float
    lower_fence: float = Field(description="The Tukey fence, clipped to the smallest value")
    upper_fence: float = Field(description="The Tukey fence, clipped to the largest value")
    low_count: int | None = Field(default=None, description="Outliers below, when known")
    high_count: int | None = Field(default=None, description="Outliers above, when known")


class QualityInsight(_InsightBase):
    """A data-quality note (missing values, duplicates, mixed formats, ...)."""

    type: Literal[InsightType.QUALITY] = InsightType.QUALITY
    kind: str
    column: str | None = None
    count: int | None = None
    pct: float | None = None


Insight = Annotated[
    SegmentInsight
    | ConcentrationInsight
    | TrendInsight
    | SeasonInsight
    | LevelShiftInsight
    | PeriodChangeInsight
    | UnusualInsight
    | RecordInsight
    | CorrelationInsight
    | OutliersInsight
    | QualityInsight,
    Field(discriminator="type"),
]

#: Fields that hold data values (from the file): never a source of numbers, always untrusted.
LABEL_FIELDS = frozenset(
    {"key", "measure", "dimension", "segment", "top", "time", "first_period", "last_period"}
    | {"peak", "trough", "period", "previous_period", "previous_record_period", "other"}
    | {"last_period_before"}
    | {"column", "evidence", "measure_label"}
)


class InsightList(WireModel):
    """The ranked candidates: business findings by score, then outliers and quality notes."""

    items: list[Insight]
