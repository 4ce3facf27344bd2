"""Scenario 6: concurrent uploads from many clients, each polling its jobs: no 5xx, no loss."""

from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.chaos.harness import (
    SCALE,
    UPLOAD_TIMEOUT_SECONDS,
    check,
    reconcile,
    report,
    running_stack,
    sales_csv,
    settle,
    upload_one,
)
from tests.chaos.summary import TERMINAL, Outcomes

pytestmark = pytest.mark.timeout(SCALE.test_timeout)
POLL_SECONDS = 0.1
CLIENT_WAIT_SECONDS = SCALE.test_timeout / 2


@dataclass
class Polls:
    """Every job-status call the clients made: latency (s) and HTTP status."""

    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, latency: float, status: int) -> None:
        with self.lock:
            self.latencies.append(latency)
            self.statuses.append(status)


def _client(
    url: str, index: int, per_client: int, start: threading.Barrier, out: Outcomes, polls: Polls
) -> None:
    """Upload this client's files at once, then poll each of its jobs until terminal."""
    with httpx.Client(base_url=url, timeout=UPLOAD_TIMEOUT_SECONDS) as http:
        start.wait(30)
        mine = Outcomes("client")
        for n in range(per_client):
            upload_one(http, f"s{index}-{n}.csv", sales_csv(index * per_client + n), "normal", mine)
        for job_id in mine.accepted:
            out.accept(job_id, "normal")
        for reason, count in mine.refused.items():
            for _ in range(count):
                out.refuse(reason)
        deadline = time.monotonic() + CLIENT_WAIT_SECONDS
        pending = list(mine.accepted)
        while pending and time.monotonic() < deadline:
            job_id = pending[0]
            began = time.perf_counter()
            try:
                response = http.get("/api/job-status", params={"jobId": job_id})
            except httpx.HTTPError:
                polls.add(time.perf_counter() - began, 0)
                continue
            polls.add(time.perf_counter() - began, response.status_code)
            if response.status_code == 200 and response.json()["status"] in TERMINAL:
                pending.pop(0)
            else:
                time.sleep(POLL_SECONDS)


def test_concurrent_uploads_from_many_clients(tmp_path: Path) -> None:
    """No 5xx for any upload or poll, nothing lost; the job-status p99 is reported."""
    out = Outcomes(f"6 {SCALE.storm_uploads} uploads from {SCALE.storm_clients} clients")
    polls = Polls()
    per_client = SCALE.storm_uploads // SCALE.storm_clients
    start = threading.Barrier(SCALE.storm_clients)
    with running_stack(tmp_path, {"WORKER_CONCURRENCY": "2"}, workers=2) as stack:
        began = time.monotonic()
        threads = [
            threading.Thread(
                target=_client,
                args=(stack.gateway_url, n, per_client, start, out, polls),
                daemon=True,
            )
            for n in range(SCALE.storm_clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(CLIENT_WAIT_SECONDS + 60)
        elapsed = time.monotonic() - began
        settle(stack.gateway_url, out, timeout=30)
        reconcile(stack, out)
    latencies = sorted(polls.latencies)
    p50 = statistics.median(latencies) * 1000 if latencies else 0.0
    p99 = (
        latencies[math.ceil(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0
    )  # nearest rank
    out.notes.append(
        f"{len(latencies)} job-status calls, p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
        f"all done in {elapsed:.1f}s"
    )
    report(out)
    server_errors = [s for s in polls.statuses if s >= 500 or s == 0]
    assert not server_errors, f"job-status answered {len(server_errors)} 5xx / transport errors"
    check(out, allowed_failures=set(), allowed_refusals=set())
    assert len(out.accepted) == per_client * SCALE.storm_clients
