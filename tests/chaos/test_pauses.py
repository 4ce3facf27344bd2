"""Scenario 14: each process paused (SIGSTOP) past the job lease, then resumed, mid-run.

A paused process is neither dead nor alive to its peers: its sockets stay open, its leases run
out on Redis' clock, its replies come late. Redis, ingest, the llm service, the gateway and
the worker holding a job are each frozen in turn while uploads keep coming.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.chaos.harness import (
    SCALE,
    Upload,
    UploadStream,
    check,
    reconcile,
    report,
    running_stack,
    sales_csv,
    settle,
    wait_until,
)
from tests.chaos.summary import Outcomes
from tests.support.jobs_redis import holder_pid, worker_name_by_pid

pytestmark = pytest.mark.timeout(SCALE.test_timeout)
ENV = {"SIMULATED_SLOW_PROCESSING_SECONDS": "0.3", "WORKER_CONCURRENCY": "2"}
PAUSE_SECONDS = 3.0  # three leases (JOB_LEASE_SECONDS is 1 in the chaos stacks)


def _pause(pid: int, seconds: float) -> None:
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def test_each_process_paused_past_the_lease_loses_nothing(tmp_path: Path) -> None:
    """Every accepted job ends terminal with its artifact; none fails; refusals are 503/504.

    A job whose worker froze is taken over once its lease lapses; when the frozen worker wakes,
    its fenced writes are refused, so the job still ends exactly once, as completed.
    """
    out = Outcomes("14 pauses")
    with running_stack(tmp_path, ENV, workers=2) as stack:
        uploads = [Upload(f"p{n}.csv", sales_csv(n)) for n in range(SCALE.jobs * 2)]
        stream = UploadStream(stack.gateway_url, uploads, out, clients=2, interval=0.1).start()
        held: dict[str, int] = {}

        def running_job() -> bool:
            for job_id in list(out.accepted):
                pid = holder_pid(stack, job_id)
                if pid:
                    held[job_id] = pid
                    return True
            return False

        wait_until(running_job, 60, "a job to be running")
        ((frozen_job, pid),) = held.items()
        worker = worker_name_by_pid(stack, pid)
        assert worker is not None
        paused = [worker, "redis", "ingest", "llm", "gateway"]
        for name in paused:
            _pause(stack.processes[name].pid, PAUSE_SECONDS)
            time.sleep(0.5)  # a moment of service between pauses
        out.notes.append(f"paused {', '.join(paused)} for {PAUSE_SECONDS:.0f}s each")
        stream.join(120)
        settle(stack.gateway_url, out, timeout=SCALE.test_timeout / 2)
        reconcile(stack, out)
        dead = stack.dead()
    report(out)
    assert not dead, f"processes died of a pause: {dead}"
    # A paused ingest or Redis may make an upload wait past its deadline (504) or find the
    # store unavailable (503); it must never be accepted and then lost, nor fail a job.
    check(out, allowed_failures=set(), allowed_refusals={"503", "504"})
    # The frozen worker's job was delivered again and completed there, once.
    assert out.final[frozen_job].status == "completed", out.final[frozen_job]
    assert out.final[frozen_job].attempt >= 2, out.final[frozen_job]
