"""Typed model of result.json and of the KPI report in it; docs/result.schema.json comes from it.

Unknown keys are refused everywhere except inside chart specs (Vega-Lite, loosely typed): a key
the engine or the worker adds must be added here in the same change, and `make schema`
regenerates the published schema (a test fails while it is stale). A
client that wants to keep working across versions should ignore keys it does not know; the
schema itself is exact for the `schemaVersion` it describes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from datapilot_runtime.report.insights import (
    Aggregation,
    ColumnRole,
    Insight,
    InsightType,
    Role,
    WireModel,
)

ColumnType = Literal[
    "numeric", "id", "datetime", "boolean", "categorical", "text", "constant", "empty"
]
Granularity = Literal["second", "minute", "hour", "day", "week", "month", "quarter", "year"]
Severity = Literal["info", "warning", "critical"]
JsonObject = dict[str, Any]


# --------------------------------------------------------------------------- dataset


class ColumnTypeCounts(WireModel):
    """How many columns have each type."""

    numeric: int
    id: int
    datetime: int
    boolean: int
    categorical: int
    text: int
    constant: int
    empty: int


class ReshapedFrom(WireModel):
    """The long table as read: one row per key and `dimension` label, numbers in `measure`."""

    rows: int = Field(ge=0)
    columns: int = Field(ge=0)
    dimension: str
    measure: str
    dropped: list[str] = Field(description="Columns left out: attributes of a label, other values")


class DatasetFacts(WireModel):
    """Whole-table facts."""

    format: Literal["csv", "xlsx", "json", "parquet"]
    rows: int = Field(ge=0)
    columns: int = Field(ge=0)
    missing_cells: int = Field(ge=0)
    missing_cells_pct: float
    duplicate_rows: int = Field(ge=0)
    duplicate_rows_pct: float
    memory_bytes: int = Field(ge=0)
    skipped_rows: int = Field(ge=0)
    header_row: bool
    column_types: ColumnTypeCounts
    reshaped_from: ReshapedFrom | None = Field(
        default=None, description="Set when a long table was analysed wide (one column per label)"
    )


# --------------------------------------------------------------------------- columns


class OutlierFacts(WireModel):
    """Tukey fences and what lies beyond them."""

    count: int = Field(ge=0)
    pct: float
    lower_fence: float | None
    upper_fence: float | None


class NumericStats(WireModel):
    """A numeric column's distribution; only the first six keys when it has no finite value."""

    sum: float | None
    mean: float | None
    median: float | None
    min: float | None
    max: float | None
    std: float | None
    count: int | None = Field(default=None, ge=0)
    p5: float | None = None
    p25: float | None = None
    p75: float | None = None
    p95: float | None = None
    zeros_pct: float | None = None
    negatives_pct: float | None = None
    skew: float | None = None
    outliers: OutlierFacts | None = None


class TopValue(WireModel):
    """One of the most frequent values (a data value: untrusted text)."""

    value: str
    count: int = Field(ge=0)
    share: float = Field(ge=0, le=1)


class Concentration(WireModel):
    """Share of the most frequent value; how many values reach 80 % of the rows."""

    top1_share: float = Field(ge=0, le=1)
    values_for80_pct: int = Field(ge=0, alias="valuesFor80Pct")


class DatetimeStats(WireModel):
    """Range and typical spacing of a datetime column."""

    min: str | None
    max: str | None
    span_days: float | None
    granularity: Granularity | None
    unparsed: int = Field(ge=0)


class TextStats(WireModel):
    """Free text."""

    mean_length: float


class NumbersAsText(WireModel):
    """Numbers stored as text, converted."""

    converted: int = Field(ge=0)
    unparsed: int = Field(ge=0)


class ValueRange(WireModel):
    """Smallest and largest number of a numeric column that is not a measure (a year, a code)."""

    min: float | None
    max: float | None


class ColumnReport(WireModel):
    """One column: base facts, then the facts of its type (and, from 3.0, of its role)."""

    name: str
    type: ColumnType
    role: Role | None = Field(default=None, description="From 3.0: the role (see kpis.roles)")
    missing: int = Field(ge=0)
    missing_pct: float
    distinct: int = Field(ge=0)
    distinct_pct: float
    numeric: NumericStats | None = None
    top_values: list[TopValue] | None = None
    other_count: int | None = Field(default=None, ge=0)
    other_share: float | None = None
    concentration: Concentration | None = None
    range: ValueRange | None = None
    datetime: DatetimeStats | None = None
    text: TextStats | None = None
    numbers_as_text: NumbersAsText | None = None
    mixed_date_formats: Literal[True] | None = None


# --------------------------------------------------------------------------- time series


class SeriesPoint(WireModel):
    """One period: its start date and its aggregated value."""

    start: str
    value: float | None


class Trend(WireModel):
    """Least-squares trend over the complete periods."""

    direction: Literal["up", "down", "flat"]
    slope_per_period: float | None
    r2: float
    change_over_window_pct: float | None
    periods_used: int = Field(ge=0)


class PeriodChange(WireModel):
    """A period against an earlier one (the previous, or the same one a year before)."""

    period: str
    value: float | None
    previous_period: str
    previous_value: float | None
    change: float | None
    change_pct: float | None


class UnusualLast(WireModel):
    """The last complete value against the periods before it."""

    value: float | None
    window_periods: int = Field(ge=0)
    mean: float | None
    std: float | None
    z_score: float | None
    is_unusual: bool
    direction: Literal["high", "low", "normal"]


class Driver(WireModel):
    """How one value of a dimension moved between the last two periods."""

    value: str
    previous: float | None
    current: float | None
    change: float | None
    share_of_change: float | None


class Drivers(WireModel):
    """Values of a dimension that moved with the total change, and against it."""

    total_change: float | None
    contributors: list[Driver]
    detractors: list[Driver]


class TimeSeries(WireModel):
    """One (datetime column, measure) series."""

    key: str
    datetime: str
    measure: str | None
    aggregation: Aggregation
    granularity: Granularity
    periods: int = Field(ge=0)
    first_period_complete: bool
    last_period_complete: bool
    points: list[SeriesPoint]
    trend: Trend | None
    last_change: PeriodChange | None
    year_over_year: PeriodChange | None
    unusual_last: UnusualLast | None
    drivers: dict[str, Drivers] = Field(description="By dimension name")


# --------------------------------------------------------------------------- correlations, alerts


class Correlation(WireModel):
    """Two measures that move together (association, never cause)."""

    key: str
    a: str
    b: str
    r: float = Field(ge=-1, le=1)
    n: int = Field(ge=0)
    strength: Literal["strong", "very strong"]
    direction: Literal["positive", "negative"]
    statement: str


class Alert(WireModel):
    """A data-quality finding."""

    key: str
    type: str
    severity: Literal["info", "warning"]
    column: str | None
    message: str
    evidence: list[str]


# --------------------------------------------------------------------------- the KPI report


class TimeAxis(WireModel):
    """The table's time axis: a datetime column, or calendar-part columns combined."""

    name: str
    columns: list[str] = Field(description="The columns it is built from")
    granularity: str
    periods: int = Field(ge=0)
    start: str | None
    end: str | None


class KpiReport(WireModel):
    """`kpis`: the engine's report (docs/kpi-report.md); also the Analyze RPC's answer.

    `roles`, `timeAxis`, `candidates` and `roleWarnings` come with the engine of schema 3.0;
    they are optional here so that a 2.0 report still validates.
    """

    schema_version: str = Field(pattern=r"^\d+\.\d+$")
    dataset: DatasetFacts
    columns: list[ColumnReport]
    roles: list[ColumnRole] = Field(
        default_factory=list, description="The role of every column, with its reason"
    )
    role_warnings: list[str] = Field(
        default_factory=list, description="Overrides that could not apply (unknown columns, ...)"
    )
    time_axis: TimeAxis | None = Field(default=None, description="None when the data have none")
    time_series: list[TimeSeries]
    correlations: list[Correlation]
    alerts: list[Alert]
    candidates: list[Insight] = Field(
        default_factory=list, description="The ranked typed insights (deterministic)"
    )


# --------------------------------------------------------------------------- result.json


class FileFacts(WireModel):
    """The uploaded file as stored."""

    filename: str
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ResultInsight(WireModel):
    """An insight as the reader sees it (phrased by the LLM or the fallback)."""

    title: str
    text: str
    evidence: list[str] = Field(description="Evidence keys into kpis (docs/kpi-report.md)")
    severity: Severity
    source: Literal["llm", "fallback"]
    type: InsightType | None = Field(default=None, description="The candidate's type")
    key: str | None = Field(default=None, description="The candidate's key")
    score: float | None = Field(default=None, ge=0, le=1, description="The candidate's score")


class ResultDocument(WireModel):
    """`result.json`: what a completed job publishes."""

    model_config = ConfigDict(title="DataPilot result.json")

    job_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    schema_version: str = Field(pattern=r"^\d+\.\d+$")
    file: FileFacts
    kpis: KpiReport
    charts: list[JsonObject] = Field(description="Vega-Lite v5 specs (loosely typed)")
    insights: list[ResultInsight]
    insights_source: Literal["llm", "fallback", "mixed"]
    model: str
