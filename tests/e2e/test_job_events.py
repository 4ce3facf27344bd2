"""Live job events (GET /api/jobs/{jobId}/events, Server-Sent Events) against a real stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import Stack, StackConfig
from gateway.job_json import JobOut
from tests.support.api import TERMINAL, wait_terminal
from tests.support.sse import SseEvent, sse_events

KEY_A, KEY_B = "key-acme-events-0123", "key-beta-events-4567"
CSV = b"region,units\nNorth,3\nSouth,5\nEast,7\n"
SLOW_SECONDS = 2.0
MAX_STREAMS = 2


@pytest.fixture(scope="module")
def events_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two tenants, slow analysis (jobs are caught while processing), quick heartbeats."""
    env = {
        "DATAPILOT_API_KEYS": f"acme:{KEY_A},beta:{KEY_B}",
        "RATE_LIMIT_PER_MINUTE": "0",
        "RETRY_INITIAL_DELAY": "0.05",
        "SIMULATED_SLOW_PROCESSING_SECONDS": str(SLOW_SECONDS),
        "EVENTS_HEARTBEAT_SECONDS": "0.3",
        "EVENTS_MAX_STREAMS_PER_TENANT": str(MAX_STREAMS),
    }
    stack = Stack(StackConfig(run_dir=tmp_path_factory.mktemp("events"), env=env, workers=1))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def _client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _upload(client: httpx.Client) -> str:
    response = client.post("/api/upload", files={"file": ("e.csv", CSV)})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def _follow(client: httpx.Client, job_id: str, last_event_id: str = "") -> list[SseEvent]:
    """Everything the stream sends until the server closes it."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with client.stream("GET", f"/api/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(sse_events(response))


def _jobs(events: list[SseEvent]) -> list[SseEvent]:
    return [e for e in events if not e.comment]


def _ids(events: list[SseEvent]) -> list[tuple[int, ...]]:
    return [tuple(int(part) for part in e.id.split("-")) for e in events]


def _metric(stack: Stack, url: str, name: str) -> float:
    text = httpx.get(url, timeout=10).text
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"{name} not exported by {url}"
    return float(match.group(1))


def _gauges(stack: Stack) -> tuple[float, float]:
    """(open streams at the gateway, open watches in ingest_svc)."""
    return (
        _metric(stack, f"{stack.gateway_url}/metrics", "datapilot_event_streams"),
        _metric(
            stack,
            f"http://127.0.0.1:{stack.metrics_ports['ingest']}/metrics",
            "datapilot_job_watches",
        ),
    )


def _wait_for(condition: str, check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {condition}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def followed(events_stack: Stack) -> tuple[str, list[SseEvent]]:
    """A job followed live from its upload to its end."""
    with _client(events_stack, KEY_A) as client:
        job_id = _upload(client)
        return job_id, _follow(client, job_id)


def test_stream_of_a_job_ends_in_completed(followed: tuple[str, list[SseEvent]]) -> None:
    job_id, events = followed
    jobs = _jobs(events)
    assert all(e.event == "job" and e.data["jobId"] == job_id for e in jobs)
    assert jobs[-1].data["status"] == "completed" and jobs[-1].data["progress"] == 100
    assert [e.data["status"] for e in jobs[:-1]] and all(
        e.data["status"] not in TERMINAL for e in jobs[:-1]
    )
    # The record exactly as job-status shows it, on every event.
    assert all(set(e.data) == set(JobOut.model_fields) for e in jobs)
    # A heartbeat comment came while the slow analysis sent no change.
    assert SseEvent(comment="heartbeat") in events


def test_progress_never_decreases_and_ids_increase(followed: tuple[str, list[SseEvent]]) -> None:
    jobs = _jobs(followed[1])
    progress = [e.data["progress"] for e in jobs]
    assert progress == sorted(progress) and len(set(progress)) > 3, progress
    ids = _ids(jobs)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_terminal_job_gets_one_event_and_the_close(
    events_stack: Stack, followed: tuple[str, list[SseEvent]]
) -> None:
    job_id, seen = followed
    with _client(events_stack, KEY_A) as client:
        again = _follow(client, job_id)
        assert [e.data for e in again] == [_jobs(seen)[-1].data]
        assert again[0].data == client.get(f"/api/jobs/{job_id}").json()


def test_resume_with_last_event_id_skips_what_was_seen(
    events_stack: Stack, followed: tuple[str, list[SseEvent]]
) -> None:
    job_id, seen = followed
    jobs = _jobs(seen)
    with _client(events_stack, KEY_A) as client:
        resumed = _jobs(_follow(client, job_id, last_event_id=jobs[1].id))
        assert [(e.id, e.data) for e in resumed] == [(e.id, e.data) for e in jobs[2:]]
        # Resuming after the terminal event: nothing more to say, the stream just closes.
        assert _jobs(_follow(client, job_id, last_event_id=jobs[-1].id)) == []


def test_another_tenant_gets_404(events_stack: Stack, followed: tuple[str, list[SseEvent]]) -> None:
    with _client(events_stack, KEY_B) as client:
        response = client.get(f"/api/jobs/{followed[0]}/events")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "not_found"


def test_a_cancelled_jobs_stream_ends_in_cancelled(events_stack: Stack) -> None:
    with _client(events_stack, KEY_A) as client:
        job_id = _upload(client)
        statuses: list[str] = []
        with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
            for event in sse_events(response):
                if event.comment:
                    continue
                statuses.append(event.data["status"])
                if len(statuses) == 1:
                    assert client.post("/api/cancel", params={"jobId": job_id}).status_code == 200
        assert statuses[-1] == "cancelled"
        assert "cancelled" not in statuses[:-1]


def test_a_dropped_client_frees_its_watch(events_stack: Stack) -> None:
    with _client(events_stack, KEY_A) as client:
        job_id = _upload(client)
        with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
            # Held: closing the event iterator would close the response (hang up) right away.
            events = sse_events(response)
            first = next(events)
            assert first.data["jobId"] == job_id
            assert _gauges(events_stack) == (1, 1)
        # The client hung up mid-stream: the gateway's stream and ingest's watch both go,
        # while the job itself is still running.
        _wait_for("watch freed", lambda: _gauges(events_stack) == (0, 0))
        assert client.get(f"/api/jobs/{job_id}").json()["status"] not in TERMINAL
        wait_terminal(client, job_id)


def test_streams_per_tenant_are_bounded(events_stack: Stack) -> None:
    with _client(events_stack, KEY_B) as client, _client(events_stack, KEY_A) as other:
        jobs = [_upload(client) for _ in range(MAX_STREAMS + 1)]
        with (
            client.stream("GET", f"/api/jobs/{jobs[0]}/events") as first,
            client.stream("GET", f"/api/jobs/{jobs[1]}/events") as second,
        ):
            assert first.status_code == second.status_code == 200
            refused = client.get(f"/api/jobs/{jobs[2]}/events")
            assert refused.status_code == 429
            assert refused.json()["code"] == "too_many_streams"
            assert int(refused.headers["retry-after"]) > 0
            # Another tenant is not affected.
            with other.stream("GET", f"/api/jobs/{_upload(other)}/events") as theirs:
                assert theirs.status_code == 200
        _wait_for("streams closed", lambda: _gauges(events_stack) == (0, 0))
        events = _follow(client, jobs[2])
        assert _jobs(events)[-1].data["status"] == "completed"


def test_the_stream_is_in_the_openapi_document(events_stack: Stack) -> None:
    document = httpx.get(f"{events_stack.gateway_url}/openapi.json").json()
    operation = document["paths"]["/api/jobs/{jobId}/events"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {"404", "429"} <= set(operation["responses"])
    assert any(p["name"] == "Last-Event-ID" for p in operation["parameters"])


SALES_CSV = Path(__file__).resolve().parents[1] / "data" / "sales.csv"
CLI = str(Path(sys.executable).with_name("datapilot"))


def _polls(stack: Stack) -> float:
    text = httpx.get(f"{stack.gateway_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("datapilot_http_requests_total{") and "/api/job-status" in line
    )


def _cli_analyze(stack: Stack, key: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATAPILOT_URL": stack.gateway_url, "DATAPILOT_API_KEY": key}
    return subprocess.run(
        [CLI, "--json", "analyze", str(SALES_CSV)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_follows_events_without_polling(events_stack: Stack) -> None:
    before = _polls(events_stack)
    done = _cli_analyze(events_stack, KEY_A)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kpis"]["dataset"]["rows"] == 120
    assert _polls(events_stack) == before


def test_the_cli_falls_back_to_polling_when_events_are_refused(events_stack: Stack) -> None:
    with _client(events_stack, KEY_B) as client:
        held = [_upload(client) for _ in range(MAX_STREAMS)]
        with (
            client.stream("GET", f"/api/jobs/{held[0]}/events") as first,
            client.stream("GET", f"/api/jobs/{held[1]}/events") as second,
        ):
            assert first.status_code == second.status_code == 200
            before = _polls(events_stack)
            done = _cli_analyze(events_stack, KEY_B)  # its stream is refused: 429
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["kpis"]["dataset"]["rows"] == 120
            assert _polls(events_stack) > before
