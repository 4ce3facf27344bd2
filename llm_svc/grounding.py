"""Grounding: an LLM insight is kept only if its evidence exists and every number it states is one.

Evidence. Keys are dotted paths into the KPI report. A candidate is addressed by its key,
`candidates.<key>` or `candidates.<key>.<field>` (`candidates.seg.price.region.ratio`); in a
list of objects with a `name` (the `columns` list) an element is addressed by its name, which
may hold dots; items with a stable `key` by that key; other list elements by index. An insight
needs at least one evidence key, and every key must resolve.

Where numbers may come from. Only the numeric fields of the candidates the insight cites (its
`candidates.<key>...` evidence; the rank `score` excluded) and the numbers of the dataset summary
the LLM was shown (rows, columns, empty cells, duplicate rows, periods of the time axis). Data
values (segment and period labels, column names, the time axis' name and bounds) are never a
source, whatever digits they hold.

Labels as names. A data value of the candidates or the summary (as is, sanitised, or as words:
`unit_price` -> `unit price`) is blanked out before numbers are read, so its digits are no claim,
where it stands as a name:
- quoted verbatim ('...', "...", curly quotes), any label;
- unquoted, only a plain name (`report_view.is_plain_name`: no `%`, currency, scale suffix,
  number or multiplier word, quote, not a bare number except a four-digit year, not a short
  `Q3`, no number with separators or decimals or of more than three digits other than a year:
  `4200000 dollars` is a quantity, `Store 12` a name), standing alone (not inside a longer
  word or number, not followed by `%`, `percent` or a scale word). So "Store 12", "2019-07"
  and "1898" may be cited as names, while a planted label "Revenue fell 87% to $4,200,000 in
  Q4" written unquoted is read as the claim it makes, and fails.
A bare four-digit year is also accepted when it is the year of a period label of the candidates
(`2019` for `2019-07`).

Numbers written with digits:
1. A run of digits with optional `,` thousands separators and decimals (`5,000.50`, `1200`); a
   leading sign is ignored (the sign of a change is carried by words).
2. Written with d decimals, it matches a value x when |x - n| <= 0.5 * 10^-d.
3. Zero matches only a value that is exactly 0.
4. Followed by `%` or `percent`, it matches x or, for |x| <= 1, the share 100·x.
5. A scale word or suffix multiplies (`k`/`thousand`, `M`/`million`, `B`/`bn`/`billion`,
   `trillion`); the tolerance scales with it (`1.2M` matches 1,234,567, `16.95 million`
   matches 16,950,402.5: what the fallback prints for |x| >= 1e6).
6. Followed by the multiplication sign (U+00D7), `x`, `times` or `-fold`, it is a multiplier:
   it matches a value (a `ratio` field) or a ratio of the candidate's numbers (below), either
   way round, by rule 2.
Numbers written in words:
7. Cardinals (`five`, `twenty-five`, `three hundred`, `five million`, `a dozen`) match a value
   within half the place value of their last word (`five million`: ±500,000; `twenty`: ±5).
   A bare `one` is read as a pronoun, not a number; ordinals (`third largest`) are no numbers.
8. Fractions (`half`, `a third`, `two thirds`, `a quarter`, `three quarters`, `a fifth`,
   `a tenth`) match a share (a value within ±1), a percentage field (`changePct`, `pct`) / 100,
   or a ratio either way round, within 0.03.
9. Vague magnitudes (`hundreds`, `thousands`, `millions`, `billions`) match a value of at least
   2 and below 1,000 times the unit.
10. Multiplier words: `twice`, `two/three/... times`, `N-fold` match a ratio r ≈ m either way
   round; the verbs `doubled`, `tripled`, `quadrupled` (and `double`, `triple`, ...) and `halved`
   match a ratio in its direction (later / earlier, segment / rest, peak / trough) — r within
   10% of m. The ratios of a candidate are its `ratio` field, 1 + changePct/100, and the
   quotients of its paired values (segment/rest, after/before, last/first, value/previous,
   value/expected, peak/trough, value/previous record, top-k share / top share).
Anything else (sums, differences, counts the LLM made up) is no value of the cited candidates,
so the insight is dropped; its slot is filled from the fallback.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from llm_svc.fallback import InsightDraft
from llm_svc.report_view import (
    candidates_of,
    humanise,
    is_plain_name,
    labels_of,
    numbers_of,
    sanitise,
    summary_of,
)

_MAX_DECIMALS = 12
_SCALES = {
    "k": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "million": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
    "trillion": 1e12,
}
_NUMBER_RE = re.compile(
    r"(?<![\w.])[-+\u2212]?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?"
    r"(?:\s?(?P<scale>thousand|million|billion|trillion|bn|[kKmMbB])(?![\w]))?"
    r"(?P<pct>\s?%|\s?percent\b)?",
)
_DIGIT_MULTIPLIER_RE = re.compile(
    r"(?<![\w.])(?P<int>\d+)(?:\.(?P<frac>\d+))?\s?(?:\u00d7|x(?!\w)|times\b|-?fold\b)",
    re.IGNORECASE,
)
_SMALL = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_WORD_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_VAGUE = {"hundreds": 1e2, "thousands": 1e3, "millions": 1e6, "billions": 1e9, "dozens": 12.0}
_FRACTIONS = {
    "half": 2,
    "halves": 2,
    "third": 3,
    "thirds": 3,
    "quarter": 4,
    "quarters": 4,
    "fifth": 5,
    "fifths": 5,
    "tenth": 10,
    "tenths": 10,
}
_MULTIPLIER_VERBS = {
    "double": 2.0,
    "doubled": 2.0,
    "doubles": 2.0,
    "doubling": 2.0,
    "triple": 3.0,
    "tripled": 3.0,
    "triples": 3.0,
    "tripling": 3.0,
    "treble": 3.0,
    "trebled": 3.0,
    "quadruple": 4.0,
    "quadrupled": 4.0,
    "quadruples": 4.0,
    "quadrupling": 4.0,
    "halve": 0.5,
    "halved": 0.5,
    "halves": 0.5,
    "halving": 0.5,
}
_WORD_MULTIPLIER_RE = re.compile(
    r"\b(?:(?P<twice>twice)|(?P<verb>" + "|".join(_MULTIPLIER_VERBS) + r")|"
    r"(?P<times>" + "|".join([*_SMALL, *_TENS]) + r")[\s-]?(?:times|fold))\b",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"[a-z]+", re.IGNORECASE)
# (numerator, denominator): the ratios of a candidate, in their direction.
_RATIO_PAIRS = (
    ("segment_value", "rest_value"),
    ("after", "before"),
    ("last_value", "first_value"),
    ("value", "previous_value"),
    ("value", "expected"),
    ("peak_value", "trough_value"),
    ("value", "previous_record"),
    ("top_k_share", "top_share"),
)
_PERIOD_FIELDS = frozenset(
    {"period", "previous_period", "first_period", "last_period", "previous_record_period"}
    | {"last_period_before"}
)
_YEAR_OF_PERIOD_RE = re.compile(r"^([12]\d{3})(?:$|[-/ Qq]|\s?[HhWwMm]\d)")
_MASK = "\u2063"
_QUOTES = "['\"`\u2018\u2019\u201c\u201d]"
_QUOTE_CHARS_RE = re.compile(_QUOTES)
_FRACTION_TOLERANCE = 0.03
_MULTIPLIER_TOLERANCE = 0.1
_CANDIDATE_PREFIX = "candidates."


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
                # Columns by name; candidates by their key; timeSeries / correlations / alerts
                # items by their `key`, which holds the whole path to the item.
                if isinstance(item, dict) and (
                    item.get("name") == name or item.get("key") in (name, full)
                ):
                    found, value = _resolve(item, parts[size:], [*consumed, *parts[:size]])
                    if found:
                        return found, value
        if head.isdigit() and int(head) < len(node):
            return _resolve(node[int(head)], rest, [*consumed, head])
    return False, None


@dataclass(frozen=True)
class CandidateFacts:
    """The numbers a candidate allows, and its ratios (numerator / denominator, in direction)."""

    type: str
    score: float
    values: tuple[float, ...]
    ratios: tuple[float, ...]
    percents: tuple[float, ...]


@dataclass(frozen=True)
class Pool:
    """What one insight may state: the values and ratios of what it cites, and the summary."""

    values: tuple[float, ...]
    ratios: tuple[float, ...]
    percents: tuple[float, ...] = ()


def _ratios(numbers: dict[str, float]) -> list[float]:
    ratios = [numbers["ratio"]] if "ratio" in numbers else []
    if "change_pct" in numbers:
        ratios.append(1 + numbers["change_pct"] / 100)
    for top, bottom in _RATIO_PAIRS:
        if top in numbers and bottom in numbers and numbers[bottom] != 0:
            ratios.append(numbers[top] / numbers[bottom])
    return [r for r in ratios if math.isfinite(r) and r > 0]


@dataclass(frozen=True)
class Facts:
    """What a report allows: per candidate key its numbers; the summary's; the labels shown."""

    candidates: dict[str, CandidateFacts]
    summary: tuple[float, ...]
    labels: tuple[str, ...]
    years: frozenset[int]
    summary_percents: tuple[float, ...] = ()

    @classmethod
    def of(cls, report: Any) -> Facts:
        candidates = candidates_of(report)
        summary = summary_of(report)
        facts: dict[str, CandidateFacts] = {}
        labels: set[str] = set(summary.labels())
        years: set[int] = set()
        for candidate in candidates:
            numbers = numbers_of(candidate)
            facts[candidate.key] = CandidateFacts(
                str(candidate.type),
                candidate.score,
                tuple(sorted(set(numbers.values()))),
                tuple(_ratios(numbers)),
                tuple(v for name, v in numbers.items() if name.endswith("pct")),
            )
            labels.update(labels_of(candidate))
            for name in _PERIOD_FIELDS:
                value = getattr(candidate, name, None)
                match = _YEAR_OF_PERIOD_RE.match(value) if isinstance(value, str) else None
                if match:
                    years.add(int(match.group(1)))
        forms = {form for label in labels for form in _forms(label)}
        ordered = tuple(sorted(forms, key=lambda s: (-len(s), s)))
        percents = () if summary.missing_cells_pct is None else (summary.missing_cells_pct,)
        return cls(facts, tuple(summary.numbers()), ordered, frozenset(years), percents)

    def cited(self, evidence: Iterable[str]) -> list[str]:
        """The candidate keys `evidence` cites, in order (the longest key that fits wins)."""
        keys: list[str] = []
        for item in evidence:
            if not item.startswith(_CANDIDATE_PREFIX):
                continue
            rest = item[len(_CANDIDATE_PREFIX) :]
            fits = [k for k in self.candidates if rest == k or rest.startswith(k + ".")]
            if fits:
                key = max(fits, key=len)
                if key not in keys:
                    keys.append(key)
        return keys

    def pool(self, cited: Iterable[str]) -> Pool:
        values: set[float] = set(self.summary)
        ratios: list[float] = []
        percents: list[float] = list(self.summary_percents)
        for key in cited:
            facts = self.candidates.get(key)
            if facts is not None:
                values.update(facts.values)
                ratios.extend(facts.ratios)
                percents.extend(facts.percents)
        return Pool(tuple(sorted(values)), tuple(ratios), tuple(percents))


def _forms(label: str) -> set[str]:
    """A label as it may be written: as is, sanitised (as printed / shown), as words."""
    forms = {label.strip(), sanitise(label), sanitise(humanise(label))}
    return {f for f in forms if f and any(ch.isalnum() for ch in f)}


def _blank(match: re.Match[str]) -> str:
    return _MASK * len(match.group(0))


def mask_labels(text: str, labels: Iterable[str]) -> str:
    """`text` with every label that stands as a name blanked out (the rules above).

    A second pass catches a name followed by another name that reads like a scale word
    (region "Q 12" then segment "BN"): once "BN" is blanked, "Q 12" stands alone.
    """
    ordered = list(labels)
    for _ in range(2):
        before_pass = text
        for label in ordered:
            text = _mask_label(text, label)
        if text == before_pass:
            break
    return text


def _mask_label(text: str, label: str) -> str:
    folded = text.casefold()
    bare = _QUOTE_CHARS_RE.sub("", label)
    if bare and bare.casefold() in folded:
        quoted = f"{_QUOTES}{re.escape(bare)}{_QUOTES}"
        text = re.sub(quoted, _blank, text, flags=re.IGNORECASE)
    if not is_plain_name(label) or label.casefold() not in folded:
        return text
    before = r"(?<![\w.,$\u20ac\u00a3\u00a5\u20b9])" if label[0].isalnum() else ""
    after = (
        r"(?![\w]|[.,]\d|\s?%|\s(?:percent|thousand|million|billion|trillion|bn)\b)"
        if label[-1].isalnum()
        else ""
    )
    return re.sub(before + re.escape(label) + after, _blank, text, flags=re.IGNORECASE)


def _close(written: float, tolerance: float, values: Iterable[float]) -> bool:
    for value in values:
        magnitude = abs(value)
        if written == 0 and magnitude != 0:
            continue
        if abs(magnitude - written) <= tolerance * (1 + 1e-9) + 1e-12 * max(1.0, magnitude):
            return True
    return False


def _multiplier_ok(m: float, tolerance: float, pool: Pool, *, either_way: bool) -> bool:
    ratios = list(pool.ratios)
    if either_way:
        ratios += [1 / r for r in pool.ratios]
    return any(abs(r - m) <= tolerance for r in ratios)


def _fraction_ok(fraction: float, pool: Pool) -> bool:
    shares = [v for v in pool.values if abs(v) <= 1] + [p / 100 for p in pool.percents]
    shares += [*pool.ratios, *(1 / r for r in pool.ratios)]
    return any(abs(abs(share) - fraction) <= _FRACTION_TOLERANCE for share in shares)


def _word_multipliers(text: str, pool: Pool, bad: list[str]) -> str:
    def check(match: re.Match[str]) -> str:
        token = match.group(0)
        if match.group("twice"):
            ok = _multiplier_ok(2.0, 2.0 * _MULTIPLIER_TOLERANCE, pool, either_way=True)
        elif match.group("verb"):
            m = _MULTIPLIER_VERBS[match.group("verb").lower()]
            ok = _multiplier_ok(m, m * _MULTIPLIER_TOLERANCE, pool, either_way=False)
        else:
            word = match.group("times").lower()
            m = float(_SMALL.get(word, _TENS.get(word, 0)))
            ok = m > 0 and _multiplier_ok(m, m * _MULTIPLIER_TOLERANCE, pool, either_way=True)
        if not ok:
            bad.append(token)
        return _MASK * len(token)

    return _WORD_MULTIPLIER_RE.sub(check, text)


def _digit_multipliers(text: str, pool: Pool, bad: list[str]) -> str:
    def check(match: re.Match[str]) -> str:
        fraction = match.group("frac") or ""
        written = float(f"{match.group('int')}.{fraction}" if fraction else match.group("int"))
        tolerance = 0.5 * 10.0 ** -len(fraction)
        ok = _close(written, tolerance, pool.values) or _multiplier_ok(
            written, tolerance, pool, either_way=True
        )
        if not ok:
            bad.append(match.group(0).strip())
        return _MASK * len(match.group(0))

    return _DIGIT_MULTIPLIER_RE.sub(check, text)


def _cardinal(words: list[str], start: int) -> tuple[float, float, int] | None:
    """(value, tolerance, words used) of a cardinal phrase at `start`, or None."""
    word = words[start]
    index = start + 1
    if word in ("a", "an"):
        if index < len(words) and words[index] in ("dozen", "hundred", *_WORD_SCALES):
            value, tolerance = 1.0, 0.5
        else:
            return None
    elif word in _SMALL:
        value, tolerance = float(_SMALL[word]), 0.5
    elif word in _TENS:
        value, tolerance = float(_TENS[word]), 5.0
        if index < len(words) and words[index] in _SMALL and 0 < _SMALL[words[index]] < 10:
            value, tolerance = value + _SMALL[words[index]], 0.5
            index += 1
    elif word == "dozen":
        return 12.0, 0.5, 1
    else:
        return None
    if index < len(words) and words[index] == "dozen":
        return value * 12, 0.5 * 12, index + 1 - start
    if index < len(words) and words[index] == "hundred":
        value, tolerance = value * 100, 50.0
        index += 1
        if index < len(words) and words[index] == "and":
            index += 1
        rest = _cardinal(words, index) if index < len(words) else None
        if rest is not None and rest[0] < 100 and words[index] not in ("a", "an"):
            value, tolerance = value + rest[0], rest[1]
            index += rest[2]
    if index < len(words) and words[index] in _WORD_SCALES:
        scale = _WORD_SCALES[words[index]]
        value, tolerance = value * scale, tolerance * scale
        index += 1
    return value, tolerance, index - start


def _word_numbers(text: str, pool: Pool, bad: list[str]) -> None:
    spans = [(m.group(0).lower(), m.group(0)) for m in _WORD_RE.finditer(text.replace(_MASK, " "))]
    words = [w for w, _ in spans]
    index = 0
    while index < len(words):
        word = words[index]
        following = words[index + 1] if index + 1 < len(words) else ""
        # Fractions: "half", "a third", "two thirds", "three quarters".
        if word == "half":
            if not _fraction_ok(0.5, pool):
                bad.append(spans[index][1])
            index += 1
            continue
        if following in _FRACTIONS and (word in ("a", "an", "one") or word in _SMALL):
            numerator = 1 if word in ("a", "an") else _SMALL[word]
            if numerator == 0:
                index += 2
                continue
            if not _fraction_ok(numerator / _FRACTIONS[following], pool):
                bad.append(f"{spans[index][1]} {spans[index + 1][1]}")
            index += 2
            continue
        if word in _VAGUE:
            unit = _VAGUE[word]
            if not any(2 * unit <= abs(v) < 1000 * unit for v in pool.values):
                bad.append(spans[index][1])
            index += 1
            continue
        parsed = _cardinal(words, index)
        if parsed is None:
            index += 1
            continue
        value, tolerance, used = parsed
        if word == "one" and used == 1:
            index += 1  # a bare "one" is a pronoun ("one region"), not a claim
            continue
        percent = index + used < len(words) and words[index + used] == "percent"
        values = list(pool.values)
        if percent:
            values += [v * 100 for v in pool.values if abs(v) <= 1]
        if not _close(value, tolerance, values):
            bad.append(" ".join(original for _, original in spans[index : index + used]))
        index += used + (1 if percent else 0)


def unsupported_numbers(text: str, facts: Facts, cited: Iterable[str] = ()) -> list[str]:
    """The numbers of `text` (digits, words, multipliers) that `cited` and the summary lack."""
    pool = facts.pool(cited)
    masked = mask_labels(text, facts.labels)
    bad: list[str] = []
    masked = _word_multipliers(masked, pool, bad)
    masked = _digit_multipliers(masked, pool, bad)
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
        values = list(pool.values)
        if match.group("pct"):
            values += [v * 100 for v in pool.values if abs(v) <= 1]
        if _close(written, 0.5 * 10.0**-decimals * scale, values):
            continue
        if not fraction and not scale_word and int(integer) in facts.years:
            continue
        bad.append(token)
    _word_numbers(_NUMBER_RE.sub(_blank, masked), pool, bad)
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
    """Keep `draft` only if it rests on existing keys and states only numbers of what it cites."""
    if not draft.evidence:
        return Verdict("no_evidence")
    missing = [key for key in draft.evidence if not resolve(report, key)[0]]
    if missing:
        return Verdict("unknown_evidence", ", ".join(missing[:3]))
    bad = unsupported_numbers(f"{draft.title}\n{draft.text}", facts, facts.cited(draft.evidence))
    if bad:
        return Verdict("ungrounded_number", ", ".join(bad[:3]))
    return Verdict()


def ground(
    drafts: list[InsightDraft], report: Any
) -> tuple[list[InsightDraft], list[tuple[InsightDraft, Verdict]]]:
    """(kept, dropped with verdicts); a kept insight takes the type and key of what it cites."""
    facts = Facts.of(report)
    kept: list[InsightDraft] = []
    dropped: list[tuple[InsightDraft, Verdict]] = []
    for draft in drafts:
        verdict = check(draft, report, facts)
        if not verdict.kept:
            dropped.append((draft, verdict))
            continue
        cited = facts.cited(draft.evidence)
        if cited and not draft.key:
            first = facts.candidates[cited[0]]
            draft = replace(draft, type=first.type, key=cited[0], score=first.score)
        kept.append(draft)
    return kept, dropped
