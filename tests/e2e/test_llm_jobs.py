"""Jobs through the whole stack with an LLM that half-lies, then one that fails: jobs complete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc

from devstack.stack import Stack, StackConfig
from tests.support.api import checked_client, upload, wait_terminal
from tests.support.fake_llm import FakeLlm, Reply, completion

SALES_CSV = Path(__file__).resolve().parents[1] / "data" / "sales.csv"
JOBS_WHILE_FAILING = 8


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def llm_stack(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeLlm) -> Iterator[Stack]:
    env = {
        "OPENROUTER_API_KEY": "sk-e2e-llm-0000000000",
        "LLM_BASE_URL": fake_llm.base_url,
        "RETRY_INITIAL_DELAY": "0.02",
        "RETRY_MAX_DELAY": "0.05",
        "BLOB_BACKEND": "fs",
        "LOG_LEVEL": "INFO",
    }
    stack = Stack(StackConfig(run_dir=tmp_path_factory.mktemp("llm-stack"), env=env))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def client(llm_stack: Stack) -> Iterator[httpx.Client]:
    with checked_client(llm_stack.gateway_url, timeout=30) as http:
        yield http


def _half_true_answer(body: Any) -> Reply:
    """One insight stating the report's real row count, one inventing a growth rate."""
    report = json.loads(body["messages"][1]["content"])
    rows = report["dataset"]["rows"]
    insights = [
        {
            "title": "Rows",
            "text": f"The file holds {rows:,} rows.",
            "evidence": ["dataset.rows"],
            "severity": "info",
        },
        {
            "title": "Growth",
            "text": "Revenue grew 4,321.987% quarter over quarter.",
            "evidence": ["dataset.rows"],
            "severity": "info",
        },
    ]
    return completion("<think>draft 99</think>" + json.dumps({"insights": insights}))


def _result(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    done = wait_terminal(client, job["jobId"])
    assert done["status"] == "completed", done
    response = client.get(done["resultUrl"])
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def test_result_shows_the_source_of_each_insight(client: httpx.Client, fake_llm: FakeLlm) -> None:
    fake_llm.script(_half_true_answer)
    result = _result(client, upload(client, "sales.csv", SALES_CSV.read_bytes()))
    assert result["insightsSource"] == "mixed"
    sources = [i["source"] for i in result["insights"]]
    assert sources == ["llm", "fallback"]
    rows = result["kpis"]["dataset"]["rows"]
    assert result["insights"][0]["text"] == f"The file holds {rows:,} rows."
    assert not any("4,321.987" in i["text"] for i in result["insights"])
    (request,) = fake_llm.requests
    assert json.loads(request["body"]["messages"][1]["content"]) == result["kpis"]


def test_with_the_llm_failing_every_job_completes_with_fallback_insights(
    client: httpx.Client, fake_llm: FakeLlm, llm_stack: Stack
) -> None:
    fake_llm.script(Reply(503, {"error": {"message": "overloaded"}}))
    # Distinct files (distinct KPI reports): the insight cache cannot answer for the LLM.
    base = SALES_CSV.read_bytes().rstrip(b"\n")
    jobs = [
        upload(client, f"sales-{n}.csv", base + f"\n2025-12-31,East,Widget,{n + 1},1.00\n".encode())
        for n in range(JOBS_WHILE_FAILING)
    ]
    for job in jobs:
        result = _result(client, job)
        assert result["insightsSource"] == "fallback"
        assert result["model"] == "fallback"
        assert result["insights"]
        assert all(i["source"] == "fallback" for i in result["insights"])
    # The breaker opened after 5 failed calls (2 attempts each); a call admitted while
    # the 5th failure was on its way may add one more.
    assert 10 <= len(fake_llm.requests) <= 12
    with grpc.insecure_channel(llm_stack.addresses["llm"]) as channel:
        state = llm_pb2_grpc.LlmServiceStub(channel).GetCircuitState(
            llm_pb2.GetCircuitStateRequest(), timeout=5
        )
    assert state.state == llm_pb2.CIRCUIT_STATE_OPEN
