"""Data-quality alerts and correlations (keys, wording, thresholds)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis_svc.engine.kpis.report import compute_report
from analysis_svc.engine.readers.dispatch import Table
from tests.unit.test_kpi_evidence import resolve

ROWS = 100


def _report(frame: pd.DataFrame) -> dict[str, Any]:
    return compute_report(Table(frame=frame, source_format="csv"))


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, ROWS)
    return pd.DataFrame(
        {
            "x": x,
            "y": 3 * x + rng.normal(0, 0.6, ROWS),  # r 0.98: below LINEAR_R
            "noise": rng.normal(0, 1, ROWS),
            "sparse": np.where(np.arange(ROWS) % 3 == 0, np.nan, 1.0 + np.arange(ROWS)),
            "same": ["k"] * ROWS,
            "label": [f"v{i % 60}" for i in range(ROWS)],
            "skewed": rng.exponential(1.0, ROWS) ** 3,
        }
    )


def test_alerts_cover_the_quality_findings() -> None:
    frame = pd.concat([_frame(), _frame().iloc[:5]], ignore_index=True)
    report = _report(frame)
    keys = [alert["key"] for alert in report["alerts"]]
    assert keys[0] == "alerts.duplicates"
    assert report["dataset"]["duplicateRows"] == int(frame.duplicated().sum()) == 5
    assert "alerts.highMissing.sparse" in keys
    assert "alerts.constant.same" in keys
    assert "alerts.highCardinality.label" in keys
    assert "alerts.skewed.skewed" in keys
    for alert in report["alerts"]:
        assert alert["severity"] in ("info", "warning")
        for evidence in alert["evidence"]:
            resolve(report, evidence)


def test_alerts_count_in_the_singular_too() -> None:
    frame = pd.concat([_frame(), _frame().iloc[:1]], ignore_index=True)
    messages = [alert["message"] for alert in _report(frame)["alerts"]]
    assert "1 row (0.99%) is an exact duplicate of an earlier row." in messages
    assert not [m for m in messages if m.startswith("1 rows") or m.startswith("1 values")]


def test_correlation_is_reported_as_association() -> None:
    frame = _frame()
    report = _report(frame)
    items = report["correlations"]
    assert [item["key"] for item in items] == ["correlations.x.y"]
    item = items[0]
    assert item["r"] == pytest.approx(np.corrcoef(frame["x"], frame["y"])[0, 1], abs=1e-4)
    assert item["n"] == ROWS
    assert item["direction"] == "positive"
    assert "association" in item["statement"]
    assert "cause" in item["statement"]


def test_correlation_needs_30_pairs_and_uses_complete_pairs_only() -> None:
    frame = _frame()
    frame.loc[29:, "y"] = np.nan
    assert _report(frame)["correlations"] == []
    frame = _frame()
    frame.loc[::2, "y"] = np.nan
    item = _report(frame)["correlations"][0]
    both = frame[["x", "y"]].dropna()
    assert item["n"] == len(both) == 50
    assert item["r"] == pytest.approx(np.corrcoef(both["x"], both["y"])[0, 1], abs=1e-4)


def test_duplicate_rows_treat_missing_as_equal_and_scale() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "a": rng.integers(0, 3, 5000),
            "b": rng.choice(np.array(["x", "y", None], dtype=object), 5000),
            "c": rng.integers(0, 4, 5000).astype(float),
        }
    )
    frame.loc[frame.index % 7 == 0, "c"] = np.nan
    assert _report(frame)["dataset"]["duplicateRows"] == int(frame.duplicated().sum())


def test_duplicate_rows_with_counted_sorted_and_timestamp_columns() -> None:
    # Columns coded on candidate rows only (dense counts, sorted floats, timestamps, each with
    # missing values) give the count pandas gives, whatever order they are combined in.
    rng = np.random.default_rng(11)
    rows = 4000
    frame = pd.DataFrame(
        {
            "wide": rng.integers(0, 3000, rows).astype(float),
            "cents": rng.integers(0, 40, rows) / 100,
            "spread": rng.choice(rng.normal(size=25), rows),
            "at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 30, rows), "h"),
            "flag": rng.choice(["a", "b"], rows),
            "same": np.ones(rows),
        }
    )
    for name in ("wide", "cents", "spread", "at"):
        frame.loc[rng.random(rows) < 0.1, name] = None
    frame = pd.concat([frame, frame.sample(300, random_state=2)], ignore_index=True)
    expected = int(frame.duplicated().sum())
    assert expected >= 300
    assert _report(frame)["dataset"]["duplicateRows"] == expected
    narrow = frame[["cents", "at", "flag", "same"]]
    assert _report(narrow)["dataset"]["duplicateRows"] == int(narrow.duplicated().sum())


def test_skipped_rows_and_missing_header_are_reported(tmp_path: Any) -> None:
    from analysis_svc.engine.readers.dispatch import read_table

    lines = [f"{i},{i * 3}.5,x{i % 4}" for i in range(200)]
    lines[50] = "50,151.5,x2,EXTRA"
    path = tmp_path / "no_header.csv"
    path.write_text("\n".join(lines) + "\n")
    report = compute_report(read_table(path))
    assert report["dataset"]["headerRow"] is False
    assert report["dataset"]["skippedRows"] == 1
    assert report["dataset"]["rows"] == 199
    assert "alerts.skippedRows" in [alert["key"] for alert in report["alerts"]]


def test_numbered_siblings_are_no_correlation_finding() -> None:
    # A grid of heights (V1..V4): neighbouring columns move together by construction. A pair of
    # differently named measures in the same table is still reported.
    rng = np.random.default_rng(3)
    base = rng.normal(size=ROWS)
    frame = pd.DataFrame({f"V{i}": base + rng.normal(scale=0.4, size=ROWS) for i in range(1, 5)})
    frame["load"] = base * 2 + rng.normal(scale=0.8, size=ROWS)
    keys = [item["key"] for item in _report(frame)["correlations"]]
    assert keys and all("load" in key for key in keys)


def test_measures_tied_in_a_group_are_one_correlation_candidate() -> None:
    # Four ratings of one judge move together (every pair |r| >= 0.9): one finding naming the
    # group; a measure only moderately tied to one of them keeps its own pair.
    rng = np.random.default_rng(8)
    base = rng.normal(size=ROWS)
    frame = pd.DataFrame({name: base + rng.normal(scale=0.2, size=ROWS) for name in "abcd"})
    frame["load"] = base + rng.normal(scale=0.9, size=ROWS)
    candidates = [c for c in _report(frame)["candidates"] if c["type"] == "correlation"]
    grouped = [c for c in candidates if c["also"]]
    assert len(grouped) == 1
    assert {grouped[0]["measure"], grouped[0]["other"], *grouped[0]["also"]} == set("abcd")
    assert all("load" in (c["measure"], c["other"]) for c in candidates if not c["also"])
    assert len(candidates) > 1
