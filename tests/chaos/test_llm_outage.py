"""Scenario 5: the LLM endpoint answers 500s, 429s and hangs for the whole run."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc

from tests.chaos.harness import (
    SCALE,
    Upload,
    UploadStream,
    check,
    metric_total,
    reconcile,
    report,
    running_stack,
    sales_csv,
    settle,
)
from tests.chaos.summary import Outcomes
from tests.support.api import checked_client
from tests.support.fake_llm import FakeLlm, Reply

pytestmark = pytest.mark.timeout(SCALE.test_timeout)
COOLDOWN_SECONDS = 2.0
THRESHOLD = 5
ATTEMPTS = 2
ENV = {
    "OPENROUTER_API_KEY": "sk-chaos-0000000000",
    "LLM_REQUEST_TIMEOUT_SECONDS": "1",  # a hang costs one second per attempt
    "LLM_RETRY_ATTEMPTS": str(ATTEMPTS),
    "LLM_CIRCUIT_THRESHOLD": str(THRESHOLD),
    "LLM_CIRCUIT_COOLDOWN": str(COOLDOWN_SECONDS),
    "RETRY_INITIAL_DELAY": "0.05",
    "RETRY_MAX_DELAY": "0.2",
    "WORKER_CONCURRENCY": "2",
}
FAULTS = (
    Reply(500, {"error": {"message": "internal"}}),
    Reply(429, {"error": {"message": "rate limited"}}, headers={"Retry-After": "1"}),
    Reply(hang=True),
    Reply(503, {"error": {"message": "overloaded"}}),
)


@pytest.fixture()
def failing_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm().start()
    faults = itertools.cycle(FAULTS)
    lock = threading.Lock()

    def next_fault(_body: Any) -> Reply:
        with lock:
            return next(faults)

    fake.script(next_fault)
    yield fake
    fake.stop()


def test_llm_failing_all_run_every_job_completes_with_fallback(
    tmp_path: Path, failing_llm: FakeLlm
) -> None:
    """Every job completes with fallback insights; the breaker opens once per cooldown.

    Openings are bounded by the run's length over the cooldown (each ends with one failed
    probe), and the LLM sees the threshold's calls plus one probe per opening, not a call per job.
    """
    out = Outcomes("5 llm failing")
    env = {**ENV, "LLM_BASE_URL": failing_llm.base_url}
    with running_stack(tmp_path, env, workers=2) as stack:
        started = time.monotonic()
        uploads = [Upload(f"l{n}.csv", sales_csv(n)) for n in range(SCALE.llm_jobs)]
        UploadStream(stack.gateway_url, uploads, out, clients=1, interval=0.25).start().join(120)
        settle(stack.gateway_url, out, timeout=SCALE.test_timeout / 2)
        elapsed = time.monotonic() - started
        reconcile(stack, out)
        sources = _insight_sources(stack.gateway_url, out.completed)
        port = stack.metrics_ports["llm"]
        openings = int(metric_total(port, "datapilot_llm_circuit_transitions_total", to="open"))
        with grpc.insecure_channel(stack.addresses["llm"]) as channel:
            state = llm_pb2_grpc.LlmServiceStub(channel).GetCircuitState(
                llm_pb2.GetCircuitStateRequest(), timeout=5
            )
    requests = len(failing_llm.requests)
    out.notes.append(
        f"breaker opened {openings}x in {elapsed:.1f}s (cooldown {COOLDOWN_SECONDS:.0f}s), "
        f"{requests} LLM requests"
    )
    report(out)
    check(out, allowed_failures=set(), allowed_refusals=set())
    assert sources == {"fallback"}, f"insight sources: {sources}"
    assert 1 <= openings <= math.ceil(elapsed / COOLDOWN_SECONDS) + 1
    assert openings < len(out.accepted), "the breaker opened per job"
    # The threshold's calls (with their retries, one more may be in flight), then one probe
    # (a single attempt) per re-opening.
    assert requests <= (THRESHOLD + 2) * ATTEMPTS + openings, out.line()
    assert state.state in (llm_pb2.CIRCUIT_STATE_OPEN, llm_pb2.CIRCUIT_STATE_HALF_OPEN)


def _insight_sources(gateway_url: str, job_ids: list[str]) -> set[str]:
    """Every insight source (and overall `insightsSource`) of these jobs' result.json."""
    sources: set[str] = set()
    with checked_client(gateway_url, timeout=10) as client:
        for job_id in job_ids:
            result = client.get(f"/api/jobs/{job_id}/result").json()
            sources.add(str(result["insightsSource"]))
            sources.update(str(i["source"]) for i in result["insights"])
    return sources
