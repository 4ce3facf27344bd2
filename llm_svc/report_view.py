"""What llm_svc reads of a KPI report: typed candidates, a compact dataset summary, data labels.

The fallback, the prompt and grounding all read the report through this module, so the LLM is
shown exactly the numbers and labels grounding later accepts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from datapilot_runtime.report.insights import LABEL_FIELDS, Insight

#: Longest data value (label, column name) ever printed or shown to the LLM.
LABEL_MAX_CHARS = 40
#: Columns listed in the summary (the rest are counted).
SUMMARY_MAX_ROLES = 30
_ELLIPSIS = "\u2026"
_ADAPTER: TypeAdapter[Insight] = TypeAdapter(Insight)
# Fields that hold numbers but say nothing a reader should be told (a rank, not a fact).
_NOT_FACTS = frozenset({"score"})
# Label fields that are not printed (ids and report paths, not names).
_NOT_LABELS = frozenset({"key", "evidence"})
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_QUOTE_CHARS_RE = re.compile("['\"`\u2018\u2019\u201c\u201d]")
_NUMBER_WORDS_TEXT = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred hundreds thousand thousands million millions billion billions trillion "
    "dozen dozens half halves third thirds quarter quarters fifth fifths tenth tenths twice "
    "double doubled doubles doubling triple tripled triples tripling treble trebled "
    "quadruple quadrupled quadruples quadrupling halve halved halving percent fold"
)
NUMBER_WORDS = frozenset(_NUMBER_WORDS_TEXT.split())
# What makes a label read as a claim rather than a name: a percent sign, a currency, a number
# with a scale suffix (12k, 4.2M, 3bn), a multiplication sign.
_CLAIM_RE = re.compile(r"[%$\u20ac\u00a3\u00a5\u20b9\u00d7]|\d\s?(?:k|m|bn|b)\b", re.IGNORECASE)
_BARE_NUMBER_RE = re.compile(r"^[-+\u2212]?\d[\d,]*(?:\.\d+)?$")
_YEAR_RE = re.compile(r"^[12]\d{3}$")
_DIGITS_RE = re.compile(r"\d+(?:[.,]\d+)*")


def sanitise(value: str) -> str:
    """A data value as it is printed: control characters dropped, whitespace collapsed, capped."""
    text = " ".join(_CONTROL_RE.sub(" ", value).split())
    if len(text) > LABEL_MAX_CHARS:
        text = text[: LABEL_MAX_CHARS - 1].rstrip() + _ELLIPSIS
    return text


def is_plain_name(label: str) -> bool:
    """True when a label reads as a name even unquoted ("Store 12", "2019-07", "1898", "North").

    A label is not plain when it holds a `%`, a currency, a scale suffix (`4.2M`), a
    multiplication sign, a number word or a multiplier word (`five`, `half`, `doubled`), a
    quote, or is a bare number other than a four-digit year (`12`, `4,200,000`), or has digits
    and fewer than three characters (`Q3`), or holds a number with separators or decimals, or
    of more than three digits other than a year (`4200000 dollars`, `3.5 stars`).
    """
    if not label or _CLAIM_RE.search(label) or _QUOTE_CHARS_RE.search(label):
        return False
    if len(label) < 3 and any(ch.isdigit() for ch in label):
        return False  # "7", "Q3": too short to tell a name from a number unquoted
    if _BARE_NUMBER_RE.match(label) and not _YEAR_RE.match(label):
        return False
    for run in _DIGITS_RE.finditer(label):
        digits = run.group(0)
        # "4,200,000 dollars", "3.5 stars", "Store 5000": a quantity, not a name; a short
        # number ("Store 12", "Route 66") or a year ("2019-07", "1898") is a name.
        if not digits.isdigit() or (len(digits) > 3 and not _YEAR_RE.match(digits)):
            return False
    words = re.findall(r"[a-z]+", label.lower())
    return not any(word in NUMBER_WORDS for word in words)


def display(label: str) -> str:
    """How a data value is printed: as is when it is a plain name, else in double quotes."""
    text = sanitise(label)
    if is_plain_name(text):
        return text
    return "\u201c" + _QUOTE_CHARS_RE.sub("", text) + "\u201d"


def humanise(column: str) -> str:
    """A column name as words: `unit_price` -> `unit price`, `Sepal.Length` -> `Sepal Length`.

    Case and camelCase are kept (`gdpPercap` stays `gdpPercap`): a reader must recognise the name.
    """
    spaced = re.sub(r"(?<=[^\W\d_])\.(?=[^\W\d_])", " ", column.replace("_", " "))
    return " ".join(spaced.split())


def candidates_of(report: Any) -> list[Insight]:
    """The report's ranked candidates; an item that fails validation (unknown type) is skipped."""
    raw = report.get("candidates") if isinstance(report, dict) else None
    if not isinstance(raw, list):
        return []
    parsed: list[Insight] = []
    seen: set[str] = set()
    for item in raw:
        try:
            candidate = _ADAPTER.validate_python(item)
        except ValidationError:
            continue
        if candidate.key in seen:
            continue  # a key addresses evidence: a second item with it would be ambiguous
        seen.add(candidate.key)
        parsed.append(candidate)
    return parsed


def numbers_of(candidate: BaseModel) -> dict[str, float]:
    """The finite numeric fields of a candidate (its facts), by field name; the score excluded."""
    numbers: dict[str, float] = {}
    for name, value in candidate:
        if name in _NOT_FACTS or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            numbers[name] = float(value)
    return numbers


def labels_of(candidate: BaseModel) -> list[str]:
    """The data values (segment, period, column names) a candidate holds."""
    return [
        value
        for name, value in candidate
        if name in LABEL_FIELDS and name not in _NOT_LABELS and isinstance(value, str) and value
    ]


def alias_of(candidate: BaseModel, field: str) -> str:
    """The camelCase name of a field on the wire (what evidence keys use)."""
    info = type(candidate).model_fields.get(field)
    return (info.alias if info else None) or to_camel(field)


@dataclass(frozen=True)
class TimeAxis:
    """The report's time axis (`timeAxis`): its name, grain, length and first and last period."""

    name: str
    granularity: str
    periods: int | None
    start: str | None
    end: str | None


@dataclass(frozen=True)
class Summary:
    """The dataset facts the LLM is shown beside the candidates (numbers grounding accepts)."""

    rows: int | None
    columns: int | None
    missing_cells: int | None
    missing_cells_pct: float | None
    duplicate_rows: int | None
    roles: tuple[tuple[str, str], ...]
    unlisted_columns: int
    time_axis: TimeAxis | None

    def numbers(self) -> list[float]:
        values = [
            self.rows,
            self.columns,
            self.missing_cells,
            self.missing_cells_pct,
            self.duplicate_rows,
            self.unlisted_columns or None,
            self.time_axis.periods if self.time_axis else None,
        ]
        return [float(v) for v in values if v is not None]

    def labels(self) -> list[str]:
        axis = self.time_axis
        axis_labels = [axis.name, axis.start, axis.end] if axis else []
        return [name for name, _ in self.roles] + [a for a in axis_labels if a]

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "rows": self.rows,
            "columns": self.columns,
            "missingCells": self.missing_cells,
            "missingCellsPct": self.missing_cells_pct,
            "duplicateRows": self.duplicate_rows,
        }
        document = {k: v for k, v in document.items() if v is not None}
        if self.roles:
            document["roles"] = {sanitise(name): role for name, role in self.roles}
        if self.unlisted_columns:
            document["columnsNotListed"] = self.unlisted_columns
        axis = self.time_axis
        if axis is not None:
            shown = {"name": sanitise(axis.name), "granularity": axis.granularity}
            extra = {"periods": axis.periods, "start": axis.start, "end": axis.end}
            document["timeAxis"] = shown | {k: v for k, v in extra.items() if v is not None}
        return document


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else None


def _share(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _time_axis(raw: Any) -> TimeAxis | None:
    if not isinstance(raw, dict):
        return None
    name, grain = raw.get("name"), raw.get("granularity")
    if not isinstance(name, str) or not isinstance(grain, str):
        return None
    start, end = raw.get("start"), raw.get("end")
    return TimeAxis(
        sanitise(name),
        sanitise(grain),
        _count(raw.get("periods")),
        sanitise(start) if isinstance(start, str) else None,
        sanitise(end) if isinstance(end, str) else None,
    )


def summary_of(report: Any) -> Summary:
    """Rows, columns, quality counts, column roles (capped) and the report's time axis."""
    dataset = report.get("dataset") if isinstance(report, dict) else None
    dataset = dataset if isinstance(dataset, dict) else {}
    raw_roles = report.get("roles") if isinstance(report, dict) else None
    roles: list[tuple[str, str]] = []
    if isinstance(raw_roles, list):
        for item in raw_roles:
            if isinstance(item, dict):
                name, role = item.get("name"), item.get("role")
                if isinstance(name, str) and isinstance(role, str) and name:
                    roles.append((name, role))
    return Summary(
        rows=_count(dataset.get("rows")),
        columns=_count(dataset.get("columns")),
        missing_cells=_count(dataset.get("missingCells")),
        missing_cells_pct=_share(dataset.get("missingCellsPct")),
        duplicate_rows=_count(dataset.get("duplicateRows")),
        roles=tuple(roles[:SUMMARY_MAX_ROLES]),
        unlisted_columns=max(0, len(roles) - SUMMARY_MAX_ROLES),
        time_axis=_time_axis(report.get("timeAxis") if isinstance(report, dict) else None),
    )
