"""llm_svc as a real process against a fake OpenAI-compatible server: LLM answers and fallback."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc

from deploy.local.processes import ManagedProcess, free_port, wait_grpc_serving
from tests.support.fake_llm import FakeLlm, Reply, completion

REPORT = {
    "schemaVersion": "1.0",
    "dataset": {
        "format": "csv",
        "rows": 120,
        "columns": 2,
        "missingCells": 0,
        "missingCellsPct": 0.0,
        "duplicateRows": 0,
    },
    "columns": [
        {
            "name": "revenue",
            "type": "numeric",
            "missing": 0,
            "missingPct": 0.0,
            "distinct": 100,
            "numeric": {
                "sum": 5000.5,
                "mean": 41.67,
                "median": 40.0,
                "min": 1.0,
                "max": 99.0,
                "std": 10.0,
            },
        },
    ],
}
GOOD_ANSWER = {
    "insights": [
        {
            "title": "Revenue",
            "text": "Revenue totals 5,000.50.",
            "evidence": ["columns.revenue.numeric.sum"],
            "severity": "info",
        }
    ]
}
API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def llm_stub(
    fake_llm: FakeLlm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[llm_pb2_grpc.LlmServiceStub]:
    address = f"127.0.0.1:{free_port()}"
    log = Path(tmp_path_factory.mktemp("llm")) / "llm.log"
    env = {
        **os.environ,
        "GRPC_LISTEN_ADDR": address,
        "OPENROUTER_API_KEY": API_KEY,
        "LLM_BASE_URL": fake_llm.base_url,
        "RETRY_INITIAL_DELAY": "0.01",
        "RETRY_MAX_DELAY": "0.02",
    }
    process = ManagedProcess("llm", [sys.executable, "-m", "llm_svc"], env, log)
    process.start()
    try:
        wait_grpc_serving(address, 30, process)
        with grpc.insecure_channel(address) as channel:
            yield llm_pb2_grpc.LlmServiceStub(channel)
    finally:
        assert process.stop() == 0
        assert API_KEY not in log.read_text(), "the API key reached the logs"


def _ask(stub: llm_pb2_grpc.LlmServiceStub) -> llm_pb2.GenerateInsightsResponse:
    request = llm_pb2.GenerateInsightsRequest(kpi_report_json=json.dumps(REPORT).encode())
    response: llm_pb2.GenerateInsightsResponse = stub.GenerateInsights(request, timeout=10)
    return response


def test_llm_answer_is_used_and_reasoning_dropped(
    fake_llm: FakeLlm, llm_stub: llm_pb2_grpc.LlmServiceStub
) -> None:
    fake_llm.script(completion("<think>secret reasoning 123</think>" + json.dumps(GOOD_ANSWER)))
    response = _ask(llm_stub)
    assert response.source == llm_pb2.INSIGHT_SOURCE_LLM
    assert [i.text for i in response.insights] == ["Revenue totals 5,000.50."]
    assert "reasoning" not in response.insights[0].text
    (request,) = fake_llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert request["body"]["model"] == "deepseek/deepseek-r1"
    assert json.loads(request["body"]["messages"][1]["content"]) == REPORT


@pytest.mark.parametrize(
    ("replies", "attempts"),
    [
        ([Reply(500, {"error": "boom"})], 2),
        ([Reply(400, {"error": "bad"})], 1),
        ([completion("not json at all")], 1),
        ([completion("")], 1),
        ([Reply(200, {"error": {"message": "upstream"}})], 1),
    ],
    ids=["500-retried", "400-not-retried", "malformed", "empty", "error-body"],
)
def test_failures_fall_back_to_deterministic_insights(
    fake_llm: FakeLlm,
    llm_stub: llm_pb2_grpc.LlmServiceStub,
    replies: list[Reply],
    attempts: int,
) -> None:
    fake_llm.script(*replies)
    response = _ask(llm_stub)
    assert response.source == llm_pb2.INSIGHT_SOURCE_FALLBACK
    assert response.insights
    assert len(fake_llm.requests) == attempts


def test_invalid_report_is_invalid_argument(llm_stub: llm_pb2_grpc.LlmServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        llm_stub.GenerateInsights(llm_pb2.GenerateInsightsRequest(kpi_report_json=b"[1"), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
