"""docs/result.schema.json: made from the typed model; it accepts real results and only those."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from analysis_svc.engine.analyze import analyze
from analysis_svc.engine.readers.common import InvalidInput
from datapilot_runtime.report.insights import InsightType, SegmentInsight
from datapilot_runtime.report.result import ResultDocument
from datapilot_runtime.report.schema import schema_text
from llm_svc.fallback import fallback_insights
from tests.chaos.hostile import Hostile, corpus
from tests.support.api import RESULT_SCHEMA_PATH, check_result

DATA = Path(__file__).resolve().parents[1] / "data"


def test_committed_schema_is_the_one_the_models_make() -> None:
    committed = RESULT_SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema_text(), "docs/result.schema.json is stale: run `make schema`"


def _result(path: Path, content: bytes | None = None) -> dict[str, Any]:
    """A result.json as the worker assembles it, from the real engine and fallback."""
    report, charts = analyze(path, path.name)
    raw = content if content is not None else path.read_bytes()
    return {
        "jobId": "0" * 32,
        "schemaVersion": report["schemaVersion"],
        "file": {
            "filename": path.name,
            "sizeBytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
        },
        "kpis": report,
        "charts": charts,
        "insights": [
            {
                "title": draft.title,
                "text": draft.text,
                "evidence": draft.evidence,
                "severity": draft.severity,
                "source": "fallback",
            }
            for draft in fallback_insights(report)
        ],
        "insightsSource": "fallback",
        "model": "fallback",
    }


def _messy_csv(tmp_path: Path) -> Path:
    """Every column type, missing values, numbers as text, mixed date formats, duplicates."""
    rows = ["id,when,city,flag,note,price,constant,empty,amount_text,qty"]
    for i in range(60):
        when = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" if i % 7 else f"{1 + i % 28}/03/2024"
        city = ("Oslo", "Bergen", "Tromsø")[i % 3] if i % 11 else ""
        note = f"note {i}: a long free text that goes on and on about nothing in particular"
        price = "" if i % 13 == 0 else f"{(i * 37) % 100 + 0.5}"
        flag = "yes" if i % 2 else "no"
        rows.append(f"{i},{when},{city},{flag},{note},{price},k,,${i * 3},{i * 2 + i % 3}")
    rows.append(rows[-1])
    path = tmp_path / "messy.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["sales.csv", "messy"])
def test_real_results_validate_against_schema_and_model(name: str, tmp_path: Path) -> None:
    path = DATA / name if name != "messy" else _messy_csv(tmp_path)
    result = _result(path)
    check_result(result)
    document = ResultDocument.model_validate(result)
    assert document.model_dump(mode="json", by_alias=True, exclude_unset=True) == result


NASTY = [hostile for hostile in corpus() if "completed" in hostile.allowed]


@pytest.mark.parametrize("hostile", NASTY, ids=[hostile.name for hostile in NASTY])
def test_results_of_nasty_but_valid_files_validate(hostile: Hostile, tmp_path: Path) -> None:
    """Huge numbers, odd encodings, formula payloads: nulls and strings where the schema says."""
    path = tmp_path / hostile.filename
    path.write_bytes(hostile.content)
    try:
        result = _result(path)
    except InvalidInput:
        # A refusal leaves no result.json; it must be an outcome this file allows.
        assert hostile.allowed - {"completed"}, f"{hostile.name} must complete"
        return
    check_result(result)
    ResultDocument.model_validate(result)


def test_typed_candidates_and_roles_validate() -> None:
    result = _result(DATA / "sales.csv")
    candidate = SegmentInsight(
        key="segment.revenue.region.North",
        score=0.8,
        measure="revenue",
        dimension="region",
        aggregation="mean",
        segment="North",
        direction="high",
        segment_value=300.0,
        rest_value=200.0,
        ratio=1.5,
        segment_rows=36,
        rest_rows=84,
        effect_size=0.6,
    )
    result["kpis"]["candidates"] = [candidate.model_dump(mode="json", by_alias=True)]
    result["kpis"]["roles"] = [
        {"name": "units", "role": "non_additive", "reason": "uploader", "overridden": True}
    ]
    result["kpis"]["roleWarnings"] = ["options.roles names 'colour', which the file lacks"]
    result["kpis"]["timeAxis"] = {
        "name": "date",
        "columns": ["date"],
        "granularity": "week",
        "periods": 120,
        "start": "2025-01-01",
        "end": "2025-12-24",
    }
    result["kpis"]["columns"][3].update(role="non_additive", range={"min": 1.0, "max": 40.0})
    result["insights"][0].update(type="segment", key=candidate.key, score=0.8)
    check_result(result)
    parsed = ResultDocument.model_validate(result)
    assert parsed.kpis.candidates[0].type is InsightType.SEGMENT
    assert parsed.kpis.time_axis is not None and parsed.kpis.time_axis.periods == 120


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("surprise", 1),  # an undocumented key
        ("kpis/columns/0/surprise", 1),
        ("kpis/dataset/rows", -1),
        ("kpis/dataset/rows", "120"),
        ("insightsSource", "oracle"),
        ("insights/0/source", "mixed"),  # mixed is only the overall source
        ("insights/0/score", 1.5),
        ("kpis/timeSeries/0/granularity", "fortnight"),
        ("kpis/correlations", [{"key": "correlations.a.b", "a": "a", "b": "b", "r": 2}]),
        ("kpis/candidates", [{"type": "segment", "key": "k", "score": 0.5}]),
        ("kpis/roles", [{"name": "x", "role": "measure", "reason": "r"}]),  # not a final role
        ("kpis/timeAxis", {"name": "date"}),
        ("kpis/columns/0/role", "metric"),
        ("jobId", "not-a-job-id"),
        ("file/sha256", "abc"),
    ],
)
def test_schema_refuses_what_the_contract_does_not_allow(path: str, value: Any) -> None:
    result = _result(DATA / "sales.csv")
    check_result(result)
    broken = copy.deepcopy(result)
    _set(broken, path, value)
    with pytest.raises(AssertionError, match="does not match"):
        check_result(broken)


def test_a_missing_required_key_is_refused() -> None:
    result = _result(DATA / "sales.csv")
    del result["kpis"]["alerts"]
    with pytest.raises(AssertionError, match="'alerts' is a required property"):
        check_result(result)


def test_schema_is_valid_json_schema_with_an_id() -> None:
    schema = json.loads(RESULT_SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {
        "jobId",
        "schemaVersion",
        "file",
        "kpis",
        "charts",
        "insights",
        "insightsSource",
        "model",
    }
