"""llm_svc latency: GenerateInsights with the breaker open, and what it adds over a direct call."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import grpc
import httpx
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc

from bench.figures import BenchContext, Figure, percentile
from devstack.processes import free_port, redis_process, wait_tcp
from llm_svc.llm_client import SYSTEM_PROMPT
from tests.support.fake_llm import FakeLlm, LlmProcess, Reply, completion
from tests.support.sample_report import sample_report

OPEN_CALLS = 2000
ADDED_CALLS = 600
WARMUP_CALLS = 100
REPORT = sample_report()
ANSWER = {
    "insights": [
        {
            "title": "Revenue",
            "text": "Revenue totals 123,456.79 with a median of 99.5.",
            "evidence": ["columns.revenue.numeric.sum", "columns.revenue.numeric.median"],
            "severity": "info",
        },
        {
            "title": "North leads",
            "text": "North holds 41.7% of rows (500).",
            "evidence": ["columns.region.topValues.0"],
            "severity": "info",
        },
    ]
}


def _timed(call: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _stub_call(stub: llm_pb2_grpc.LlmServiceStub, expect: int) -> Callable[[], object]:
    request = llm_pb2.GenerateInsightsRequest(kpi_report_json=json.dumps(REPORT).encode())

    def call() -> object:
        response = stub.GenerateInsights(request, timeout=10)
        if response.source != expect:
            raise RuntimeError(f"unexpected insight source {response.source}")
        return response

    return call


def _breaker_open(ctx: BenchContext, fake: FakeLlm, redis_url: str) -> Figure:
    fake.script(Reply(500, {"error": "down"}))
    process = LlmProcess.start(
        ctx.work_dir / "open",
        {
            "OPENROUTER_API_KEY": "sk-bench-000000000000",
            "LLM_BASE_URL": fake.base_url,
            "REDIS_URL": redis_url,
            "LLM_CIRCUIT_THRESHOLD": "1",
            "LLM_CIRCUIT_COOLDOWN": "3600",
            "RETRY_INITIAL_DELAY": "0.01",
            "LOG_LEVEL": "WARNING",
        },
    )
    try:
        with grpc.insecure_channel(process.address) as channel:
            stub = llm_pb2_grpc.LlmServiceStub(channel)
            call = _stub_call(stub, llm_pb2.INSIGHT_SOURCE_FALLBACK)
            call()  # the one failure that opens the breaker
            state = stub.GetCircuitState(llm_pb2.GetCircuitStateRequest(), timeout=5)
            if state.state != llm_pb2.CIRCUIT_STATE_OPEN:
                raise RuntimeError("the breaker did not open")
            requests_before = len(fake.requests)
            _timed(call, WARMUP_CALLS)
            samples = _timed(call, OPEN_CALLS)
            if len(fake.requests) != requests_before:
                raise RuntimeError("an open breaker let a call through")
    finally:
        process.stop()
    p99, p50 = percentile(samples, 99), percentile(samples, 50)
    return Figure(
        id="llm.breaker_open_p99",
        what=(
            f"GenerateInsights with the breaker open, gRPC round trip, p99 of {OPEN_CALLS} "
            f"(p50 {p50:.3f} ms; cache look-up in Redis included)"
        ),
        value=p99,
        unit="ms",
        target="p99 <= 5 ms",
        met=p99 <= 5.0,
    )


def _added_latency(ctx: BenchContext, fake: FakeLlm) -> Figure:
    fake.script(completion(json.dumps(ANSWER)))
    process = LlmProcess.start(
        ctx.work_dir / "added",
        {
            "OPENROUTER_API_KEY": "sk-bench-000000000000",
            "LLM_BASE_URL": fake.base_url,
            "LLM_CACHE_TTL_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
        },
    )
    body = {
        "model": "deepseek/deepseek-r1",
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": json.dumps(REPORT, separators=(",", ":"), sort_keys=True)},
        ],
        "temperature": 0.2,
        "response_format": {"type": "json_object"},
    }
    headers = {"Authorization": "Bearer sk-bench-000000000000"}
    try:
        with (
            grpc.insecure_channel(process.address) as channel,
            httpx.Client(base_url=fake.base_url + "/", headers=headers) as http,
        ):
            via_service = _stub_call(
                llm_pb2_grpc.LlmServiceStub(channel), llm_pb2.INSIGHT_SOURCE_LLM
            )

            def direct() -> object:
                response = http.post("chat/completions", json=body)
                response.raise_for_status()
                return response.json()

            _timed(via_service, WARMUP_CALLS)
            _timed(direct, WARMUP_CALLS)
            direct_ms: list[float] = []
            service_ms: list[float] = []
            for _ in range(ADDED_CALLS // 100):  # interleaved rounds: the same machine state
                direct_ms += _timed(direct, 100)
                service_ms += _timed(via_service, 100)
    finally:
        process.stop()
    direct_p50, service_p50 = percentile(direct_ms, 50), percentile(service_ms, 50)
    added = service_p50 - direct_p50
    return Figure(
        id="llm.added_p50",
        what=(
            f"latency llm_svc adds over a direct httpx call to the same fake LLM, p50 of "
            f"{ADDED_CALLS} (through llm_svc {service_p50:.3f} ms: gRPC, retry loop, "
            "parsing, grounding, fallback fill)"
        ),
        value=added,
        unit="ms",
        target="<= 2 ms",
        met=added <= 2.0,
        baseline=direct_p50,
        baseline_what="direct httpx call p50",
    )


def run(ctx: BenchContext) -> list[Figure]:
    fake = FakeLlm().start()
    port = free_port()
    redis = redis_process(port, ctx.work_dir / "redis", ctx.work_dir / "redis.log")
    redis.start()
    try:
        wait_tcp("127.0.0.1", port, 30, redis)
        return [
            _breaker_open(ctx, fake, f"redis://127.0.0.1:{port}/0"),
            _added_latency(ctx, fake),
        ]
    finally:
        redis.stop()
        fake.stop()
