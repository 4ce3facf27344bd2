"""The circuit breaker and the insight cache over real llm_svc processes, alone and via Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc

from devstack.processes import free_port
from tests.support.fake_llm import FakeLlm, LlmProcess, Reply, completion
from tests.support.servers import RunningServer

REPORT = {
    "schemaVersion": "1.0",
    "dataset": {"rows": 50, "columns": 1, "missingCells": 0, "duplicateRows": 0},
    "columns": [
        {
            "name": "units",
            "type": "numeric",
            "missing": 0,
            "missingPct": 0.0,
            "numeric": {"sum": 250.0, "mean": 5.0, "median": 5.0},
        }
    ],
}
GOOD = completion(
    json.dumps(
        {
            "insights": [
                {
                    "title": "Rows",
                    "text": "The file holds 50 rows.",
                    "evidence": ["dataset.rows"],
                }
            ]
        }
    )
)
COOLDOWN = 0.6
BASE_ENV = {
    "OPENROUTER_API_KEY": "sk-breaker-test-000000",
    "RETRY_INITIAL_DELAY": "0.01",
    "RETRY_MAX_DELAY": "0.02",
    "LLM_CIRCUIT_COOLDOWN": str(COOLDOWN),
    "LLM_MIN_ATTEMPT_SECONDS": "0.1",
}


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm().start()
    yield fake
    fake.stop()


@pytest.fixture()
def start(tmp_path: Path, fake_llm: FakeLlm) -> Iterator[Any]:
    started: list[LlmProcess] = []

    def run(**env: str) -> tuple[LlmProcess, llm_pb2_grpc.LlmServiceStub]:
        process = LlmProcess.start(tmp_path, {**BASE_ENV, "LLM_BASE_URL": fake_llm.base_url, **env})
        started.append(process)
        channel = grpc.insecure_channel(process.address)
        channels.append(channel)
        return process, llm_pb2_grpc.LlmServiceStub(channel)

    channels: list[grpc.Channel] = []
    yield run
    for channel in channels:
        channel.close()
    codes = [process.stop() for process in started]
    assert codes == [0] * len(started)


def _ask(stub: llm_pb2_grpc.LlmServiceStub, report: Any = None) -> llm_pb2.GenerateInsightsResponse:
    payload = json.dumps(REPORT if report is None else report).encode()
    response: llm_pb2.GenerateInsightsResponse = stub.GenerateInsights(
        llm_pb2.GenerateInsightsRequest(kpi_report_json=payload), timeout=10
    )
    return response


def _state(stub: llm_pb2_grpc.LlmServiceStub) -> llm_pb2.GetCircuitStateResponse:
    response: llm_pb2.GetCircuitStateResponse = stub.GetCircuitState(
        llm_pb2.GetCircuitStateRequest(), timeout=5
    )
    return response


def _transitions(process: LlmProcess) -> list[str]:
    return [
        str(r["circuit_state"])
        for r in process.log_records()
        if "circuit breaker is now" in str(r.get("message", ""))
    ]


def _wait_half_open(state: llm_pb2.GetCircuitStateResponse) -> None:
    time.sleep(max(0.0, state.half_open_at.ToNanoseconds() / 1e9 - time.time()) + 0.02)


def test_breaker_timeline_in_one_process(fake_llm: FakeLlm, start: Any) -> None:
    process, stub = start()
    fake_llm.script(Reply(500, {"error": "down"}))
    for _ in range(5):
        assert _ask(stub).source == llm_pb2.INSIGHT_SOURCE_FALLBACK
    assert len(fake_llm.requests) == 10  # 5 calls x 2 attempts
    state = _state(stub)
    assert state.state == llm_pb2.CIRCUIT_STATE_OPEN and state.failures_in_window == 5
    assert not state.shared
    assert 0 < state.half_open_at.ToNanoseconds() / 1e9 - time.time() <= COOLDOWN

    # Open: the fallback, the network untouched (how fast is a benchmark's question).
    for _ in range(20):
        assert _ask(stub).source == llm_pb2.INSIGHT_SOURCE_FALLBACK
    assert len(fake_llm.requests) == 10

    # Half-open: one probe, a single attempt; its failure opens the breaker again.
    _wait_half_open(state)
    assert _state(stub).state == llm_pb2.CIRCUIT_STATE_HALF_OPEN
    fake_llm.script(Reply(503, {}))
    assert _ask(stub).source == llm_pb2.INSIGHT_SOURCE_FALLBACK
    assert len(fake_llm.requests) == 1
    state = _state(stub)
    assert state.state == llm_pb2.CIRCUIT_STATE_OPEN

    # The next probe succeeds and closes it.
    _wait_half_open(state)
    fake_llm.script(GOOD)
    assert _ask(stub).source == llm_pb2.INSIGHT_SOURCE_LLM
    state = _state(stub)
    assert state.state == llm_pb2.CIRCUIT_STATE_CLOSED and state.failures_in_window == 0
    assert not state.HasField("half_open_at")
    assert _transitions(process) == ["open", "half_open", "open", "half_open", "closed"]


def test_shared_breaker_opens_and_closes_every_replica(
    fake_llm: FakeLlm, start: Any, redis_server: RunningServer
) -> None:
    env = {
        "REDIS_URL": redis_server.url,
        "LLM_CIRCUIT_SHARED": "true",
        "LLM_REDIS_PREFIX": f"test:{uuid.uuid4().hex}",
        "LLM_CACHE_TTL_SECONDS": "0",
    }
    first, first_stub = start(**env)
    second, second_stub = start(**env)
    fake_llm.script(Reply(502, {}))
    for stub in (first_stub, second_stub, first_stub, second_stub, first_stub):
        assert _ask(stub).source == llm_pb2.INSIGHT_SOURCE_FALLBACK
    state = _state(second_stub)
    assert state.state == llm_pb2.CIRCUIT_STATE_OPEN and state.shared
    assert state.failures_in_window == 5
    requests = len(fake_llm.requests)
    assert _ask(second_stub).source == llm_pb2.INSIGHT_SOURCE_FALLBACK
    assert len(fake_llm.requests) == requests

    # Half-open across replicas: of two simultaneous calls exactly one probes.
    _wait_half_open(state)
    fake_llm.script(Reply(200, GOOD.body, delay=0.3))
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(_ask, [first_stub, second_stub]))
    assert sorted(a.source for a in answers) == [
        llm_pb2.INSIGHT_SOURCE_LLM,
        llm_pb2.INSIGHT_SOURCE_FALLBACK,
    ]
    assert len(fake_llm.requests) == 1
    for stub in (first_stub, second_stub):
        assert _state(stub).state == llm_pb2.CIRCUIT_STATE_CLOSED
    # Each transition is logged once across both replicas.
    assert sorted(_transitions(first) + _transitions(second)) == ["closed", "half_open", "open"]


def test_shared_breaker_without_redis_fails_fast(tmp_path: Path) -> None:
    process = LlmProcess.start(
        tmp_path,
        {
            **BASE_ENV,
            "LLM_CIRCUIT_SHARED": "true",
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        },
        wait=False,
    )
    assert process.process.process is not None
    assert process.process.process.wait(30) == 1
    process.stop()
    assert any("cannot start" in str(r.get("message")) for r in process.log_records())


def test_identical_requests_are_answered_from_the_cache(
    fake_llm: FakeLlm, start: Any, redis_server: RunningServer
) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    _process, stub = start(
        REDIS_URL=redis_server.url, LLM_CACHE_TTL_SECONDS="60", LLM_REDIS_PREFIX=prefix
    )
    fake_llm.script(GOOD)
    first = _ask(stub)
    assert first.source == llm_pb2.INSIGHT_SOURCE_LLM
    reordered = json.loads(json.dumps(REPORT, sort_keys=True))
    fake_llm.script(Reply(500, {}))
    assert _ask(stub, reordered) == first  # same report, other key order: the cache
    assert fake_llm.requests == []
    other = {**REPORT, "dataset": {**REPORT["dataset"], "rows": 51}}  # type: ignore[dict-item]
    assert _ask(stub, other).source == llm_pb2.INSIGHT_SOURCE_FALLBACK
    assert len(fake_llm.requests) == 2
    client = redis.Redis.from_url(redis_server.url)
    try:
        keys = client.keys(f"{prefix}:insights:*")
        assert len(keys) == 1
        assert 0 < int(client.ttl(keys[0])) <= 60
    finally:
        client.close()
