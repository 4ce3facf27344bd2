"""A real file through gateway -> ingest_svc -> worker -> llm_svc -> result.json, both backends."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import grpc
import httpx
import pandas as pd
import pytest
from datapilot.analysis.v1 import analysis_pb2, analysis_pb2_grpc

from devstack.stack import Stack
from tests.support.api import INTERNAL_CALLER, upload, wait_terminal

SALES_CSV = Path(__file__).resolve().parents[1] / "data" / "sales.csv"


def _columns(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result["kpis"]["columns"]}


def _assert_matches_pandas(
    result: dict[str, Any], frame: pd.DataFrame, types: dict[str, str]
) -> None:
    """Each column has the type given in `types`, and its facts are what pandas computes."""
    dataset = result["kpis"]["dataset"]
    assert dataset["rows"] == len(frame)
    assert dataset["columns"] == len(frame.columns)
    columns = _columns(result)
    assert list(columns) == [str(c) for c in frame.columns]
    assert {name: facts["type"] for name, facts in columns.items()} == types
    for name in frame.columns:
        series, facts = frame[name], columns[str(name)]
        assert facts["missing"] == int(series.isna().sum())
        assert facts["distinct"] == int(series.nunique(dropna=True))
        if facts["type"] == "numeric" and facts["role"] in ("additive", "non_additive", "stock"):
            numeric = facts["numeric"]
            if facts["role"] == "additive":  # totals of additive measures only (schema 3.0)
                assert math.isclose(numeric["sum"], float(series.sum()), rel_tol=1e-9)
            else:
                assert numeric["sum"] is None
            assert math.isclose(numeric["mean"], float(series.mean()), rel_tol=1e-9)
            assert math.isclose(numeric["median"], float(series.median()), rel_tol=1e-9)
            assert numeric["min"] == float(series.min())
            assert numeric["max"] == float(series.max())
        if facts["type"] == "categorical":
            counts = series.value_counts()
            top = facts["topValues"][0]
            assert top["count"] == int(counts.iloc[0])
            assert counts[top["value"]] == top["count"]


def test_csv_upload_completes_with_kpis_checked_against_pandas(client: httpx.Client) -> None:
    job = upload(client, "sales.csv", SALES_CSV.read_bytes())
    assert job["status"] == "queued"
    assert job["timeoutAt"] > job["createdAt"]
    done = wait_terminal(client, job["jobId"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100
    assert done["resultUrl"] == f"/api/jobs/{job['jobId']}/result"
    assert done["startedAt"] and done["finishedAt"]
    response = client.get(done["resultUrl"])
    assert response.status_code == 200
    result = response.json()
    assert result["jobId"] == job["jobId"]
    frame = pd.read_csv(SALES_CSV)
    types = {
        "date": "datetime",
        "region": "categorical",
        "product": "categorical",
        "units": "numeric",
        "revenue": "numeric",
    }
    _assert_matches_pandas(result, frame, types)
    assert result["insightsSource"] == "fallback"
    assert result["insights"] and all(i["source"] == "fallback" for i in result["insights"])


def test_xlsx_upload_completes(client: httpx.Client) -> None:
    frame = pd.DataFrame(
        {
            "city": ["Oslo", "Bergen", "Oslo", "Tromsø", "Oslo", "Bergen"],
            "visitors": [120, 80, 95, 30, 110, 70],
            "rating": [4.5, 4.0, None, 3.5, 4.8, 4.1],
        }
    )
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False, engine="openpyxl")
    job = upload(client, "visitors.xlsx", buffer.getvalue())
    done = wait_terminal(client, job["jobId"])
    assert done["status"] == "completed", done
    result = client.get(done["resultUrl"]).json()
    assert result["kpis"]["dataset"]["format"] == "xlsx"
    types = {"city": "categorical", "visitors": "numeric", "rating": "numeric"}
    _assert_matches_pandas(result, frame, types)
    assert _columns(result)["rating"]["missing"] == 1


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("empty.csv", b""),
        ("broken.xlsx", b"PK\x03\x04" + bytes(range(256)) * 20),
        ("ragged.csv", b"a,b\n1,2\n3,4,5,6,7\n8,9\n"),
    ],
    ids=["empty", "zip-not-xlsx", "ragged"],
)
def test_unreadable_file_fails_with_invalid_input_and_error_json(
    client: httpx.Client, filename: str, content: bytes
) -> None:
    job = upload(client, filename, content)
    done = wait_terminal(client, job["jobId"])
    assert done["status"] == "failed"
    assert done["error"] == "invalid_input"
    assert done["errorMessage"]
    assert done["resultUrl"] is None
    error = client.get(f"/api/jobs/{job['jobId']}/error")
    assert error.status_code == 200
    document = error.json()
    assert document == {
        "jobId": job["jobId"],
        "status": "failed",
        "error": "invalid_input",
        "message": done["errorMessage"],
        "timestamp": document["timestamp"],
    }
    missing = client.get(f"/api/jobs/{job['jobId']}/result")
    assert missing.status_code == 409
    assert missing.headers["content-type"] == "application/problem+json"


def test_analyze_rpc_for_internal_callers(stack: Stack, client: httpx.Client) -> None:
    job = upload(client, "sales.csv", SALES_CSV.read_bytes())
    with grpc.insecure_channel(stack.addresses["analysis"]) as channel:
        stub = analysis_pb2_grpc.AnalysisServiceStub(channel)
        # An internal caller names INTERNAL_TENANT: a call naming no tenant is refused.
        reply = stub.Analyze(
            analysis_pb2.AnalyzeRequest(job_id=job["jobId"]), timeout=30, metadata=INTERNAL_CALLER
        )
        assert json.loads(reply.kpi_report_json)["dataset"]["rows"] == 120
        with pytest.raises(grpc.RpcError) as info:
            stub.Analyze(
                analysis_pb2.AnalyzeRequest(job_id="0" * 32), timeout=30, metadata=INTERNAL_CALLER
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_result_is_valid_json_without_nan(client: httpx.Client) -> None:
    job = upload(client, "gaps.csv", b"a,b,c\n1,,x\n2,,y\n,,\n4,,x\n")
    done = wait_terminal(client, job["jobId"])
    assert done["status"] == "completed", done
    raw = client.get(done["resultUrl"]).text
    json.loads(raw, parse_constant=lambda name: pytest.fail(f"{name} in result.json"))
