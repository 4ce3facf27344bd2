"""Deterministic insights: each typed candidate of the KPI report phrased by a template.

Number rules (every number printed is one field of the candidate it phrases):
- `format_number`: |x| >= 1e6 with a scale word and at most two decimals, trailing zeros
  dropped (`16.95 million`, `10.11 billion`, `1.2 trillion`); 1,000 <= |x| < 1e6 without
  decimals (`1,098`); 100 <= |x| < 1,000 with one decimal at most (`351.3`); below, integers as
  such and others with two decimals, more only so nothing non-zero reads as zero. Grounding's
  tolerance follows the printed digits and scale word, so every such rendering is grounded.
- `format_count`: a count of rows or values, exact with thousands separators (`1,999,999`).
- `format_share`: a 0-1 share (`topShare`, `topKShare`) as a percentage with one decimal.
- `format_pct`: a value that already is a percentage (`changePct`, `pct`) with one decimal, and
  its sign for a change.
- `format_ratio`: a ratio with one decimal and the multiplication sign (U+00D7), printed only
  when it is at least RATIO_MIN (a lower segment says "23% lower" from `change_pct`, or nothing);
  a correlation `r` with two decimals.
Data values (segment and period labels, column names) are sanitised (control characters dropped,
whitespace collapsed, at most 40 characters) and printed as is when they read as a name, else in
double quotes (`report_view.display`). Column names are printed as written but for `_` (and `.`
between words) as a space (`unit_price` -> `unit price`, `gdpPercap` stays); a sentence that
starts with a name keeps the name's case. A dimension is pluralised only when it is a plain
lowercase English word, else "the other values of <name>". A title names a segment by its value,
after its column when the value is a short code, a number, a range or a yes/no. Candidates come
ranked; the top `limit` business findings come first, then at most MAX_TRAILING_NOTES outlier
and data-quality notes. A candidate of an unknown type is skipped; a report without candidates
(an older schema) gets its size and quality notes only. Never raises.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from datapilot_runtime.report.calendar_names import is_calendar_name
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
from llm_svc.report_view import alias_of, candidates_of, display, humanise, summary_of

INSIGHTS_MAX = 8
# The members of a correlated group a finding names besides its pair; the rest are "others".
GROUP_NAMED = 3
MAX_TRAILING_NOTES = 3
#: The smallest segment/rest ratio printed: "1.0x" for 64.04 against 61.68 says nothing.
RATIO_MIN = 1.15
_SMALLEST = 1e-9
# A year has seasons; a week a pattern of days; a day a cycle of hours.
_CYCLES = {"year": ("yearly", "season"), "week": ("weekly", "pattern"), "day": ("daily", "cycle")}
_AVERAGE_WORDS = frozenset({"avg", "average", "mean", "median"})
_SCALE_WORDS = frozenset({"thousand", "million", "billion", "trillion", "percent", "times", "fold"})
_SCALES = ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"))
# How a period of each grain is introduced: "on 2013-10-01", "at 14:00", "in 2013-10".
_PREPOSITIONS = {"day": "on", "hour": "at", "minute": "at"}


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
    """The documented rounding (module docstring): scale words from a million, fewer decimals
    the larger the value, never a non-zero value that reads as zero."""
    magnitude = abs(value)
    if not math.isfinite(value):
        return str(value)
    for scale, word in _SCALES:
        # Largest scale first, by the rounded value: 999,996,000 is "1 billion", not "1000 million".
        if round(magnitude / scale, 2) >= 1:
            return f"{value / scale:,.2f}".rstrip("0").rstrip(".") + f" {word}"
    if round(magnitude) >= 1000:
        return f"{value:,.0f}"
    if round(magnitude, 1) >= 100:
        return f"{value:,.1f}".removesuffix(".0")
    if float(value).is_integer():
        return f"{int(value):,}"
    if magnitude >= 0.01 or round(magnitude, 2) >= 0.01:
        return f"{value:,.2f}"
    decimals = min(12, 1 - math.floor(math.log10(magnitude)))
    return f"{value:,.{decimals}f}"


def format_count(value: float) -> str:
    """A count of rows or values, exact: "1,999,999 rows", never "2 million rows"."""
    return f"{int(value):,}" if float(value).is_integer() else format_number(value)


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


def _start(text: str, name: str = "") -> str:
    """A sentence or title start: the template's own first word capitalised, a name kept as is."""
    if name and text.startswith(name):
        return text  # "gdpPercap rose", never "GdpPercap rose"
    first = text[:1].upper()
    # Only a one-to-one case change ("ß" -> "SS" is not): names must stay recognisable.
    return (first if len(first) == 1 else text[:1]) + text[1:]


def _column(name: str | None, default: str) -> str:
    return display(humanise(name)) if name else default


# Consonant pairs an English noun ends in; any other pair ("agegp", "tobgp") is an abbreviation.
_FINAL_PAIRS = frozenset(
    re.findall(
        "[a-z]{2}",
        "ch ck ct ft gh ld lf lk ll lm lp lt mb mp nd ng nk nt ph pt rb rd rf rg rk rl rm rn rp rt "
        "sh sk sp ss st th wl wn xt",
    )
)
_VOWELS = frozenset("aeiou")


def _plural(noun: str) -> str | None:
    """The plural of a plain lowercase English word ("regions", "cities", "classes"), else None.

    A name with capitals, digits or several words ("Sex", "Survived", "store 12") has no safe
    plural, nor a word that may already be one ("sales"); a scale word would read as a number.
    Nor has an abbreviation ("cyl", "drv", "agegp": no vowel, or an ending no English word has)
    or a participle ("married": "the other marrieds").
    """
    if not noun.isalpha() or not noun.islower() or len(noun) < 3 or noun in _SCALE_WORDS:
        return None
    if noun.endswith("s") and not noun.endswith("ss"):
        return None
    if not _VOWELS & set(noun) or noun.endswith("ed"):
        return None
    if not (_VOWELS | {"y"}) & set(noun[-2:]) and noun[-2:] not in _FINAL_PAIRS:
        return None
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def _who(dimension: str, label: str) -> str:
    """A segment as a title names it: "Gentoo", but "cyl “8”", "agegp 55-64" and "married yes".

    A short code, a number, a range or a yes/no says nothing without its column.
    """
    raw = label.strip("\u201c\u201d")  # display() quotes a number or a code
    if is_calendar_name(raw):  # "May", "Mon": a month or a day says what it is
        return label
    if len(raw) <= 3 or raw.lower() in ("true", "false") or any(ch.isdigit() for ch in raw):
        return f"{dimension} {label}"
    return label


def _others(dimension: str, other: str | None = None) -> str:
    """ "the other regions", "the other values of Sex" when no plural is safe, or "law “1”"
    when the dimension has one other value only."""
    if other is not None:
        return f"{dimension} {display(other)}"
    plural = _plural(dimension)
    return f"the other {plural}" if plural else f"the other values of {dimension}"


def _many(dimension: str) -> str:
    """ "regions" after a count, or "values of Sex" (never a bare name after a number)."""
    return _plural(dimension) or f"values of {dimension}"


def _usable(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) and not 0 < abs(v) < _SMALLEST for v in values)


def _at(granularity: str) -> str:
    return _PREPOSITIONS.get(granularity, "in")


class _Phrase:
    """Collects the evidence key of every field a template prints; knows the report's shape."""

    def __init__(self, candidate: Insight, *, series_grain: str | None = None) -> None:
        self.candidate = candidate
        self.evidence: list[str] = []
        # One row per period of this grain: the series is the measure itself, no average or
        # total of it. A candidate of a coarser grain (months of daily rows) still aggregates.
        grain = getattr(candidate, "granularity", None)
        self.pure_series = series_grain is not None and grain == series_grain

    def cite(self, field_name: str) -> None:
        key = f"candidates.{self.candidate.key}.{alias_of(self.candidate, field_name)}"
        if key not in self.evidence:
            self.evidence.append(key)

    def number(self, field_name: str, formatter: Callable[[float], str] = format_number) -> str:
        self.cite(field_name)
        value = getattr(self.candidate, field_name)
        return formatter(float(value))

    def measure(self, aggregation: Aggregation, measure: str, *, over_time: bool) -> str:
        """The measure as aggregated: average price, total sales, the number of rows, a level."""
        if over_time and self.pure_series and aggregation in ("mean", "sum", "last"):
            return measure
        if aggregation == "mean":
            # "avg temp", "median income": the name already says how it is aggregated.
            said = measure.split()[0].lower() in _AVERAGE_WORDS if measure else False
            return measure if said else f"average {measure}"
        if aggregation == "sum":
            return f"total {measure}"
        if aggregation == "count":
            return "the number of rows"
        return measure


def _optional_number(value: float | None) -> float | None:
    """A nullable number field (`change_pct` of a segment, outlier counts), if usable."""
    return float(value) if value is not None and _usable(float(value)) else None


def _segment(c: SegmentInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.segment_value, c.rest_value):
        return None
    name = _column(c.measure, "the value")
    measure = p.measure(c.aggregation, name, over_time=False)
    dimension = _column(c.dimension, "segment")
    label = display(c.segment)
    extreme = "highest" if c.direction == "high" else "lowest"
    yes = c.measure_label
    if yes is not None and 0 <= c.segment_value <= 1 and 0 <= c.rest_value <= 1:
        # A yes/no column: its mean is the share of rows that say yes.
        text = (
            f"The share of {name} {display(yes)} is {extreme} in {dimension} {label}: "
            f"{p.number('segment_value', format_share)} against "
            f"{p.number('rest_value', format_share)} for {_others(dimension, c.rest_segment)}"
        )
        return f"{_who(dimension, label)} stands out on {name}", text + "."
    lead = (
        f"The {extreme} {measure} is in {dimension} {label}"
        if measure.startswith(name)  # never a sentence that starts with a column's name
        else f"{_start(measure)} is {extreme} in {dimension} {label}"
    )
    text = (
        f"{lead}: {p.number('segment_value')} against {p.number('rest_value')} "
        f"for {_others(dimension, c.rest_segment)}"
    )
    change_pct = _optional_number(c.change_pct)
    if c.ratio is not None and _usable(c.ratio) and c.ratio >= RATIO_MIN:
        text += f" ({p.number('ratio', format_ratio)})"
    elif change_pct is not None and round(abs(change_pct)) >= 1:
        side = "higher" if change_pct > 0 else "lower"
        text += f" ({p.number('change_pct', lambda v: f'{abs(v):.0f}%')} {side})"
    title = f"{_who(dimension, label)} stands out on {measure}"
    return title, text + "."


def _concentration(c: ConcentrationInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.top_share) or not 0 <= c.top_share <= 1:
        return None
    measure = _column(c.measure, "the total")
    dimension = _column(c.dimension, "value")
    # "of total total bill" reads as a typo: a name that says "total" already is the total.
    of = "all" if measure.lower().split()[:1] == ["total"] else "total"
    text = (
        f"{display(c.top)} carries {p.number('top_share', format_share)} of {of} {measure} "
        f"(by {dimension})"
    )
    rows = c.top_rows_share
    if rows is not None and _usable(rows) and 0 < rows < c.top_share:
        text += f" from {p.number('top_rows_share', format_share)} of the rows"
    if c.top_k > 1 and _usable(c.top_k_share) and 0 <= c.top_k_share <= 1:
        text += (
            f"; the top {p.number('top_k')} {_many(dimension)} hold "
            f"{p.number('top_k_share', format_share)}"
        )
    return f"{_who(dimension, display(c.top))} leads {measure}", text + "."


def _trend(c: TrendInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.first_value, c.last_value):
        return None
    name = _column(c.measure, "the value")
    measure = p.measure(c.aggregation, name, over_time=True)
    per = "" if measure == name else f" per {c.granularity}"
    moved = "rose" if c.direction == "up" else "fell"
    at = _at(c.granularity)
    span = f"{p.number('periods')} {_many(c.granularity)}"
    if c.span_periods is not None and c.span_periods > c.periods:  # gaps: say both
        span = (
            f"{p.number('span_periods')} {_many(c.granularity)} ({p.number('periods')} with data)"
        )
    lead = (
        f"Over {span}, {measure}{per} {moved}"
        if measure.startswith(name)  # never a sentence that starts with a column's name
        else f"{_start(measure)}{per} {moved} over {span},"
    )
    along = " on its trend line" if c.trend_line else ""
    text = (
        f"{lead}{along} from {p.number('first_value')} {at} {display(c.first_period)} "
        f"to {p.number('last_value')} {at} {display(c.last_period)}"
    )
    if c.change_pct is not None and _usable(c.change_pct):
        text += f" ({p.number('change_pct', lambda v: format_pct(v, signed=True))})"
    title = f"{_start(measure, name)} trending {c.direction}"
    return title, text + "."


def _season(c: SeasonInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.peak_value, c.trough_value):
        return None
    name = _column(c.measure, "the value")
    measure = p.measure(c.aggregation, name, over_time=True) if c.aggregation else name
    cycle, noun = _CYCLES.get(c.cycle, (c.cycle, "season"))
    at = {"week": "on", "day": "at"}.get(c.cycle, "in")
    # A total is per period ("1.01 million a day"); an average or a level needs no unit.
    total = c.aggregation == "sum" and measure != name
    per = (" an " if c.granularity == "hour" else " a ") + c.granularity if total else ""
    text = (
        f"A {cycle} {noun} in {measure}: highest {at} {display(c.peak)}, lowest {at} "
        f"{display(c.trough)} ({p.number('peak_value')}{per} against "
        f"{p.number('trough_value')}{', on average' if total else ''})"
    )
    return f"{_start(cycle)} {noun} in {name}", text + "."


def _level_shift(c: LevelShiftInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.before, c.after) or c.before == c.after:
        return None
    measure = _column(c.measure, "the value")
    moved = "dropped" if c.after < c.before else "rose"
    level = "a mean of" if c.aggregation == "mean" and not p.pure_series else "a level of"
    period = f"{_at(c.granularity)} {display(c.period)}"
    text = (
        f"{_start(period)}, {measure} {moved} from {level} {p.number('before')} "
        f"before to {p.number('after')} after"
    )
    if c.change_pct is not None and _usable(c.change_pct):
        text += f" ({p.number('change_pct', lambda v: format_pct(v, signed=True))})"
    return f"{_start(measure, measure)} shifted {period}", text + "."


def _period_change(c: PeriodChangeInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.value, c.previous_value, c.change):
        return None
    name = _column(c.measure, "the value")
    measure = p.measure(c.aggregation, name, over_time=True)
    at = _at(c.granularity)
    period, previous = f"{at} {display(c.period)}", display(c.previous_period)
    against = "a year before" if c.comparison == "year_over_year" else "the period before"
    direction = "up" if c.change > 0 else "down" if c.change < 0 else "unchanged"
    if format_number(c.value) == format_number(c.previous_value):
        return None  # "1,022, up 0.01% on 1,022": a change too small to print says nothing
    if direction == "unchanged":
        change = "unchanged"
    elif c.change_pct is not None and _usable(c.change_pct):
        change = f"{direction} {p.number('change_pct', lambda v: format_pct(abs(v)))}"
    else:
        change = f"{direction} {p.number('change', lambda v: format_number(abs(v)))}"
    text = (
        f"{_start(period)}, {measure} came to {p.number('value')}, {change} on {previous} "
        f"({against}: {p.number('previous_value')})"
    )
    return f"{_start(measure, name)} {period}", text + "."


def _unusual(c: UnusualInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.value, c.expected, c.z_score):
        return None
    measure = p.measure(c.aggregation, _column(c.measure, "the value"), over_time=True)
    period = f"{_at(c.granularity)} {display(c.period)}"
    side = "above" if c.direction == "high" else "below"
    text = (
        f"Unusually {c.direction} {measure} {period}: {p.number('value')}, "
        f"{p.number('z_score', lambda v: f'{abs(v):.1f}')} standard deviations {side} the "
        f"expected {p.number('expected')}"
    )
    return f"Unusual {measure} {period}", text + "."


def _record(c: RecordInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.value, c.previous_record):
        return None
    if format_number(c.value) == format_number(c.previous_record):
        return None  # "1,022, above the previous record of 1,022" reads as a contradiction
    name = _column(c.measure, "the value")
    measure = p.measure(c.aggregation, name, over_time=True)
    at = _at(c.granularity)
    period = f"{at} {display(c.period)}"
    side = "above" if c.direction == "high" else "below"
    text = (
        f"{_start(period)}, {measure} reached a record {c.direction}: "
        f"{p.number('value')}, {side} the previous record of {p.number('previous_record')} "
        f"{at} {display(c.previous_record_period)}"
    )
    return f"Record {c.direction} {measure} {period}", text + "."


def _correlation(c: CorrelationInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.r) or not -1 <= c.r <= 1:
        return None
    first, second = _column(c.measure, "one measure"), _column(c.other, "another")
    together = "tends to rise" if c.r > 0 else "tends to fall"
    text = (
        f"As {first} rises, {second} {together} "
        f"(r = {p.number('r', lambda v: f'{v:.2f}')} over {p.number('n')} rows); "
        "an association, not a cause"
    )
    if c.also:
        p.cite("also")
        named = [_column(name, "another") for name in c.also[:GROUP_NAMED]]
        if len(c.also) > GROUP_NAMED:
            named.append("others")
        listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
        verb = "is" if len(named) == 1 else "are"
        return (
            f"{first}, {second} and more move together",
            f"{text}. {listed} {verb} strongly associated with them too.",
        )
    return f"Correlation of {first} and {second}", text + "."


def _outliers(c: OutliersInsight, p: _Phrase) -> tuple[str, str] | None:
    if not _usable(c.lower_fence, c.upper_fence, c.pct):
        return None
    measure = _column(c.measure, "a measure")
    values, are = ("value", "is") if c.count == 1 else ("values", "are")
    low, high = _optional_number(c.low_count), _optional_number(c.high_count)
    # A side without outliers is not named: "below -12.5" for a measure that is never
    # negative would print a bound outside the data.
    if low == 0 and high:
        where = f"above {p.number('upper_fence')}"
    elif high == 0 and low:
        where = f"below {p.number('lower_fence')}"
    else:
        where = f"outside the usual range of {p.number('lower_fence')} to {p.number('upper_fence')}"
    text = (
        f"{p.number('count', format_count)} {values} of {measure} {are} {where} "
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
    "mixedScales": "holds quantities of different scales, told apart by another column: "
    "compare it within each kind only",
}


def _quality(c: QualityInsight, p: _Phrase) -> tuple[str, str] | None:
    share = f" ({p.number('pct', format_pct)})" if c.pct is not None and _usable(c.pct) else ""
    if c.kind == "duplicates" and c.count is not None:
        rows = "row is an exact duplicate" if c.count == 1 else "rows are exact duplicates"
        text = f"{p.number('count', format_count)} {rows} of another row{share}"
        return "Duplicate rows", text + "."
    if c.kind == "skippedRows" and c.count is not None:
        return (
            "Skipped rows",
            f"{p.number('count', format_count)} rows could not be read and were skipped.",
        )
    if c.kind == "reshaped" and c.count is not None:
        text = (
            f"The file's {p.number('count', format_count)} rows are in long format "
            "(one number per row, named by another column): they were analysed with one column "
            "per quantity."
        )
        return "Long format", text
    # A kind is the engine's camelCase identifier, not a column name: its words are split.
    kind = " ".join(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", humanise(c.kind)).lower().split())
    kind = kind or "issue"
    if c.column and c.kind in _COLUMN_NOTES:
        column = _column(c.column, "")
        text = f"Column {column} {_COLUMN_NOTES[c.kind]}{share}"
        return f"Data quality: {column}", text + "."
    column = _column(c.column, "")
    where = f"Column {column}: " if c.column else ""
    count = f"{p.number('count', format_count)} " if c.count is not None else ""
    text = _start(f"{where}{count}{display(kind)}{share}.")
    return f"Data quality: {display(kind)}", text


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


def phrase(candidate: Insight, *, series_grain: str | None = None) -> InsightDraft | None:
    """One candidate as an analyst's sentence with the evidence of its numbers, or None.

    `series_grain`: the dataset has one row per period of this grain, so a per-period average or
    total at that grain is the measure itself and is not called one.
    """
    # By class, subclasses included: a model the engine extends still has its template.
    template = next((t for cls, t in _TEMPLATES.items() if isinstance(candidate, cls)), None)
    if template is None:
        return None
    words = _Phrase(candidate, series_grain=series_grain)
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
                f"{format_number(duplicates)} "
                + ("row is an exact duplicate" if duplicates == 1 else "rows are exact duplicates")
                + " of another row.",
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
    summary = summary_of(report)
    axis = summary.time_axis
    pure = axis is not None and axis.periods is not None and summary.rows == axis.periods
    series_grain = axis.granularity if axis is not None and pure else None
    findings: list[tuple[Insight, InsightDraft]] = []
    notes: list[tuple[Insight, InsightDraft]] = []
    for candidate in candidates_of(report):
        trailing = candidate.type in TRAILING_TYPES
        bucket, room = (notes, MAX_TRAILING_NOTES) if trailing else (findings, limit)
        if len(bucket) >= room:
            continue
        draft = phrase(candidate, series_grain=series_grain)
        if draft is not None:
            bucket.append((candidate, draft))
    return _distinct_titles(findings + notes)


def _distinct_titles(drafted: list[tuple[Insight, InsightDraft]]) -> list[InsightDraft]:
    """Titles that would read alike name their dimension: "Brown leads Freq" twice is "Hair
    Brown leads Freq" and "Eye Brown leads Freq"."""
    seen = Counter(draft.title for _candidate, draft in drafted)
    drafts = []
    for candidate, draft in drafted:
        dimension = _column(candidate.dimension, "")
        if seen[draft.title] > 1 and dimension and not draft.title.startswith(dimension):
            draft = replace(draft, title=f"{dimension} {draft.title}")
        drafts.append(draft)
    return drafts
