"""Scenarios 1 and 2: workers SIGKILLed every few seconds, and a rolling SIGTERM restart."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from devstack.processes import wait_grpc_serving
from devstack.stack import Stack
from tests.chaos.harness import (
    SCALE,
    Upload,
    UploadStream,
    busy,
    check,
    reconcile,
    report,
    running_stack,
    sales_csv,
    settle,
)
from tests.chaos.summary import Outcomes
from tests.support.jobs_redis import holder_pid

pytestmark = pytest.mark.timeout(SCALE.test_timeout)
WORKERS = 2
MAX_ATTEMPTS = 3  # JOB_MAX_ATTEMPTS, its default
# Slow enough that kills land on running jobs; a short drain grace so SIGTERM hands jobs back.
ENV = {
    "SIMULATED_SLOW_PROCESSING_SECONDS": "0.8",
    "WORKER_CONCURRENCY": "2",
    "WORKER_SHUTDOWN_GRACE_SECONDS": "0.3",
}


def _holds_a_job(stack: Stack, out: Outcomes, name: str) -> bool:
    """Whether the worker process `name` holds the lease of a processing job."""
    pid = stack.processes[name].pid
    return any(holder_pid(stack, job_id) == pid for job_id in list(out.accepted))


def _stream(stack: Stack, out: Outcomes) -> UploadStream:
    uploads = [Upload(f"w{n}.csv", sales_csv(n)) for n in range(SCALE.jobs)]
    return UploadStream(stack.gateway_url, uploads, out, clients=2, interval=0.2).start()


def test_sigkill_a_worker_every_few_seconds_loses_nothing(tmp_path: Path) -> None:
    """Scenario 1. Every few seconds a worker that holds a job is SIGKILLed and replaced.

    The replacement starts at once, as an orchestrator replaces a dead pod (the local
    supervisor's crash-loop backoff would leave no worker running under repeated kills). The
    killed worker's jobs are reclaimed after the 1 s lease and run again. Explained failure:
    `worker_lost` (a job whose worker was killed on all of its 3 deliveries).
    """
    out = Outcomes("1 sigkill workers")
    rng = random.Random(8)
    kills = 0
    with running_stack(tmp_path, ENV, workers=WORKERS) as stack:
        stream = _stream(stack, out)
        deadline = time.monotonic() + SCALE.test_timeout / 2
        while busy(stack.gateway_url, out, stream) and time.monotonic() < deadline:
            time.sleep(SCALE.kill_every)
            holding = [
                name
                for name in (f"worker-{n}" for n in range(1, WORKERS + 1))
                if stack.processes[name].alive() and _holds_a_job(stack, out, name)
            ]
            if holding:
                victim = stack.processes[rng.choice(holding)]
                victim.signal(signal.SIGKILL)
                victim.stop()  # reaps it
                victim.start()
                kills += 1
        stream.join(60)
        settle(stack.gateway_url, out, timeout=SCALE.test_timeout / 2)
        reconcile(stack, out)
    out.notes.append(f"{kills} SIGKILLs, {out.rerun} jobs re-run")
    report(out)
    assert kills >= 2, "the run ended before two workers holding jobs were killed"
    check(out, allowed_failures={"worker_lost"}, allowed_refusals=set())
    assert out.rerun >= 1, out.line()
    lost_workers = [f for f in out.final.values() if f.error == "worker_lost"]
    assert all(f.attempt == MAX_ATTEMPTS for f in lost_workers), lost_workers


def test_rolling_sigterm_of_every_worker_loses_nothing(tmp_path: Path) -> None:
    """Scenario 2. Each worker in turn: SIGTERM (drain 0.3 s, hand back, exit 0), start again.

    Explained failure: `worker_shutdown` (a job handed back on its last delivery).
    """
    out = Outcomes("2 rolling sigterm")
    restarts = 0
    restarted: set[str] = set()
    names = [f"worker-{n}" for n in range(1, WORKERS + 1)]
    with running_stack(tmp_path, ENV, workers=WORKERS) as stack:
        stream = _stream(stack, out)
        deadline = time.monotonic() + SCALE.test_timeout / 2
        while busy(stack.gateway_url, out, stream) and time.monotonic() < deadline:
            # SIGTERM a worker while it runs a job (one not yet restarted first), never an idle one.
            holding = [name for name in names if _holds_a_job(stack, out, name)]
            if not holding:
                time.sleep(0.05)
                continue
            name = min(holding, key=lambda held: held in restarted)
            code = stack.processes[name].stop()
            assert code == 0, f"{name} exited {code} on SIGTERM"
            stack.processes[name].start()
            wait_grpc_serving(stack.addresses[name], 30, stack.processes[name])
            restarts += 1
            restarted.add(name)
        stream.join(60)
        settle(stack.gateway_url, out, timeout=SCALE.test_timeout / 2)
        reconcile(stack, out)
    out.notes.append(f"{restarts} worker restarts, {out.rerun} jobs re-run")
    report(out)
    assert restarted == set(names), f"not every worker was restarted: {restarted}"
    assert out.rerun >= 1, "no SIGTERM caught a running job past its grace: nothing handed back"
    shut_down = [f for f in out.final.values() if f.error == "worker_shutdown"]
    assert all(f.attempt == MAX_ATTEMPTS for f in shut_down), shut_down
    check(out, allowed_failures={"worker_shutdown"}, allowed_refusals=set())
