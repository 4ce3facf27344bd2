"""Live job events and tracing: E1 transition -> client latency, T1/T4 the cost of tracing.

E1: each event's id is the Redis stream entry id of the change, i.e. the Redis server's clock
(ms) when the transition's script ran; the client (same host, same clock) notes when the event
reached it. T1/T4: B1 (job-status polls/s) and B4 (upload -> completed p50) measured on two
stacks up at once, one exporting every span to an OTLP receiver (the default sampler,
parentbased_always_on), in alternating rounds.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx

from bench.b_system import ENV, _csv_100k, _iso, _requests_per_second, load_generator
from bench.figures import BenchContext, Figure, percentile
from devstack.stack import Stack, StackConfig
from tests.support.api import upload, wait_terminal
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.sse import sse_events

EVENT_JOBS = 40
LOAD_ROUNDS = 3
LATENCY_JOBS = 60


def _started(run_dir: Path, env: dict[str, str] | None = None) -> Stack:
    """A started stack; one retry, as a free port can be taken by another process meanwhile."""
    for attempt in range(2):
        config = StackConfig(run_dir=run_dir / str(attempt), env={**ENV, **(env or {})})
        stack = Stack(config)
        try:
            return stack.start()
        except RuntimeError:
            stack.stop()
            if attempt:
                raise
    raise AssertionError("unreachable")


def _e1_event_latency(work: Path) -> list[Figure]:
    stack = _started(work / "e1")
    latencies: list[float] = []
    payload = _csv_100k()
    try:
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
            for i in range(EVENT_JOBS):
                job_id = upload(client, f"e{i}.csv", payload)["jobId"]
                with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
                    first = True
                    for event in sse_events(response):
                        if event.comment:
                            continue
                        received = time.time()
                        if not first:  # the first is the record as it was: not a live change
                            latencies.append((received - int(event.id.split("-")[0]) / 1000) * 1000)
                        first = False
    finally:
        stack.stop()
    return [
        Figure(
            "E1/p50",
            f"job change -> SSE client (Redis XADD time -> client receipt), p50 over "
            f"{len(latencies)} live events of {EVENT_JOBS} jobs",
            percentile(latencies, 50),
            "ms",
            "—",
        ),
        Figure("E1/p99", "same, p99", percentile(latencies, 99), "ms", "—"),
    ]


def _p50_latency(stack: Stack, payload: bytes, jobs: int) -> list[float]:
    found: list[float] = []
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        for i in range(jobs):
            sent = time.time()
            job = wait_terminal(client, upload(client, f"t{i}.csv", payload)["jobId"])
            assert job["status"] == "completed", job
            found.append((_iso(job["finishedAt"]) - sent) * 1000)
    return found


def _tracing_cost(work: Path) -> list[Figure]:
    receiver = OtlpReceiver(keep_spans=False).start()
    traced_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    plain = _started(work / "plain")
    traced = _started(work / "traced", env=traced_env)
    payload = _csv_100k()
    try:
        urls = {}
        for name, stack in (("plain", plain), ("traced", traced)):
            with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
                job_id = upload(client, "s.csv", payload)["jobId"]
                wait_terminal(client, job_id)
            urls[name] = f"{stack.gateway_url}/api/job-status?jobId={job_id}"
        polls: dict[str, list[float]] = {"plain": [], "traced": []}
        latencies: dict[str, list[float]] = {"plain": [], "traced": []}
        for _ in range(LOAD_ROUNDS):  # alternating: both see the same machine
            for name in ("plain", "traced"):
                polls[name].append(_requests_per_second(urls[name]))
        for _ in range(LOAD_ROUNDS):
            for name, stack in (("plain", plain), ("traced", traced)):
                latencies[name] += _p50_latency(stack, payload, LATENCY_JOBS // LOAD_ROUNDS)
        spans = receiver.count
    finally:
        traced.stop()
        plain.stop()
        receiver.stop()
    assert spans > 0, "the traced stack exported nothing"
    b1_plain, b1_traced = statistics.median(polls["plain"]), statistics.median(polls["traced"])
    b4_plain = percentile(latencies["plain"], 50)
    b4_traced = percentile(latencies["traced"], 50)
    return [
        Figure(
            "T1",
            f"B1 job-status polls/s with tracing on (every span exported over OTLP/gRPC, "
            f"{spans} spans received; {load_generator()}, median of {LOAD_ROUNDS} rounds)",
            b1_traced,
            "req/s",
            ">= 0.9 x untraced",
            met=b1_traced >= 0.9 * b1_plain,
            baseline=b1_plain,
            baseline_what="the same stack without an endpoint",
        ),
        Figure(
            "T4",
            f"B4 upload -> completed p50 with tracing on ({LATENCY_JOBS} jobs each, alternating)",
            b4_traced,
            "ms",
            "<= 1.1 x untraced",
            met=b4_traced <= 1.1 * b4_plain,
            baseline=b4_plain,
            baseline_what="the same stack without an endpoint",
        ),
    ]


def run(ctx: BenchContext) -> list[Figure]:
    work = ctx.work_dir
    return [*_e1_event_latency(work), *_tracing_cost(work)]
