"""llm_svc as a real process against a fake OpenAI-compatible server: every fault, and grounding."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc

from datapilot_runtime.grpc_errors import ERROR_CODE_METADATA_KEY
from tests.support.fake_llm import (
    FakeLlm,
    LlmProcess,
    Reply,
    completion,
    drop,
    hang,
    insights_reply,
)

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
        {
            "name": "region",
            "type": "categorical",
            "missing": 0,
            "missingPct": 0.0,
            "distinct": 3,
            "topValues": [{"value": "North", "count": 60, "share": 0.5}],
        },
    ],
}
GOOD_INSIGHT = {
    "title": "Revenue",
    "text": "Revenue totals 5,000.50.",
    "evidence": ["columns.revenue.numeric.sum"],
    "severity": "info",
}
GOOD_ANSWER = {"insights": [GOOD_INSIGHT]}
INVENTED_INSIGHT = {
    "title": "Growth",
    "text": "Revenue grew 23% year over year.",
    "evidence": ["columns.revenue.numeric.sum"],
    "severity": "info",
}
API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def llm_svc(fake_llm: FakeLlm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmProcess]:
    """No Redis reachable (cache off) and a breaker that never opens in this module."""
    process = LlmProcess.start(
        Path(tmp_path_factory.mktemp("llm")),
        {
            "OPENROUTER_API_KEY": API_KEY,
            "LLM_BASE_URL": fake_llm.base_url,
            "RETRY_INITIAL_DELAY": "0.01",
            "RETRY_MAX_DELAY": "0.05",
            "LLM_MIN_ATTEMPT_SECONDS": "0.1",
            "LLM_CIRCUIT_THRESHOLD": "1000",
        },
    )
    try:
        yield process
    finally:
        assert process.stop() == 0
        log = process.log_text()
        assert API_KEY not in log, "the API key reached the logs"
        assert "You are a careful business data analyst" not in log, "a prompt reached the logs"


@pytest.fixture(scope="module")
def llm_stub(llm_svc: LlmProcess) -> Iterator[llm_pb2_grpc.LlmServiceStub]:
    with grpc.insecure_channel(llm_svc.address) as channel:
        yield llm_pb2_grpc.LlmServiceStub(channel)


def _ask(
    stub: llm_pb2_grpc.LlmServiceStub, timeout: float = 10, report: Any = None
) -> llm_pb2.GenerateInsightsResponse:
    payload = json.dumps(REPORT if report is None else report).encode()
    response: llm_pb2.GenerateInsightsResponse = stub.GenerateInsights(
        llm_pb2.GenerateInsightsRequest(kpi_report_json=payload), timeout=timeout
    )
    return response


def test_llm_answer_is_used_and_reasoning_dropped(
    fake_llm: FakeLlm, llm_stub: llm_pb2_grpc.LlmServiceStub
) -> None:
    fake_llm.script(
        completion(
            "<think>secret reasoning 123</think>" + json.dumps(GOOD_ANSWER),
            reasoning="more secret reasoning 456",
        )
    )
    response = _ask(llm_stub)
    assert response.source == llm_pb2.INSIGHT_SOURCE_LLM
    assert response.model == "deepseek/deepseek-r1"
    assert [i.text for i in response.insights] == ["Revenue totals 5,000.50."]
    assert response.insights[0].source == llm_pb2.INSIGHT_SOURCE_LLM
    assert list(response.insights[0].evidence) == ["columns.revenue.numeric.sum"]
    (request,) = fake_llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert request["headers"]["X-Title"] == "DataPilot"
    assert request["body"]["model"] == "deepseek/deepseek-r1"
    assert request["body"]["response_format"] == {"type": "json_object"}
    # Only the aggregates are sent.
    assert json.loads(request["body"]["messages"][1]["content"]) == REPORT


@pytest.mark.parametrize(
    ("replies", "attempts"),
    [
        ([Reply(500, {"error": "boom"})], 2),
        ([Reply(502, {"error": "bad gateway"})], 2),
        ([Reply(503, {"error": "unavailable"})], 2),
        ([Reply(429, {"error": "slow down"}, {"Retry-After": "0.02"})], 2),
        ([Reply(401, {"error": "unauthorized"})], 2),
        ([Reply(403, {"error": "forbidden"})], 2),
        ([Reply(400, {"error": "bad"})], 1),
        ([drop()], 2),
        ([completion("not json at all")], 1),
        ([Reply(200, raw=b'{"choices": [')], 1),
        ([completion("")], 1),
        ([completion("<think>all thinking, no answer</think>")], 1),
        ([Reply(200, {"error": {"message": "upstream"}})], 1),
    ],
    ids=[
        "500-retried",
        "502-retried",
        "503-retried",
        "429-retry-after",
        "401-retried-once",
        "403-retried-once",
        "400-not-retried",
        "connection-dropped",
        "malformed-content",
        "malformed-body",
        "empty",
        "think-only",
        "error-body",
    ],
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
    assert response.model == "fallback"
    assert response.insights
    assert all(i.source == llm_pb2.INSIGHT_SOURCE_FALLBACK for i in response.insights)
    assert len(fake_llm.requests) == attempts


def test_a_transient_failure_then_an_answer_is_an_llm_answer(
    fake_llm: FakeLlm, llm_stub: llm_pb2_grpc.LlmServiceStub
) -> None:
    fake_llm.script(Reply(503, {}), completion(json.dumps(GOOD_ANSWER)))
    assert _ask(llm_stub).source == llm_pb2.INSIGHT_SOURCE_LLM
    assert len(fake_llm.requests) == 2


def test_a_slow_answer_within_the_deadline_is_used(
    fake_llm: FakeLlm, llm_stub: llm_pb2_grpc.LlmServiceStub
) -> None:
    fake_llm.script(Reply(200, completion(json.dumps(GOOD_ANSWER)).body, delay=0.4))
    started = time.monotonic()
    response = _ask(llm_stub, timeout=3)
    assert response.source == llm_pb2.INSIGHT_SOURCE_LLM
    assert time.monotonic() - started >= 0.4


def test_a_hang_past_the_deadline_answers_from_the_fallback_in_time(
    fake_llm: FakeLlm, llm_stub: llm_pb2_grpc.LlmServiceStub
) -> None:
    fake_llm.script(hang())
    response = _ask(llm_stub, timeout=1.0)  # no DEADLINE_EXCEEDED: the fallback is in time
    assert response.source == llm_pb2.INSIGHT_SOURCE_FALLBACK
    assert len(fake_llm.requests) == 1  # no retry that could not finish in time
    fake_llm.wait_disconnects(1, timeout=2)  # the hanging request was aborted


def test_cancelling_the_grpc_call_aborts_the_http_request(
    fake_llm: FakeLlm, llm_stub: llm_pb2_grpc.LlmServiceStub, llm_svc: LlmProcess
) -> None:
    before = llm_stub.GetCircuitState(llm_pb2.GetCircuitStateRequest(), timeout=5)
    fake_llm.script(hang())
    request = llm_pb2.GenerateInsightsRequest(kpi_report_json=json.dumps(REPORT).encode())
    call = llm_stub.GenerateInsights.future(request, timeout=30)
    fake_llm.wait_requests(1)
    call.cancel()
    # The hang would last until the call's 30 s deadline: a disconnect now is the cancel's.
    fake_llm.wait_disconnects(1, timeout=5)
    assert len(fake_llm.requests) == 1
    after = llm_stub.GetCircuitState(llm_pb2.GetCircuitStateRequest(), timeout=5)
    assert after.failures_in_window == before.failures_in_window  # a cancel is no failure


def test_an_insight_citing_a_number_not_in_the_kpis_is_replaced(
    fake_llm: FakeLlm, llm_stub: llm_pb2_grpc.LlmServiceStub
) -> None:
    fake_llm.script(insights_reply(GOOD_INSIGHT, INVENTED_INSIGHT))
    response = _ask(llm_stub)
    assert response.source == llm_pb2.INSIGHT_SOURCE_MIXED
    texts = [i.text for i in response.insights]
    assert texts[0] == "Revenue totals 5,000.50."
    assert not any("23%" in t for t in texts)
    sources = [i.source for i in response.insights]
    assert sources == [llm_pb2.INSIGHT_SOURCE_LLM, llm_pb2.INSIGHT_SOURCE_FALLBACK]
    # The replacement is about another KPI than the kept LLM insight.
    assert "columns.revenue.numeric.sum" not in response.insights[1].evidence


def test_only_ungrounded_insights_give_a_fallback_answer(
    fake_llm: FakeLlm, llm_stub: llm_pb2_grpc.LlmServiceStub
) -> None:
    unknown_key = {**GOOD_INSIGHT, "evidence": ["columns.profit.numeric.sum"]}
    no_evidence = {**GOOD_INSIGHT, "evidence": []}
    fake_llm.script(insights_reply(INVENTED_INSIGHT, unknown_key, no_evidence))
    response = _ask(llm_stub)
    assert response.source == llm_pb2.INSIGHT_SOURCE_FALLBACK
    assert response.model == "fallback"
    assert all(i.source == llm_pb2.INSIGHT_SOURCE_FALLBACK for i in response.insights)


def test_invalid_report_is_invalid_argument(llm_stub: llm_pb2_grpc.LlmServiceStub) -> None:
    for payload in (b"[1", b"[1, 2]", b"\xff"):
        with pytest.raises(grpc.RpcError) as info:
            llm_stub.GenerateInsights(
                llm_pb2.GenerateInsightsRequest(kpi_report_json=payload), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        trailing = dict(info.value.trailing_metadata() or ())
        assert trailing.get(ERROR_CODE_METADATA_KEY) == "invalid_report"


def test_started_without_redis_and_said_so_once(llm_svc: LlmProcess) -> None:
    messages = [r.get("message", "") for r in llm_svc.log_records()]
    assert sum("insight cache is disabled" in m for m in messages) == 1


def test_without_api_key_insights_come_from_the_fallback(fake_llm: FakeLlm, tmp_path: Path) -> None:
    process = LlmProcess.start(
        tmp_path, {"OPENROUTER_API_KEY": "", "LLM_BASE_URL": fake_llm.base_url}
    )
    try:
        fake_llm.script(completion(json.dumps(GOOD_ANSWER)))
        with grpc.insecure_channel(process.address) as channel:
            response = _ask(llm_pb2_grpc.LlmServiceStub(channel))
        assert response.source == llm_pb2.INSIGHT_SOURCE_FALLBACK
        assert fake_llm.requests == []
    finally:
        assert process.stop() == 0
