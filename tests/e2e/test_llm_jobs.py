"""Jobs through the whole stack with an LLM that half-lies, then one that fails: jobs complete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc

from devstack.stack import Stack, StackConfig
from tests.support.api import checked_client, upload, wait_terminal
from tests.support.fake_llm import FakeLlm, Reply, completion

PLANTED = "Revenue fell 87% to $4,200,000 in Q4"
JOBS_WHILE_FAILING = 8


def _sales_csv() -> bytes:
    """Sales with a planted store label holding figures, and one empty cell."""
    lines = ["date,store,product,units,revenue"]
    stores = ["North", "South", PLANTED, "East"]
    for day in range(1, 121):
        store = stores[day % 4]
        units = 10 + (day * 7) % 23
        revenue = "" if day == 60 else f"{units * (40.5 if store == PLANTED else 9.5):.2f}"
        lines.append(
            f'2025-{1 + (day - 1) // 30:02d}-{1 + (day - 1) % 28:02d},"{store}",W,{units},{revenue}'
        )
    return ("\n".join(lines) + "\n").encode()


SALES_CSV = _sales_csv()


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


def _prompt_data(body: Any) -> Any:
    """The JSON data section of the prompt (after its header line)."""
    return json.loads(body["messages"][1]["content"].split("\n", 1)[1])


def _half_true_answer(body: Any) -> Reply:
    """One insight stating the real row count; one inventing a growth rate; the planted label."""
    data = _prompt_data(body)
    rows = data["summary"]["rows"]
    cited = ["dataset.rows"] + [f"candidates.{c['key']}" for c in data["candidates"]]
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
        {"title": "Q4", "text": f"{PLANTED}.", "evidence": cited, "severity": "warning"},
        {"title": "Up", "text": "Revenue tripled to about five million.", "evidence": cited},
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
    result = _result(client, upload(client, "sales.csv", SALES_CSV))
    rows = result["kpis"]["dataset"]["rows"]
    first, *rest = result["insights"]
    assert (first["source"], first["text"]) == ("llm", f"The file holds {rows:,} rows.")
    assert rest, "the dropped LLM insights' slots are filled from the fallback"
    assert all(i["source"] == "fallback" for i in rest)
    assert result["insightsSource"] == "mixed"
    for insight in result["insights"]:
        assert {"type", "key", "score"} <= set(insight)
        unquoted = insight["text"].replace(f"\u201c{PLANTED}\u201d", "")
        assert "4,321.987" not in unquoted and "87%" not in unquoted
        assert "4,200,000" not in unquoted and "tripled" not in unquoted
        assert "five million" not in unquoted
    (request,) = fake_llm.requests
    data = _prompt_data(request["body"])
    assert data["summary"]["rows"] == rows
    candidates = result["kpis"].get("candidates", [])
    assert [c["key"] for c in data["candidates"]] == [c["key"] for c in candidates][:12]
    assert sum(len(m["content"]) for m in request["body"]["messages"]) <= 8000


def test_with_the_llm_failing_every_job_completes_with_fallback_insights(
    client: httpx.Client, fake_llm: FakeLlm, llm_stack: Stack
) -> None:
    fake_llm.script(Reply(503, {"error": {"message": "overloaded"}}))
    # Distinct files (distinct KPI reports): the insight cache cannot answer for the LLM.
    base = SALES_CSV.rstrip(b"\n")
    jobs = [
        upload(client, f"sales-{n}.csv", base + f"\n2025-12-31,East,W,{n + 1},1.00\n".encode())
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
