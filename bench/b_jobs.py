"""Job-lifecycle figures on a real stack: cancel latency, crash recovery time, timeout precision."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

from bench.figures import BenchContext, Figure, percentile
from devstack.stack import Stack, StackConfig
from tests.support.api import upload, wait_terminal
from tests.support.jobs_redis import holder_pid, job_fields, worker_name_by_pid

CSV = b"region,units\nNorth,3\nSouth,5\nNorth,7\n"
CANCELS = 50
RECOVERIES = 5
TIMEOUTS = 10
LEASE_SECONDS = 2.0


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(0.002)


def _held(stack: Stack, job_id: str) -> bool:
    return holder_pid(stack, job_id) is not None


def _stopped(stack: Stack, job_id: str) -> bool:
    return "stopped_at" in job_fields(stack, job_id)


def _taken_over(stack: Stack, job_id: str, before: str) -> bool:
    return job_fields(stack, job_id).get("lease_token") not in ("", before)


def _failed(stack: Stack, job_id: str) -> bool:
    return job_fields(stack, job_id).get("status") == "failed"


def _stack(run_dir: Path, env: dict[str, str], workers: int) -> Stack:
    config = StackConfig(
        run_dir=run_dir,
        env={"JOB_LEASE_SECONDS": str(LEASE_SECONDS), "LOG_LEVEL": "WARNING", **env},
        workers=workers,
    )
    stack = Stack(config)
    stack.start()
    stack.supervise()
    return stack


def _cancel_latency(work: Path) -> list[Figure]:
    stack = _stack(work / "cancel", {"SIMULATED_SLOW_PROCESSING_SECONDS": "30"}, workers=1)
    samples: list[float] = []
    try:
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
            for i in range(CANCELS):
                job_id = upload(http, f"c{i}.csv", CSV)["jobId"]
                _wait(partial(_held, stack, job_id), 30)
                time.sleep(0.05)  # let the job get into its work
                sent = time.time()
                assert http.post("/api/cancel", params={"jobId": job_id}).status_code == 200
                _wait(partial(_stopped, stack, job_id), 10)
                samples.append((float(job_fields(stack, job_id)["stopped_at"]) - sent) * 1000)
    finally:
        stack.stop()
    what = f"cancel latency, cancel request sent -> job work stopped ({CANCELS} cancels)"
    return [
        Figure("B6/p50", what + ", p50", percentile(samples, 50), "ms", "—"),
        Figure(
            "B6/p95",
            what + ", p95",
            percentile(samples, 95),
            "ms",
            "p95 <= 100 ms",
            met=percentile(samples, 95) <= 100,
        ),
    ]


def _handover_seconds(stack: Stack, http: httpx.Client, sig: signal.Signals) -> float:
    """Send `sig` to the worker holding a fresh slow job; seconds until another worker runs it."""
    job_id = upload(http, f"{sig.name}-{time.time_ns()}.csv", CSV)["jobId"]
    _wait(partial(_held, stack, job_id), 60)
    before = job_fields(stack, job_id)["lease_token"]
    holder = worker_name_by_pid(stack, holder_pid(stack, job_id) or 0)
    assert holder is not None
    sent = time.monotonic()
    stack.processes[holder].signal(sig)
    _wait(partial(_taken_over, stack, job_id, before), 6 * LEASE_SECONDS)
    elapsed = time.monotonic() - sent
    http.post("/api/cancel", params={"jobId": job_id})
    wait_terminal(http, job_id, timeout=10)
    _wait(lambda: all(p.alive() for p in stack.processes.values()), 30)
    return elapsed


def _recovery(work: Path) -> list[Figure]:
    """J2: SIGKILL (the lease must lapse) against SIGTERM (the job is handed back), interleaved."""
    env = {
        "SIMULATED_SLOW_PROCESSING_SECONDS": "30",
        "WORKER_SHUTDOWN_GRACE_SECONDS": "0",
        "GRPC_SHUTDOWN_GRACE_SECONDS": "0.5",
    }
    stack = _stack(work / "recovery", env, workers=2)
    killed: list[float] = []
    handed_back: list[float] = []
    try:
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
            for _ in range(RECOVERIES):
                killed.append(_handover_seconds(stack, http, signal.SIGKILL))
                handed_back.append(_handover_seconds(stack, http, signal.SIGTERM))
    finally:
        stack.stop()
    worst = max(killed)
    return [
        Figure(
            "J2",
            f"recovery, SIGKILL of a worker -> its job running elsewhere (max of {RECOVERIES}, "
            f"lease {LEASE_SECONDS:g} s)",
            worst,
            "s",
            f"<= 2 x lease ({2 * LEASE_SECONDS:g} s)",
            met=worst <= 2 * LEASE_SECONDS,
            baseline=max(handed_back),
            baseline_what="SIGTERM instead (no grace: the job is handed back at once), "
            f"max of {RECOVERIES}, interleaved",
        )
    ]


def _timeout_precision(work: Path) -> list[Figure]:
    env = {"SIMULATED_SLOW_PROCESSING_SECONDS": "5", "JOB_TIMEOUT_SECONDS": "1"}
    stack = _stack(work / "timeout", env, workers=1)
    samples: list[float] = []
    try:
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
            for i in range(TIMEOUTS):
                job_id = upload(http, f"t{i}.csv", CSV)["jobId"]
                _wait(partial(_failed, stack, job_id), 10)
                fields = job_fields(stack, job_id)
                samples.append((float(fields["finished_at"]) - float(fields["timeout_at"])) * 1000)
    finally:
        stack.stop()
    worst = max(samples)
    return [
        Figure(
            "J3",
            f"timeout precision, marked failed minus timeoutAt (max of {TIMEOUTS})",
            worst,
            "ms",
            "<= 250 ms",
            met=worst <= 250,
        )
    ]


def run(ctx: BenchContext) -> list[Figure]:
    return [
        *_cancel_latency(ctx.work_dir),
        *_recovery(ctx.work_dir),
        *_timeout_precision(ctx.work_dir),
    ]
