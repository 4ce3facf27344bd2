"""Data-quality alerts: missing data, constant or high-cardinality columns, skew, duplicates."""

from __future__ import annotations

from typing import Any

from analysis_svc.engine.semantics.mixed_scales import MixedScale

HIGH_MISSING_PCT = 20.0
HIGH_CARDINALITY_MIN_DISTINCT = 50
HIGH_CARDINALITY_DISTINCT_PCT = 50.0
SKEW_LIMIT = 2.0
OUTLIER_PCT = 5.0
#: Beyond this share the values outside the fences are a second mode or a long tail, not
#: outliers (a quarter of aircraft "outside 77-245 seats"; 11 % of house sales "above 1,038"):
#: the skew alert speaks for them. A normal sample has 0.7 % beyond the fences, an exponential
#: one 4.8 %, a lognormal one (sigma 1) about 8 %. Alerts and insights both stop here.
OUTLIER_MAX_PCT = 10.0


def alerts(dataset: dict[str, Any], columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts in a fixed order: dataset-level first, then per column in column order."""
    found: list[dict[str, Any]] = []
    if dataset["duplicateRows"]:
        found.append(
            _alert(
                "duplicates",
                None,
                "warning",
                f"{_many(dataset['duplicateRows'], 'row')} ({dataset['duplicateRowsPct']}%) "
                f"{_be(dataset['duplicateRows'], 'an exact duplicate', 'exact duplicates')} "
                "of an earlier row.",
                ["dataset.duplicateRows", "dataset.duplicateRowsPct"],
            )
        )
    if dataset.get("skippedRows"):
        found.append(
            _alert(
                "skippedRows",
                None,
                "warning",
                f"{_many(dataset['skippedRows'], 'malformed row')} (wrong number of fields) "
                f"{'was' if dataset['skippedRows'] == 1 else 'were'} skipped.",
                ["dataset.skippedRows"],
            )
        )
    reshaped = dataset.get("reshapedFrom")
    if reshaped:
        found.append(
            _alert(
                "reshaped",
                None,
                "info",
                f"The {reshaped['rows']} rows are in long format ('{reshaped['dimension']}' "
                f"names what '{reshaped['measure']}' measures): analysed as "
                f"{dataset['rows']} rows with one column per '{reshaped['dimension']}' value.",
                ["dataset.reshapedFrom.rows", "dataset.rows"],
            )
        )
    for column in columns:
        found.extend(_column_alerts(column))
    return found


def _column_alerts(column: dict[str, Any]) -> list[dict[str, Any]]:
    name, kind = str(column["name"]), str(column["type"])
    base = f"columns.{name}"
    found: list[dict[str, Any]] = []
    if kind == "empty":
        found.append(
            _alert("empty", name, "warning", f"'{name}' has no values.", [f"{base}.missing"])
        )
    elif column["missingPct"] >= HIGH_MISSING_PCT:
        found.append(
            _alert(
                "highMissing",
                name,
                "warning",
                f"'{name}' is missing in {column['missingPct']}% of rows.",
                [f"{base}.missingPct"],
            )
        )
    if kind == "constant":
        found.append(
            _alert(
                "constant", name, "info", f"'{name}' holds a single value.", [f"{base}.distinct"]
            )
        )
    if (
        kind == "categorical"
        and column["distinct"] >= HIGH_CARDINALITY_MIN_DISTINCT
        and column["distinctPct"] >= HIGH_CARDINALITY_DISTINCT_PCT
    ):
        found.append(
            _alert(
                "highCardinality",
                name,
                "info",
                f"'{name}' has {column['distinct']} distinct values "
                f"({column['distinctPct']}% of its values).",
                [f"{base}.distinct", f"{base}.distinctPct"],
            )
        )
    numeric = column.get("numeric") or {}
    skew = numeric.get("skew")
    if skew is not None and abs(skew) > SKEW_LIMIT:
        side = "right" if skew > 0 else "left"
        found.append(
            _alert(
                "skewed",
                name,
                "info",
                f"'{name}' is strongly {side}-skewed (skewness {skew:.2f}); "
                "the median describes it better than the mean.",
                [f"{base}.numeric.skew", f"{base}.numeric.median", f"{base}.numeric.mean"],
            )
        )
    outliers = numeric.get("outliers") or {}
    if OUTLIER_PCT <= outliers.get("pct", 0.0) <= OUTLIER_MAX_PCT:
        count = outliers["count"]
        found.append(
            _alert(
                "outliers",
                name,
                "info",
                f"{_many(count, 'value')} of '{name}' ({outliers['pct']}%) "
                f"{'lies' if count == 1 else 'lie'} outside "
                "1.5 IQR of the quartiles.",
                [f"{base}.numeric.outliers.count", f"{base}.numeric.outliers.pct"],
            )
        )
    if "numbersAsText" in column:
        converted = column["numbersAsText"]["converted"]
        found.append(
            _alert(
                "numbersAsText",
                name,
                "warning",
                f"'{name}' stores numbers as text ({_many(converted, 'value')} "
                f"{'was' if converted == 1 else 'were'} converted).",
                [f"{base}.numbersAsText.converted"],
            )
        )
    if column.get("mixedDateFormats"):
        found.append(
            _alert(
                "mixedDateFormats",
                name,
                "warning",
                f"'{name}' mixes several date formats; check day/month order.",
                [f"{base}.mixedDateFormats"],
            )
        )
    return found


def _alert(
    kind: str, column: str | None, severity: str, message: str, evidence: list[str]
) -> dict[str, Any]:
    key = f"alerts.{kind}" if column is None else f"alerts.{kind}.{column}"
    return {
        "key": key,
        "type": kind,
        "severity": severity,
        "column": column,
        "message": message,
        "evidence": evidence,
    }


def mixed_scale_alert(mixed: MixedScale) -> dict[str, Any]:
    """A column that holds quantities of different scales, told apart by a dimension (the
    message names columns, never the dimension's values)."""
    name, dimension = mixed.measure, mixed.dimension
    ratio = mixed.high_median / mixed.low_median
    return _alert(
        "mixedScales",
        name,
        "warning",
        f"'{name}' holds several quantities, told apart by '{dimension}' (the medians of its "
        f"groups differ up to {ratio:,.0f}-fold): no total, average, trend, outlier or "
        "correlation is computed across them.",
        [f"columns.{name}.numeric.median", f"columns.{dimension}.topValues"],
    )


def _many(count: int, noun: str) -> str:
    """ "1 row", "3 rows": a count with its noun."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _be(count: int, one: str, several: str) -> str:
    return f"is {one}" if count == 1 else f"are {several}"
