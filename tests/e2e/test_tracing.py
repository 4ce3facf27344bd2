"""OpenTelemetry traces from a real stack to a real OTLP receiver: one upload, one trace."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from datapilot_runtime.tracing import tracing_wanted
from devstack.stack import Stack, StackConfig
from tests.support.api import upload, wait_terminal
from tests.support.fake_llm import FakeLlm, Reply
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan

CSV = b"region,units,price\nNorth,3,2.5\nSouth,5,3.5\nEast,7,1.5\nWest,2,4.0\n"
SERVICES = {"gateway", "ingest_svc", "analysis_worker", "llm_svc"}
PHASES = ["download", "parse", "profile", "insights", "publish"]
POLLS = 40


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def traced_stack(
    tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver, fake_llm: FakeLlm
) -> Iterator[Stack]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export soon after a span ends
        "OPENROUTER_API_KEY": "sk-e2e-trace-0000000000",
        "LLM_BASE_URL": fake_llm.base_url,
        "RETRY_INITIAL_DELAY": "0.02",
        "RETRY_MAX_DELAY": "0.05",
        "RATE_LIMIT_PER_MINUTE": "0",
    }
    stack = Stack(StackConfig(run_dir=tmp_path_factory.mktemp("traced"), env=env))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def _wait_spans(
    receiver: OtlpReceiver, done: Callable[[list[ReceivedSpan]], bool], timeout: float = 30
) -> list[ReceivedSpan]:
    deadline = time.monotonic() + timeout
    while True:
        spans = receiver.spans()
        if done(spans):
            return spans
        assert time.monotonic() < deadline, sorted({(s.service, s.name) for s in spans})
        time.sleep(0.1)


def _ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    found = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        found.append(span)
    return found


def test_tracing_is_off_without_an_endpoint() -> None:
    assert not tracing_wanted({})
    assert not tracing_wanted({"OTEL_SERVICE_NAME": "gateway"})
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    assert tracing_wanted(endpoint)
    assert not tracing_wanted({**endpoint, "OTEL_SDK_DISABLED": "true"})
    assert not tracing_wanted({**endpoint, "OTEL_TRACES_EXPORTER": "none"})


def test_one_upload_is_one_trace_across_every_process(
    traced_stack: Stack, receiver: OtlpReceiver, fake_llm: FakeLlm
) -> None:
    answer = {
        "model": "fake-model-7",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": json.dumps(
                        {"insights": [{"title": "Units", "text": "Units vary by region."}]}
                    ),
                }
            }
        ],
        "usage": {"prompt_tokens": 321, "completion_tokens": 45},
    }
    # One failed attempt first: the LLM call's span shows both.
    fake_llm.script(Reply(503, {"error": "busy"}), Reply(200, answer))
    with httpx.Client(base_url=traced_stack.gateway_url, timeout=30) as client:
        job_id = upload(client, "units.csv", CSV)["jobId"]
        assert wait_terminal(client, job_id)["status"] == "completed"

    def job_span(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
        return next(
            (s for s in spans if s.name == "job" and s.attributes["datapilot.job.id"] == job_id),
            None,
        )

    def complete(spans: list[ReceivedSpan]) -> bool:
        job = job_span(spans)
        if job is None:
            return False
        trace = [s for s in spans if s.trace_id == job.trace_id]
        names = {s.name for s in trace}
        # Every process exports on its own schedule: wait for the last of them.
        return (
            {s.service for s in trace} >= SERVICES
            and "POST /api/upload" in names
            and any(name.startswith("chat ") for name in names)
            and set(PHASES) <= names
        )

    spans = _wait_spans(receiver, complete)
    job = job_span(spans)
    assert job is not None and job.service == "analysis_worker"
    trace = [s for s in spans if s.trace_id == job.trace_id]
    by_id = {s.span_id: s for s in trace}
    # The upload's own request is the root; the job span hangs under ingest's Upload call.
    root = next(s for s in trace if s.name == "POST /api/upload" and s.kind == 2)
    assert root.service == "gateway" and root.parent_span_id == ""
    upload_call = by_id[job.parent_span_id]
    assert upload_call.service == "ingest_svc" and upload_call.name.endswith("/Upload")
    assert root in _ancestors(job, by_id)
    assert job.attributes["datapilot.job.status"] == "completed"

    phases = {s.name: s for s in trace if s.parent_span_id == job.span_id and s.name in PHASES}
    assert sorted(phases) == sorted(PHASES)
    ordered = [phases[name] for name in PHASES]
    assert all(job.start_ns <= p.start_ns <= p.end_ns <= job.end_ns for p in ordered)
    assert [p.start_ns for p in ordered] == sorted(p.start_ns for p in ordered)
    assert phases["download"].attributes["datapilot.input.bytes"] == len(CSV)
    assert phases["parse"].attributes["datapilot.rows"] == 4
    assert phases["profile"].attributes["datapilot.columns"] == 3
    source = phases["insights"].attributes["datapilot.insights.source"]
    assert source in {"llm", "mixed", "fallback"}
    assert phases["publish"].attributes["datapilot.result.bytes"] > 0

    llm = next(s for s in trace if s.name.startswith("chat "))
    assert llm.service == "llm_svc"
    assert phases["insights"] in _ancestors(llm, by_id)
    assert llm.attributes["gen_ai.operation.name"] == "chat"
    assert llm.attributes["gen_ai.response.model"] == "fake-model-7"
    assert llm.attributes["gen_ai.usage.input_tokens"] == 321
    assert llm.attributes["gen_ai.usage.output_tokens"] == 45
    assert llm.attributes["datapilot.llm.attempts"] == 2
    assert llm.attributes["datapilot.llm.breaker.state"] == "closed"
    # Grounding refuses the fake's evidence-less insight: the answer falls back, visibly.
    assert llm.attributes["datapilot.insights.source"] == source
    assert llm.attributes["datapilot.llm.fallback"] is (source == "fallback")
    attempts = [e for e in llm.events if e[0] == "attempt"]
    assert [a[1]["http.response.status_code"] for a in attempts] == [503, 200]

    # The worker's log lines of the job carry the trace's ids.
    log = (traced_stack.config.run_dir / "logs" / "worker-1.log").read_text()
    lines = [json.loads(line) for line in log.splitlines() if job_id in line]
    completed = next(line for line in lines if line["message"] == "job completed")
    assert completed["trace_id"] == job.trace_id and len(completed["span_id"]) == 16


def test_an_analyze_call_reaches_analysis_svc(traced_stack: Stack, receiver: OtlpReceiver) -> None:
    trace_id = uuid.uuid4().hex
    with httpx.Client(base_url=traced_stack.gateway_url, timeout=30) as client:
        job_id = upload(client, "units.csv", CSV)["jobId"]
        wait_terminal(client, job_id)
        response = client.post(
            f"/api/jobs/{job_id}/analyze",
            headers={"traceparent": f"00-{trace_id}-{'1' * 16}-01"},
        )
        assert response.status_code == 200, response.text

    def reached(spans: list[ReceivedSpan]) -> bool:
        return {"gateway", "analysis_svc", "ingest_svc"} <= {
            s.service for s in spans if s.trace_id == trace_id
        }

    spans = [s for s in _wait_spans(receiver, reached) if s.trace_id == trace_id]
    analyze = next(s for s in spans if s.service == "analysis_svc" and s.kind == 2)
    assert analyze.name.endswith("/Analyze")
    # The caller's trace context was honoured: the gateway's span is the child of its span.
    gateway_root = next(s for s in spans if s.service == "gateway" and s.kind == 2)
    assert gateway_root.parent_span_id == "1" * 16


def test_a_job_status_poll_is_one_trace_through_ingest(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    """Polls are answered ahead of the middleware stack (JobReads): they still make the
    gateway's server span, continue the caller's trace and parent ingest's GetJob span."""
    trace_id = uuid.uuid4().hex
    with httpx.Client(base_url=traced_stack.gateway_url, timeout=30) as client:
        job_id = upload(client, "units.csv", CSV)["jobId"]
        response = client.get(
            "/api/job-status",
            params={"jobId": job_id},
            headers={"traceparent": f"00-{trace_id}-{'2' * 16}-01"},
        )
        assert response.status_code == 200, response.text

    def reached(spans: list[ReceivedSpan]) -> bool:
        return {"gateway", "ingest_svc"} <= {s.service for s in spans if s.trace_id == trace_id}

    spans = [s for s in _wait_spans(receiver, reached) if s.trace_id == trace_id]
    poll = next(s for s in spans if s.service == "gateway")
    assert poll.name == "GET /api/job-status" and poll.kind == 2
    assert poll.parent_span_id == "2" * 16
    assert poll.attributes["http.route"] == "/api/job-status"
    assert poll.attributes["http.response.status_code"] == 200
    get_job = next(s for s in spans if s.service == "ingest_svc")
    assert get_job.name.endswith("/GetJob") and get_job.parent_span_id == poll.span_id


def test_polls_answered_together_keep_their_own_traces(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    """Concurrent polls go to ingest together in GetJobs calls: each poll's trace still holds
    its gateway span and a GetJob span under it."""
    with httpx.Client(base_url=traced_stack.gateway_url, timeout=30) as client:
        job_id = upload(client, "units.csv", CSV)["jobId"]
    trace_ids = [uuid.uuid4().hex for _ in range(POLLS)]

    def poll(trace_id: str) -> int:
        with httpx.Client(base_url=traced_stack.gateway_url, timeout=30) as client:
            return client.get(
                "/api/job-status",
                params={"jobId": job_id},
                headers={"traceparent": f"00-{trace_id}-{'3' * 16}-01"},
            ).status_code

    with ThreadPoolExecutor(POLLS) as pool:
        assert set(pool.map(poll, trace_ids)) == {200}
    wanted = set(trace_ids)

    def reached(spans: list[ReceivedSpan]) -> bool:
        ingest = {s.trace_id for s in spans if s.service == "ingest_svc" and s.trace_id in wanted}
        batched = any(s.name.endswith("/GetJobs") for s in spans)
        return ingest == wanted and batched

    spans = _wait_spans(receiver, reached)
    for trace_id in trace_ids:
        mine = [s for s in spans if s.trace_id == trace_id]
        [gateway] = [s for s in mine if s.service == "gateway"]
        [get_job] = [s for s in mine if s.service == "ingest_svc"]
        assert get_job.name.endswith("/GetJob") and get_job.parent_span_id == gateway.span_id
