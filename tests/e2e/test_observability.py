"""Metrics, JSON logs and health on real processes: values after one job, a forced breaker opening,
readiness that follows the dependencies while liveness does not."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.processes import free_port, wait_tcp
from devstack.stack import Stack, StackConfig
from tests.support.api import upload, wait_terminal
from tests.support.fake_llm import FakeLlm, LlmProcess, Reply

SALES_CSV = Path(__file__).resolve().parents[1] / "data" / "sales.csv"


@pytest.fixture(scope="module")
def one_job_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh stack that has run exactly one job."""
    stack = Stack(StackConfig(run_dir=tmp_path_factory.mktemp("observed")))
    try:
        stack.start()
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
            job = upload(client, "sales.csv", SALES_CSV.read_bytes())
            assert wait_terminal(client, job["jobId"])["status"] == "completed"
        yield stack
    finally:
        stack.stop()


def _scrape(url: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in httpx.get(url, timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _metric(samples: dict[str, float], name: str, **labels: str) -> float:
    for key, value in samples.items():
        if not key.startswith(name + "{") and key != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', key))
        if all(found.get(k) == v for k, v in labels.items()):
            return value
    raise AssertionError(f"{name}{labels} not exported")


def _service_metrics(stack: Stack, name: str) -> dict[str, float]:
    return _scrape(f"http://127.0.0.1:{stack.metrics_ports[name]}/metrics")


def test_counters_after_one_job(one_job_stack: Stack) -> None:
    gateway = _scrape(f"{one_job_stack.gateway_url}/metrics")
    assert _metric(gateway, "datapilot_http_requests_total", route="/api/upload", status="202") == 1
    assert (
        _metric(gateway, "datapilot_http_request_latency_seconds_count", route="/api/upload") == 1
    )
    ingest = _service_metrics(one_job_stack, "ingest")
    upload_method = "/datapilot.ingest.v1.IngestService/Upload"
    assert (
        _metric(ingest, "datapilot_grpc_server_requests_total", method=upload_method, code="OK")
        == 1
    )
    put = "/datapilot.ingest.v1.IngestService/PutArtifact"
    assert _metric(ingest, "datapilot_grpc_server_requests_total", method=put, code="OK") == 1
    size = SALES_CSV.stat().st_size
    assert _metric(ingest, "datapilot_blob_bytes_total", backend="fs", operation="get") == size
    assert _metric(ingest, "datapilot_blob_operation_seconds_count", operation="put") == 2
    worker = _service_metrics(one_job_stack, "worker-1")
    assert _metric(worker, "datapilot_jobs_finished_total", status="completed") == 1
    assert _metric(worker, "datapilot_job_duration_seconds_count", status="completed") == 1
    # The queue gauges refresh every 2 s: wait for the refresh that sees the queue empty.
    deadline = time.monotonic() + 30
    while True:
        worker = _service_metrics(one_job_stack, "worker-1")
        queue = [_metric(worker, f"datapilot_queue_{gauge}") for gauge in ("depth", "pending")]
        if queue == [0, 0]:
            break
        assert time.monotonic() < deadline, f"queue depth and pending stay at {queue}"
        time.sleep(0.1)
    llm = _service_metrics(one_job_stack, "llm")
    assert _metric(llm, "datapilot_llm_insights_total", source="fallback") >= 1
    generate = "/datapilot.llm.v1.LlmService/GenerateInsights"
    assert _metric(llm, "datapilot_grpc_server_requests_total", method=generate, code="OK") == 1


def test_every_log_line_is_json(one_job_stack: Stack) -> None:
    for name in ("gateway", "ingest", "llm", "analysis", "worker-1"):
        path = one_job_stack.config.run_dir / "logs" / f"{name}.log"
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        assert lines, name
        for line in lines:
            entry = json.loads(line)
            assert {"timestamp", "severity", "service", "message"} <= entry.keys(), line


def _health(address: str, service: str) -> int:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    status: int = reply.status
    return status


def _wait_health(address: str, service: str, wanted: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while _health(address, service) != wanted:
        assert time.monotonic() < deadline, f"{address} {service!r} never became {wanted}"
        time.sleep(0.2)


def test_readiness_follows_redis_and_liveness_does_not(tmp_path: Path) -> None:
    stack = Stack(StackConfig(run_dir=tmp_path))
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    try:
        stack.start()
        ingest, worker = stack.addresses["ingest"], stack.addresses["worker-1"]
        _wait_health(ingest, "readiness", serving)
        _wait_health(worker, "readiness", serving)
        redis = stack.processes["redis"]
        redis.stop()
        _wait_health(ingest, "readiness", not_serving)
        _wait_health(worker, "readiness", not_serving)
        assert _health(ingest, "") == serving  # alive: no restart for a dependency outage
        redis.start()
        port = int(stack.redis_url.rsplit(":", 1)[1].split("/")[0])
        wait_tcp("127.0.0.1", port, 10)
        _wait_health(ingest, "readiness", serving)
        _wait_health(worker, "readiness", serving)
    finally:
        stack.stop()


def test_forced_breaker_opening_shows_in_the_gauge(tmp_path: Path) -> None:
    fake = FakeLlm().start()
    metrics_port = free_port()
    llm = LlmProcess.start(
        tmp_path,
        {
            "OPENROUTER_API_KEY": "sk-test-metrics",
            "LLM_BASE_URL": fake.base_url,
            "LLM_CIRCUIT_THRESHOLD": "2",
            "LLM_RETRY_ATTEMPTS": "1",
            "METRICS_PORT": str(metrics_port),
        },
    )
    try:
        fake.script(Reply(500, {"error": "down"}))
        report = {"dataset": {"rows": 3, "columns": 1}, "columns": []}
        with grpc.insecure_channel(llm.address) as channel:
            stub = llm_pb2_grpc.LlmServiceStub(channel)
            for _ in range(3):
                stub.GenerateInsights(
                    llm_pb2.GenerateInsightsRequest(kpi_report_json=json.dumps(report).encode()),
                    timeout=10,
                )
        samples = _scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert _metric(samples, "datapilot_llm_circuit_state") == 1
        assert _metric(samples, "datapilot_llm_circuit_transitions_total", to="open") == 1
        assert len(fake.requests) == 2  # the third call never reached the network
    finally:
        llm.stop()
        fake.stop()
