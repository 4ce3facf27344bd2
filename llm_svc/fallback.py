"""Deterministic insights: each typed candidate of the KPI report phrased by a template.

Number rules (every number printed is one field of the candidate it phrases):
- `format_number`: integers as such with `,` thousands; others with two decimals; more decimals
  only for values below 0.01 so nothing non-zero reads as zero.
- `format_share`: a 0-1 share (`topShare`, `topKShare`) as a percentage with one decimal.
- `format_pct`: a value that already is a percentage (`changePct`, `pct`) with one decimal, and
  its sign for a change.
- `format_ratio`: a ratio with one decimal and the multiplication sign (U+00D7); a
  correlation `r` with two decimals.
Data values (segment and period labels, column names) are sanitised (control characters dropped,
whitespace collapsed, at most 40 characters) and printed as is when they read as a name, else in
double quotes (`report_view.display`). Column names are printed as words (`unit_price` ->
`unit price`). Candidates come ranked; the top `limit` business findings come first, then at most
MAX_TRAILING_NOTES outlier and data-quality notes. A candidate of an unknown type is skipped; a
report without candidates (an older schema) gets its size and quality notes only. Never raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from datapilot_runtime.report.insights import (
    TRAILING_TYPES,
    Aggregation,
    ConcentrationInsight,
    CorrelationInsight,
    Insight,
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
from llm_svc.report_view import alias_of, candidates_of, display, humanise

INSIGHTS_MAX = 8
MAX_TRAILING_NOTES = 3
_SMALLEST = 1e-9
_CYCLES = {"year": "yearly", "week": "weekly", "day": "daily"}
_AVERAGE_WORDS = frozenset({"avg", "average", "mean", "median"})
_SCALE_WORDS = frozenset({"thousand", "million", "billion", "percent", "times", "fold"})


@dataclass(frozen=True)
class InsightDraft:
    """An insight before it is put on the wire; `type`/`key`/`score` name the candidate."""

    title: str
    text: str
    evidence: list[str] = field(default_factory=list)
    severity: str = "info"
    type: str = ""
    key: str = ""
    score: float = 0.0


def format_number(value: float) -> str:
    """The documented rounding: integers as such, others with two decimals, `,` thousands."""
    if float(value).is_integer():
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 0.01:
        return f"{value:,.2f}"
    decimals = min(12, 1 - math.floor(math.log10(magnitude)))
    return f"{value:,.{decimals}f}"


def format_share(share: float) -> str:
    """A 0-1 share as a percentage with one decimal (more for a non-zero share below 0.05%)."""
    percent = share * 100
    if 0 < abs(percent) < 0.05:
        return f"{format_number(percent)}%"
    return f"{percent:.1f}%"


def format_pct(percent: float, *, signed: bool = False) -> str:
    """A value that is already a percentage, one decimal (more below 0.05); `+` when signed."""
    text = format_number(percent) if 0 < abs(percent) < 0.05 else f"{percent:,.1f}"
    return ("+" + text if signed and percent > 0 else text) + "%"


def format_ratio(ratio: float) -> str:
    """A ratio with one decimal and a multiplication sign (two decimals below 0.1)."""
    return f"{ratio:.2f}\u00d7" if abs(ratio) < 0.1 else f"{ratio:,.1f}\u00d7"


def _capital(text: str) -> str:
    first = text[:1].upper()
    # Only a one-to-one case change ("ß" -> "SS" is not): names must stay recognisable.
    return (first if len(first) == 1 else text[:1]) + text[1:]


def _column(name: str | None, default: str) -> str:
    return display(humanise(name)) if name else default


def _plural(noun: str) -> str:
    """The plural of a dimension ("sales regions"), or "values of <name>" for any other name.

    Never a bare name right after a number: "the top 3 k A" would read as 3,000.
    """
    words = noun.split()
    plain = all(w.isalpha() for w in words) and len(words[0]) >= 3 if words else False
    if not plain or words[0].lower() in _SCALE_WORDS:
        return f"values of {noun}"
    return noun if noun.endswith("s") else noun + "s"


def _usable(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) and not 0 < abs(v) < _SMALLEST for v in values)


def _measure_phrase(aggregation: Aggregation, measure: str) -> str:
    """The measure as aggregated: average price, total sales, the number of rows, a level."""
    if aggregation == "mean":
        # "avg temp", "median income": the name already says how it is aggregated.
        said = measure.split()[0].lower() in _AVERAGE_WORDS if measure else False
        return measure if said else f"average {measure}"
    if aggregation == "sum":
        return f"total {measure}"
    if aggregation == "count":
        return "the number of rows"
    return measure


class _Phrase:
    """Collects the evidence key of every field a template prints."""

    def __init__(self, candidate: Insight) -> None:
        self.candidate = candidate
        self.evidence: list[str] = []

    def cite(self, field_name: str) -> None:
        key = f"candidates.{self.candidate.key}.{alias_of(self.candidate, field_name)}"
        if key not in self.evidence:
            self.evidence.append(key)

    def number(self, field_name: str, formatter: Callable[[float], str] = format_number) -> str:
        self.cite(field_name)
        value = getattr(self.candidate, field_name)
        return formatter(float(value))


def _segment(c: SegmentInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.segment_value, c.rest_value):
        return None
    measure = _measure_phrase(c.aggregation, _column(c.measure, "the value"))
    dimension = _column(c.dimension, "segment")
    label = display(c.segment)
    extreme = "highest" if c.direction == "high" else "lowest"
    text = (
        f"{_capital(measure)} is {extreme} in {dimension} {label}: "
        f"{p.number('segment_value')} against {p.number('rest_value')} "
        f"for the other {_plural(dimension)}"
    )
    if c.ratio is not None and _usable(c.ratio) and c.ratio > 0:
        text += f" ({p.number('ratio', format_ratio)})"
    title = f"{_capital(dimension)} {label} stands out on {measure}"
    return title, text + "."


def _concentration(c: ConcentrationInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.top_share) or not 0 <= c.top_share <= 1:
        return None
    measure = _column(c.measure, "the total")
    dimension = _column(c.dimension, "value")
    text = (
        f"{_capital(dimension)} {display(c.top)} carries "
        f"{p.number('top_share', format_share)} of total {measure}"
    )
    if c.top_k > 1 and _usable(c.top_k_share) and 0 <= c.top_k_share <= 1:
        text += (
            f"; the top {p.number('top_k')} {_plural(dimension)} hold "
            f"{p.number('top_k_share', format_share)}"
        )
    return f"{display(c.top)} leads {measure}", text + "."


def _trend(c: TrendInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.first_value, c.last_value):
        return None
    measure = _measure_phrase(c.aggregation, _column(c.measure, "the value"))
    moved = "rose" if c.direction == "up" else "fell"
    text = (
        f"{_capital(measure)} per {c.granularity} {moved} over {p.number('periods')} "
        f"{_plural(c.granularity)}, from {p.number('first_value')} in {display(c.first_period)} "
        f"to {p.number('last_value')} in {display(c.last_period)}"
    )
    if c.change_pct is not None and _usable(c.change_pct):
        text += f" ({p.number('change_pct', lambda v: format_pct(v, signed=True))})"
    title = f"{_capital(measure)} trending {c.direction}"
    return title, text + "."


def _season(c: SeasonInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.peak_value, c.trough_value):
        return None
    measure = _column(c.measure, "the value")
    cycle = _CYCLES.get(c.cycle, c.cycle)
    plural = measure.endswith("s") and not measure.endswith("ss")
    follow, they, peak, are = (
        ("follow", "they", "peak", "are") if plural else ("follows", "it", "peaks", "is")
    )
    text = (
        f"{_capital(measure)} {follow} a {cycle} season: {they} {peak} in {display(c.peak)} and "
        f"{are} lowest in {display(c.trough)} ({p.number('peak_value')} against "
        f"{p.number('trough_value')})"
    )
    return f"{_capital(cycle)} season in {measure}", text + "."


def _level_shift(c: LevelShiftInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.before, c.after) or c.before == c.after:
        return None
    measure = _column(c.measure, "the value")
    moved = "dropped" if c.after < c.before else "rose"
    level = "a mean of" if c.aggregation == "mean" else "a level of"
    period = display(c.period)
    text = (
        f"{_capital(measure)} {moved} in {period}: from {level} {p.number('before')} before "
        f"to {p.number('after')} after"
    )
    if c.change_pct is not None and _usable(c.change_pct):
        text += f" ({p.number('change_pct', lambda v: format_pct(v, signed=True))})"
    return f"{_capital(measure)} shifted in {period}", text + "."


def _period_change(c: PeriodChangeInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.value, c.previous_value, c.change):
        return None
    measure = _measure_phrase(c.aggregation, _column(c.measure, "the value"))
    period, previous = display(c.period), display(c.previous_period)
    against = "a year before" if c.comparison == "year_over_year" else "the period before"
    direction = "up" if c.change > 0 else "down" if c.change < 0 else "unchanged"
    if direction == "unchanged":
        change = "unchanged"
    elif c.change_pct is not None and _usable(c.change_pct):
        change = f"{direction} {p.number('change_pct', lambda v: format_pct(abs(v)))}"
    else:
        change = f"{direction} {p.number('change', lambda v: format_number(abs(v)))}"
    text = (
        f"{_capital(measure)} in {period}: {p.number('value')}, {change} on {previous} "
        f"({against}: {p.number('previous_value')})"
    )
    return f"{_capital(measure)} in {period}", text + "."


def _unusual(c: UnusualInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.value, c.expected, c.z_score):
        return None
    measure = _measure_phrase(c.aggregation, _column(c.measure, "the value"))
    period = display(c.period)
    side = "above" if c.direction == "high" else "below"
    text = (
        f"Unusually {c.direction} {measure} in {period}: {p.number('value')}, "
        f"{p.number('z_score', lambda v: f'{abs(v):.1f}')} standard deviations {side} the "
        f"expected {p.number('expected')}"
    )
    return f"Unusual {measure} in {period}", text + "."


def _record(c: RecordInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.value, c.previous_record):
        return None
    measure = _measure_phrase(c.aggregation, _column(c.measure, "the value"))
    period = display(c.period)
    side = "above" if c.direction == "high" else "below"
    text = (
        f"{_capital(measure)} reached a record {c.direction} in {period}: {p.number('value')}, "
        f"{side} the previous record of {p.number('previous_record')} in "
        f"{display(c.previous_record_period)}"
    )
    return f"Record {c.direction} {measure} in {period}", text + "."


def _correlation(c: CorrelationInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.r) or not -1 <= c.r <= 1:
        return None
    first, second = _column(c.measure, "one measure"), _column(c.other, "another")
    together = "move together" if c.r > 0 else "move in opposite directions"
    text = (
        f"{_capital(first)} and {second} {together} "
        f"(r = {p.number('r', lambda v: f'{v:.2f}')} over {p.number('n')} rows); "
        "an association, not a cause"
    )
    return f"{_capital(first)} and {second} {together}", text + "."


def _outliers(c: OutliersInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.lower_fence, c.upper_fence, c.pct):
        return None
    measure = _column(c.measure, "a measure")
    text = (
        f"{_capital(measure)} has {p.number('count')} value{'' if c.count == 1 else 's'} "
        "outside its usual range of "
        f"{p.number('lower_fence')} to {p.number('upper_fence')} "
        f"({p.number('pct', format_pct)} of its values)"
    )
    return f"Outliers in {measure}", text + "."


# What the engine's quality kinds (the report's alert types) say about a column.
_COLUMN_NOTES = {
    "empty": "has no values",
    "highMissing": "is often empty",
    "constant": "holds a single value",
    "highCardinality": "has nearly one distinct value per row (an identifier or free text)",
    "skewed": "is strongly skewed (a few large values weigh on its mean)",
    "numbersAsText": "holds numbers stored as text",
    "mixedDateFormats": "mixes date formats",
}


def _quality(c: QualityInsight, p: _Phrase) -> tuple[str, str] | None:
    share = f" ({p.number('pct', format_pct)})" if c.pct is not None and _usable(c.pct) else ""
    if c.kind == "duplicates" and c.count is not None:
        text = f"{p.number('count')} rows are exact duplicates of another row{share}"
        return "Duplicate rows", text + "."
    if c.kind == "skippedRows" and c.count is not None:
        return "Skipped rows", f"{p.number('count')} rows could not be read and were skipped."
    kind = humanise(c.kind).lower() or "issue"
    if c.column and c.kind in _COLUMN_NOTES:
        column = _column(c.column, "")
        text = f"{_capital(column)} {_COLUMN_NOTES[c.kind]}{share}"
        return f"Data quality: {column}", text + "."
    where = f"{_capital(_column(c.column, ''))}: " if c.column else ""
    count = f"{p.number('count')} " if c.count is not None else ""
    return f"Data quality: {display(kind)}", _capital(f"{where}{count}{display(kind)}{share}.")


_TEMPLATES: dict[type[Any], Callable[[Any, _Phrase], tuple[str, str] | None]] = {
    SegmentInsight: _segment,
    ConcentrationInsight: _concentration,
    TrendInsight: _trend,
    SeasonInsight: _season,
    LevelShiftInsight: _level_shift,
    PeriodChangeInsight: _period_change,
    UnusualInsight: _unusual,
    RecordInsight: _record,
    CorrelationInsight: _correlation,
    OutliersInsight: _outliers,
    QualityInsight: _quality,
}


def phrase(candidate: Insight) -> InsightDraft | None:
    """One candidate as an analyst's sentence with the evidence of its numbers, or None."""
    template = _TEMPLATES.get(type(candidate))
    if template is None:
        return None
    words = _Phrase(candidate)
    phrased = template(candidate, words)
    if phrased is None:
        return None
    title, text = phrased
    warning = candidate.polarity == "negative" or (
        isinstance(candidate, QualityInsight) and candidate.pct is not None and candidate.pct >= 5
    )
    return InsightDraft(
        title,
        text,
        words.evidence or [f"candidates.{candidate.key}"],
        "warning" if warning else "info",
        str(candidate.type),
        candidate.key,
        candidate.score,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and not 0 < abs(number) < _SMALLEST else None


def _dataset_notes(report: dict[str, Any]) -> list[InsightDraft]:
    """An older report (no candidates): its size, empty cells and duplicate rows, nothing more."""
    dataset = report.get("dataset")
    if not isinstance(dataset, dict):
        return []
    drafts: list[InsightDraft] = []
    rows, columns = _number(dataset.get("rows")), _number(dataset.get("columns"))
    if rows is not None and columns is not None:
        drafts.append(
            InsightDraft(
                "Dataset size",
                f"The file has {format_number(rows)} rows and {format_number(columns)} columns.",
                ["dataset.rows", "dataset.columns"],
            )
        )
    missing, pct = _number(dataset.get("missingCells")), _number(dataset.get("missingCellsPct"))
    if missing:
        text = f"{format_number(missing)} cells are empty"
        evidence = ["dataset.missingCells"]
        if pct is not None:
            text += f" ({format_pct(pct)} of all cells)"
            evidence.append("dataset.missingCellsPct")
        warning = pct is not None and pct >= 5
        drafts.append(
            InsightDraft("Missing data", text + ".", evidence, "warning" if warning else "info")
        )
    duplicates = _number(dataset.get("duplicateRows"))
    if duplicates:
        drafts.append(
            InsightDraft(
                "Duplicate rows",
                f"{format_number(duplicates)} rows are exact duplicates of another row.",
                ["dataset.duplicateRows"],
                "warning",
            )
        )
    return drafts


def fallback_insights(report: Any, limit: int = INSIGHTS_MAX) -> list[InsightDraft]:
    """The top `limit` findings phrased, then outlier and quality notes; says less, never raises."""
    if not isinstance(report, dict):
        return []
    if not isinstance(report.get("candidates"), list):
        return _dataset_notes(report)
    findings: list[InsightDraft] = []
    notes: list[InsightDraft] = []
    for candidate in candidates_of(report):
        trailing = candidate.type in TRAILING_TYPES
        bucket, room = (notes, MAX_TRAILING_NOTES) if trailing else (findings, limit)
        if len(bucket) >= room:
            continue
        draft = phrase(candidate)
        if draft is not None:
            bucket.append(draft)
    return findings + notes
