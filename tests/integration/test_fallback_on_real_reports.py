"""The fallback insights of real KPI reports (from the analysis engine) cite only real facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis_svc.engine.analyze import analyze
from llm_svc.fallback import fallback_insights
from llm_svc.grounding import ground, resolve

SALES = Path(__file__).resolve().parents[1] / "data" / "sales.csv"


def _monthly(tmp_path: Path) -> Path:
    lines = ["month,region,revenue"]
    for month in range(1, 25):
        for region, base in (("North", 100), ("South", 50)):
            value = base + month * (5 if region == "North" else 1)
            lines.append(
                f"{2023 + (month - 1) // 12}-{(month - 1) % 12 + 1:02d}-01,{region},{value}"
            )
    path = tmp_path / "monthly.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("source", ["sales", "monthly"])
def test_fallback_of_a_real_report_is_grounded(source: str, tmp_path: Path) -> None:
    path = SALES if source == "sales" else _monthly(tmp_path)
    report, _charts = analyze(path, path.name)
    insights = fallback_insights(report)
    assert insights
    candidates = {c["key"]: c["type"] for c in report.get("candidates", [])}
    if "candidates" in report:  # schema 3.0: each insight phrases a candidate of the report
        assert all(candidates.get(i.key) == i.type for i in insights)
        if source == "monthly":
            assert any(i.type == "trend" for i in insights)
    for insight in insights:
        assert insight.evidence
        assert all(resolve(report, key)[0] for key in insight.evidence), insight.evidence
    kept, dropped = ground(insights, report)
    assert not dropped, [(d.text, v) for d, v in dropped]
    assert len(kept) == len(insights)
