"""llm_svc: prompt size, latency with the breaker open, and what it adds over a direct call."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc

from analysis_svc.engine.analyze import analyze_file
from bench.figures import BenchContext, Figure, percentile
from datapilot_runtime.report.insights import ConcentrationInsight, SegmentInsight
from devstack.processes import free_port, redis_process, wait_tcp
from llm_svc.llm_client import prompt_messages
from tests.support.fake_llm import FakeLlm, LlmProcess, Reply, completion

OPEN_CALLS = 2000
ADDED_CALLS = 600
WARMUP_CALLS = 100
SEGMENT = SegmentInsight(
    key="segment.price.region",
    score=0.9,
    measure="price",
    dimension="region",
    aggregation="mean",
    segment="North",
    direction="high",
    segment_value=12.4,
    rest_value=8.1,
    ratio=1.53,
    segment_rows=500,
    rest_rows=700,
    effect_size=0.9,
)
CONCENTRATION = ConcentrationInsight(
    key="concentration.revenue.region",
    score=0.8,
    measure="revenue",
    dimension="region",
    top="North",
    top_value=51440.0,
    top_share=0.4167,
    top_k=2,
    top_k_share=0.6667,
    segments=4,
    values_for_80_pct=3,
)
REPORT = {
    "schemaVersion": "3.0",
    "dataset": {"rows": 1200, "columns": 3, "missingCells": 12, "duplicateRows": 1},
    "roles": [
        {"name": "region", "role": "dimension", "reason": "few distinct strings"},
        {"name": "revenue", "role": "additive", "reason": "an amount"},
        {"name": "price", "role": "non_additive", "reason": "a price"},
    ],
    "candidates": [c.model_dump(by_alias=True, mode="json") for c in (SEGMENT, CONCENTRATION)],
}
ANSWER = {
    "insights": [
        {
            "title": "North is dearest",
            "text": "Average price in North is 12.40 against 8.10 elsewhere (1.5 times).",
            "evidence": ["candidates.segment.price.region"],
            "severity": "info",
        },
        {
            "title": "North leads",
            "text": "North carries 41.7% of revenue; the top 2 regions hold 66.7%.",
            "evidence": ["candidates.concentration.revenue.region"],
            "severity": "info",
        },
    ]
}
TOKEN_CHARS = 4
PROMPT_TARGET_TOKENS = 2000
SALES_CSV = Path(__file__).resolve().parents[1] / "tests" / "data" / "sales.csv"


def _wide_csv(path: Path, columns: int = 200, rows: int = 500) -> Path:
    """A wide file: long column names, a dimension with long labels, many measures."""
    header = ["region"] + [f"measure_with_a_rather_long_name_{n:03d}" for n in range(columns)]
    lines = [",".join(header)]
    for row in range(rows):
        label = f"Region number {row % 7} of the northern sales territory"
        lines.append(",".join([label] + [str((row * (n + 3)) % 97) for n in range(columns)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def _worst_case() -> dict[str, Any]:
    """More candidates and columns than the prompt may hold, every label at its longest."""
    long = "x" * 200
    return {
        "dataset": {"rows": 10**7, "columns": 1000},
        "roles": [{"name": f"{long}{n}", "role": "additive", "reason": ""} for n in range(1000)],
        "candidates": [
            SEGMENT.model_copy(update={"key": f"s{n}.{long}", "segment": long}).model_dump(
                by_alias=True, mode="json"
            )
            for n in range(200)
        ],
    }


def _prompt_tokens(report: dict[str, Any]) -> int:
    return sum(len(m["content"]) for m in prompt_messages(report)) // TOKEN_CHARS


def _prompt_size(ctx: BenchContext) -> Figure:
    """Prompt size (chars / 4) for engine reports of real files, the synthetic one, the worst."""
    reports = {
        "tests/data/sales.csv": analyze_file(SALES_CSV, "sales.csv"),
        "wide 200-column csv": analyze_file(_wide_csv(ctx.work_dir / "wide.csv"), "wide.csv"),
        "bench report": REPORT,
        "worst case (200 candidates, 1000 columns)": _worst_case(),
    }
    sizes = {name: _prompt_tokens(report) for name, report in reports.items()}
    largest = max(sizes.values())
    return Figure(
        id="llm.prompt_tokens",
        what="LLM prompt size in tokens (chars / 4), largest of: "
        + ", ".join(f"{name} {tokens}" for name, tokens in sizes.items()),
        value=largest,
        unit="tokens",
        target=f"<= {PROMPT_TARGET_TOKENS}",
        met=largest <= PROMPT_TARGET_TOKENS,
    )


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
        "messages": prompt_messages(REPORT),
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
            _prompt_size(ctx),
            _breaker_open(ctx, fake, f"redis://127.0.0.1:{port}/0"),
            _added_latency(ctx, fake),
        ]
    finally:
        redis.stop()
        fake.stop()
