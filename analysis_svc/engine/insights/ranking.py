"""All candidates of a report, ranked: business findings by score, then outliers and quality.

Also the candidates built from other report sections:
* correlation: score = 0.8 x (|r| - 0.5) / 0.5 (association is worth less than a finding).
  Three or more measures linked by pairs of |r| >= GROUP_R (the ratings of a judge, four
  stock indices) are one finding: their strongest pair, naming the others.
* outliers: score = min(1, pct / 20) for a measure with 1-10 % of values beyond the fences.
* quality: score = 0.6 for a warning, 0.3 for an info alert.
A segment that is highest on average where it also leads the measure's total (a concentration
finding on the same dimension) is that story told twice: only the share is kept.
The k-th candidate of a type (by score, ties by key) has its score multiplied by 0.9^(k-1), so
that one kind of finding does not fill the top. Candidates scoring below 0.01 are dropped.
Ties break by key, so the list is deterministic; it is capped at MAX_CANDIDATES.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter

from analysis_svc.engine.insights.common import score
from analysis_svc.engine.kpis.quality import OUTLIER_MAX_PCT
from datapilot_runtime.report.insights import (
    TRAILING_TYPES,
    ConcentrationInsight,
    CorrelationInsight,
    Insight,
    OutliersInsight,
    QualityInsight,
    SegmentInsight,
)

MAX_CANDIDATES = 40
MIN_SCORE = 0.01
REPEAT_DISCOUNT = 0.9
OUTLIERS_MIN_PCT = 1.0
_SEVERITY_SCORE = {"warning": 0.6, "info": 0.3}
# A column of mixed quantities explains why its figures are missing: the first note to read.
_KIND_SCORE = {"mixedScales": 0.9}
_ADAPTER: TypeAdapter[Insight] = TypeAdapter(Insight)
GROUP_R = 0.9


def _groups(items: list[dict[str, Any]]) -> dict[frozenset[str], list[str]]:
    """Groups of 3+ measures linked by pairs of |r| >= GROUP_R (each member tied that strongly
    to another), as {the group's strongest pair: its other members}; items come strongest
    first."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    strong = [(str(i["a"]), str(i["b"])) for i in items if abs(float(i["r"])) >= GROUP_R]
    for a, b in strong:
        parent[root(a)] = root(b)
    members: dict[str, list[str]] = {}
    founders: dict[str, tuple[str, str]] = {}
    for a, b in strong:  # strongest first: a group's first pair founds it
        group = root(a)
        founders.setdefault(group, (a, b))
        for name in (a, b):
            if name not in members.setdefault(group, []):
                members[group].append(name)
    return {
        frozenset(founders[group]): [m for m in names if m not in founders[group]]
        for group, names in members.items()
        if len(names) >= 3
    }


def correlation_insights(items: list[dict[str, Any]]) -> list[CorrelationInsight]:
    groups = _groups(items)
    group_of = {name: pair for pair, rest in groups.items() for name in (*pair, *rest)}
    found = []
    for item in items:
        a, b = sorted((str(item["a"]), str(item["b"])))
        pair = frozenset((a, b))
        if pair not in groups and a in group_of and group_of[a] == group_of.get(b):
            continue  # a pair inside a group: told by the group's finding
        r = float(item["r"])
        key = f"correlation.{a}.{b}"
        found.append(
            CorrelationInsight(
                key=key,
                score=score(0.8 * (abs(r) - 0.5) / 0.5),
                measure=a,
                other=b,
                evidence=[str(item["key"]) + ".r", str(item["key"]) + ".n"],
                r=r,
                n=int(item["n"]),
                also=groups.get(pair, []),
            )
        )
    return found


def outlier_insights(
    columns: list[dict[str, Any]], mixed: frozenset[str] = frozenset()
) -> list[OutliersInsight]:
    found = []
    for column in columns:
        if column["name"] in mixed:
            continue  # outliers of a mix of quantities are the larger quantity's values
        outliers = (column.get("numeric") or {}).get("outliers") or {}
        if not OUTLIERS_MIN_PCT <= float(outliers.get("pct") or 0.0) <= OUTLIER_MAX_PCT:
            continue
        low, high = outliers.get("lowerFence"), outliers.get("upperFence")
        # Equal fences mean a zero interquartile range (precipitation, mostly 0): every value
        # off the common one would be an "outlier", which says nothing.
        if low is None or high is None or high <= low:
            continue
        name = str(column["name"])
        base = f"columns.{name}.numeric.outliers"
        count = int(outliers["count"])
        # A fence beyond the data (a negative lower fence of a positive measure) means that side
        # holds no outlier: clip it, so no range is ever stated that the data do not reach.
        smallest, largest = (
            (column.get("numeric") or {}).get("min"),
            (column.get("numeric") or {}).get("max"),
        )
        low_count = high_count = None
        if isinstance(smallest, int | float) and smallest >= low:
            low, low_count, high_count = smallest, 0, count
        if isinstance(largest, int | float) and largest <= high:
            high, high_count = largest, 0
            low_count = count if low_count is None else low_count
        found.append(
            OutliersInsight(
                key=f"outliers.{name}",
                score=score(float(outliers["pct"]) / 20),
                measure=name,
                evidence=[f"{base}.count", f"{base}.pct"],
                count=count,
                pct=float(outliers["pct"]),
                lower_fence=float(low),
                upper_fence=float(high),
                low_count=low_count,
                high_count=high_count,
            )
        )
    return found


def quality_insights(alerts: list[dict[str, Any]], dataset: dict[str, Any]) -> list[QualityInsight]:
    found = []
    for alert in alerts:
        kind = str(alert["type"])
        if kind == "outliers":
            continue  # an outliers candidate of its own
        column = alert.get("column")
        count, share = _quality_numbers(kind, alert, dataset)
        found.append(
            QualityInsight(
                key="quality." + str(alert["key"]).removeprefix("alerts."),
                score=_KIND_SCORE.get(kind, _SEVERITY_SCORE.get(str(alert["severity"]), 0.3)),
                measure=None,
                evidence=[str(e) for e in alert.get("evidence", [])],
                kind=kind,
                column=None if column is None else str(column),
                count=count,
                pct=share,
            )
        )
    return found


def _quality_numbers(
    kind: str, alert: dict[str, Any], dataset: dict[str, Any]
) -> tuple[int | None, float | None]:
    if kind == "duplicates":
        return int(dataset["duplicateRows"]), float(dataset["duplicateRowsPct"])
    if kind == "skippedRows":
        return int(dataset["skippedRows"]), None
    if kind == "reshaped":
        return int(dataset["reshapedFrom"]["rows"]), None
    return None, None


def rank(candidates: Iterable[Any]) -> list[dict[str, Any]]:
    """Score descending, ties by key; trailing types last; capped; JSON dicts (camelCase)."""
    items = [_ADAPTER.validate_python(c) for c in candidates]
    leaders = {
        (item.dimension, item.measure, item.top)
        for item in items
        if isinstance(item, ConcentrationInsight)
    }
    items = [
        item
        for item in items
        if not (
            isinstance(item, SegmentInsight)
            and item.direction == "high"
            and (item.dimension, item.measure, item.segment) in leaders
        )
    ]
    unique = sorted({item.key: item for item in items}.values(), key=lambda c: (-c.score, c.key))
    # The k-th finding of a type weighs REPEAT_DISCOUNT^(k-1): eight sectors that all fell in
    # 2008 are one story, and the reader's next line should be another kind of finding.
    seen: dict[str, int] = {}
    discounted = []
    for item in unique:
        repeat = seen.get(item.type, 0)
        seen[item.type] = repeat + 1
        if repeat:
            item = item.model_copy(update={"score": round(item.score * REPEAT_DISCOUNT**repeat, 4)})
        if item.score >= MIN_SCORE:
            discounted.append(item)
    ordered = sorted(discounted, key=lambda c: (c.type in TRAILING_TYPES, -c.score, c.key))
    dumps = [_ADAPTER.dump_python(item, by_alias=True, mode="json") for item in ordered]
    # A number that overflowed (sums of values near 1e308) would make result.json invalid JSON.
    return [dump for dump in dumps if _finite(dump)][:MAX_CANDIDATES]


def _finite(dump: dict[str, Any]) -> bool:
    return all(math.isfinite(value) for value in dump.values() if isinstance(value, float))
