"""Grounding: an LLM insight is kept only if its evidence keys exist and its numbers are KPI values.

Evidence keys are dotted paths into the KPI report. In a list of objects that carry a
`name` (the `columns` list) an element is addressed by its name, which may itself hold
dots (`columns.unit.price.numeric.sum` finds the column `unit.price`); any other list
element is addressed by its index (`columns.region.topValues.0`, `timeSeries.2.periods`), or, for
items that carry a stable `key` (time series, correlations, alerts), by that key followed by the
path inside the item (`timeSeries.date.revenue.lastChange.changePct`).
An insight needs at least one evidence key, and every key must resolve.

Numbers. Every number written in the title or the text must be a KPI value of the report
(any numeric leaf, booleans excluded) under these rounding rules:

1. A number is a run of digits with optional `,` thousands separators and an optional
   decimal part (`5,000.50`, `41.67`, `1200`). A leading sign is ignored: the sign of a
   change is carried by words ("fell by 3.5%"), so `-3.5` and `3.5` both match -3.5.
2. Written with d decimals, it matches a KPI value x when x rounded to d decimals gives
   it: |x - n| <= 0.5 * 10^-d (half-up and half-even both accepted). `5,001` and
   `5,000.5` both match 5000.5; `5,000` matches 5000.5 too; `5,002` does not.
3. Zero (`0`, `0.0`, `0.00`) matches only a KPI value that is exactly 0: a non-zero KPI
   value is never reported as zero, however small.
4. Followed by `%` (or the word percent), a number matches a KPI value x as above, or a
   share: 100·x when |x| <= 1 (`41.7%` matches share 0.4167, and `0.63%` matches a
   `missingCellsPct` of 0.63).
5. A scale word or suffix multiplies: `k`/`thousand` 10^3, `M`/`million` 10^6,
   `B`/`bn`/`billion` 10^9; the tolerance scales with it (`1.2M` matches 1,234,567).
6. Digits that belong to a string of the report (a category value like `Store 12`, a
   column name like `q3_sales`, a period key like `2024-03`, a date like
   `2024-01-31T00:00:00`) are not numbers, when the text contains that whole string
   verbatim (not as part of a longer number or word); a string shorter than three
   characters (`7`, `Q3`) only when it stands in quotes (`'7'`).
   A four-digit year is allowed when it is the year of a date string in the report.

Anything else (sums of KPIs, differences, ratios, "top 3" when no KPI is 3) is not in the
report, so the insight is dropped; the fallback says less rather than invent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llm_svc.fallback import InsightDraft

_MAX_DECIMALS = 12
_SCALES = {
    "k": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "million": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
}
_NUMBER_RE = re.compile(
    r"(?<![\w.])[-+\u2212]?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?"
    r"(?:\s?(?P<scale>thousand|million|billion|bn|[kKmMbB])(?![\w]))?"
    r"(?P<pct>\s?%|\s?percent\b)?",
)
_YEAR_RE = re.compile(r"(?<!\d)((?:19|20)\d\d)-\d\d")
_MASK = "\u2063"
_QUOTES = "['\"\u2018\u2019\u201c\u201d]"


def resolve(report: Any, key: str) -> tuple[bool, Any]:
    """(found, value) for a dotted evidence key, following the addressing rules above."""
    if not key or not isinstance(key, str):
        return False, None
    return _resolve(report, key.split("."), [])


def _resolve(node: Any, parts: list[str], consumed: list[str]) -> tuple[bool, Any]:
    if not parts:
        return True, node
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        if head in node:
            return _resolve(node[head], rest, [*consumed, head])
        return False, None
    if isinstance(node, list):
        for size in range(len(parts), 0, -1):
            name = ".".join(parts[:size])
            full = ".".join([*consumed, *parts[:size]])
            for item in node:
                # Columns are addressed by name; timeSeries / correlations / alerts items by
                # their stable `key` (the whole path to the item).
                if isinstance(item, dict) and (item.get("name") == name or item.get("key") == full):
                    found, value = _resolve(item, parts[size:], [*consumed, *parts[:size]])
                    if found:
                        return found, value
        if head.isdigit() and int(head) < len(node):
            return _resolve(node[int(head)], rest, [*consumed, head])
    return False, None


@dataclass(frozen=True)
class Facts:
    """What a report allows an insight to say: its numbers and its number-bearing strings."""

    values: tuple[float, ...]
    strings: tuple[str, ...]
    years: frozenset[int]

    @classmethod
    def of(cls, report: Any) -> Facts:
        values: set[float] = set()
        strings: set[str] = set()
        for leaf in _leaves(report):
            if isinstance(leaf, bool):
                continue
            if isinstance(leaf, int | float):
                number = float(leaf)
                if math.isfinite(number):
                    values.add(number)
            elif isinstance(leaf, str) and any(ch.isdigit() for ch in leaf):
                strings.add(leaf)
        years = {int(m.group(1)) for s in strings for m in _YEAR_RE.finditer(s)}
        ordered = tuple(sorted(strings, key=lambda s: (-len(s), s)))
        return cls(tuple(sorted(values)), ordered, frozenset(years))


def _leaves(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                yield str(key)
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
        else:
            yield item


def _mask_strings(text: str, facts: Facts) -> str:
    for string in facts.strings:
        if string not in text:
            continue
        if len(string) < 3:  # a short string ("7", "Q3") only counts when quoted
            pattern = re.compile(f"(?<={_QUOTES}){re.escape(string)}(?={_QUOTES})")
        else:
            before = r"(?<![\w.,])" if string[0].isalnum() else ""
            after = r"(?![\w]|[.,]\d)" if string[-1].isalnum() else ""
            pattern = re.compile(before + re.escape(string) + after)
        text = pattern.sub(lambda m: _MASK * len(m.group(0)), text)
    return text


def _matches(written: float, decimals: int, scale: float, candidates: list[float]) -> bool:
    tolerance = 0.5 * 10.0**-decimals * scale
    for value in candidates:
        magnitude = abs(value)
        if written == 0 and magnitude != 0:
            continue
        if abs(magnitude - written) <= tolerance * (1 + 1e-9) + 1e-12 * max(1.0, magnitude):
            return True
    return False


def unsupported_numbers(text: str, facts: Facts) -> list[str]:
    """The numbers of `text` that are no KPI value under the rounding rules."""
    masked = _mask_strings(text, facts)
    bad: list[str] = []
    for match in _NUMBER_RE.finditer(masked):
        token = match.group(0).strip()
        integer, fraction = match.group("int").replace(",", ""), match.group("frac") or ""
        decimals = len(fraction)
        if decimals > _MAX_DECIMALS:
            bad.append(token)
            continue
        scale_word = (match.group("scale") or "").lower()
        scale = _SCALES.get(scale_word, 1.0)
        written = float(f"{integer}.{fraction}" if fraction else integer) * scale
        candidates = list(facts.values)
        if match.group("pct"):
            candidates += [v * 100 for v in facts.values if abs(v) <= 1]
        if _matches(written, decimals, scale, candidates):
            continue
        if not fraction and not scale_word and int(integer) in facts.years:
            continue
        bad.append(token)
    return bad


@dataclass(frozen=True)
class Verdict:
    """Why an insight was dropped (empty reason: kept)."""

    reason: str = ""
    detail: str = ""

    @property
    def kept(self) -> bool:
        return not self.reason


def check(draft: InsightDraft, report: Any, facts: Facts) -> Verdict:
    """Keep `draft` only if it rests on existing KPI keys and states only KPI numbers."""
    if not draft.evidence:
        return Verdict("no_evidence")
    missing = [key for key in draft.evidence if not resolve(report, key)[0]]
    if missing:
        return Verdict("unknown_evidence", ", ".join(missing[:3]))
    bad = unsupported_numbers(f"{draft.title}\n{draft.text}", facts)
    if bad:
        return Verdict("ungrounded_number", ", ".join(bad[:3]))
    return Verdict()


def ground(
    drafts: list[InsightDraft], report: Any
) -> tuple[list[InsightDraft], list[tuple[InsightDraft, Verdict]]]:
    """(kept, dropped with verdicts): the LLM insights that say only what the report says."""
    facts = Facts.of(report)
    kept: list[InsightDraft] = []
    dropped: list[tuple[InsightDraft, Verdict]] = []
    for draft in drafts:
        verdict = check(draft, report, facts)
        if verdict.kept:
            kept.append(draft)
        else:
            dropped.append((draft, verdict))
    return kept, dropped
