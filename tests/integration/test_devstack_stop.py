"""`make run` leaves nothing behind: on SIGTERM to its process group, or when killed."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.processes import ManagedProcess, descendant_pids, free_port, wait_http_ok
from tests.conftest import FAST_RETRY_ENV

# Bounds on waiting for events, not timing claims: a loaded 2-core machine is slow to start.
START_TIMEOUT_SECONDS = 180.0
GONE_TIMEOUT_SECONDS = 90.0
# The services the runner starts as its own children (the worker also has a forkserver below it).
SERVICES = 6  # redis, ingest, llm, analysis, worker-1, gateway


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (tells a process from a later one given the same pid)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def _alive(processes: dict[int, str | None]) -> list[int]:
    return [pid for pid, started in processes.items() if _start_time(pid) == started]


def _wait_gone(processes: dict[int, str | None]) -> list[int]:
    """Poll /proc until none of `processes` runs any more; returns those still running."""
    deadline = time.monotonic() + GONE_TIMEOUT_SECONDS
    while (alive := _alive(processes)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


@pytest.fixture()
def runner(tmp_path: Path) -> Iterator[ManagedProcess]:
    """`python -m devstack` as `make run` starts it, in its own process group, on free ports."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "DATAPILOT_RUN_DIR", "GATEWAY_PORT"}
    }
    env.update(FAST_RETRY_ENV)
    env.update(
        DATAPILOT_RUN_DIR=str(tmp_path / "run"),
        GATEWAY_PORT=str(free_port()),
        WORKER_PROCESSES="1",
        GRPC_SHUTDOWN_GRACE_SECONDS="2",
        WORKER_SHUTDOWN_GRACE_SECONDS="2",
    )
    process = ManagedProcess(
        "runner", [sys.executable, "-m", "devstack"], env, tmp_path / "runner.log"
    )
    process.start()
    try:
        wait_http_ok(
            f"http://127.0.0.1:{env['GATEWAY_PORT']}/readyz", START_TIMEOUT_SECONDS, process
        )
        yield process
    finally:
        if process.alive():
            os.killpg(process.pid, signal.SIGKILL)
        process.stop()


def _descendants(runner: ManagedProcess) -> dict[int, str | None]:
    found = {pid: _start_time(pid) for pid in descendant_pids(runner.pid)}
    assert len(found) >= SERVICES, f"the runner has only {len(found)} descendants"
    return found


def test_sigterm_to_the_process_group_stops_everything(runner: ManagedProcess) -> None:
    below = _descendants(runner)
    os.killpg(runner.pid, signal.SIGTERM)  # what Ctrl-C or a harness does to `make run`
    assert runner.process is not None
    assert runner.process.wait(GONE_TIMEOUT_SECONDS) == 0
    assert _wait_gone(below) == []


def test_sigkill_to_the_runner_alone_leaves_nothing_running(runner: ManagedProcess) -> None:
    below = _descendants(runner)
    os.kill(runner.pid, signal.SIGKILL)
    assert runner.process is not None
    assert runner.process.wait(GONE_TIMEOUT_SECONDS) == -signal.SIGKILL
    assert _wait_gone(below) == []
