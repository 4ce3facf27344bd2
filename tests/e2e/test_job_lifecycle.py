"""Job lifecycle on real processes: SIGKILL and SIGTERM of workers, cancel, timeout, poison jobs.

The stacks here slow processing down (SIMULATED_SLOW_PROCESSING_SECONDS) so that jobs are caught
while they run, and use a 1 s lease so that a lost worker's jobs are reclaimed quickly.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from datapilot_runtime import artifacts
from devstack.stack import Stack, StackConfig
from tests.support.api import upload, wait_terminal
from tests.support.jobs_redis import holder_pid, job_fields, worker_name_by_pid

CSV = b"region,units\nNorth,3\nSouth,5\nNorth,7\n"
SLOW_SECONDS = 1.5


def _stack(run_dir: Path, env: dict[str, str], workers: int) -> Stack:
    base = {"RETRY_INITIAL_DELAY": "0.05", "RETRY_MAX_DELAY": "0.2", "JOB_LEASE_SECONDS": "1"}
    stack = Stack(StackConfig(run_dir=run_dir, env={**base, **env}, workers=workers))
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    stack.supervise()
    return stack


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two supervised workers, 1.5 s per job, a 0.3 s drain grace."""
    env = {
        "SIMULATED_SLOW_PROCESSING_SECONDS": str(SLOW_SECONDS),
        "WORKER_SHUTDOWN_GRACE_SECONDS": "0.3",
        "WORKER_CONCURRENCY": "2",
    }
    stack = _stack(tmp_path_factory.mktemp("slow"), env, workers=2)
    yield stack
    stack.stop()


@pytest.fixture()
def client(slow_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=slow_stack.gateway_url, timeout=30) as http:
        yield http


def _job_dir(stack: Stack, job_id: str) -> Path:
    return stack.config.run_dir / "blobs" / "jobs" / job_id


def _result_path(stack: Stack, job_id: str) -> Path:
    """The result.json the completed record names (each delivery writes under its own name)."""
    token = job_fields(stack, job_id).get("lease_token", "")
    return stack.config.run_dir / "blobs" / artifacts.result_key(job_id, token)


def _results(stack: Stack, job_id: str) -> list[Path]:
    """Every result any delivery of the job stored."""
    return sorted((_job_dir(stack, job_id) / "results").glob("*"))


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _running_on_some_worker(stack: Stack, job_ids: list[str]) -> tuple[str, int]:
    found: dict[str, int] = {}

    def any_running() -> bool:
        for job_id in job_ids:
            pid = holder_pid(stack, job_id)
            if pid is not None and worker_name_by_pid(stack, pid):
                found[job_id] = pid
                return True
        return False

    _wait_for(any_running, 20, "a job to be processing")
    job_id, pid = next(iter(found.items()))
    return job_id, pid


def test_sigkill_of_a_worker_loses_no_job(slow_stack: Stack, client: httpx.Client) -> None:
    jobs = [upload(client, f"k{i}.csv", CSV)["jobId"] for i in range(6)]
    victim_job, pid = _running_on_some_worker(slow_stack, jobs)
    name = worker_name_by_pid(slow_stack, pid)
    assert name is not None
    slow_stack.processes[name].signal(signal.SIGKILL)
    finals = [wait_terminal(client, job_id, timeout=60) for job_id in jobs]
    assert [f["status"] for f in finals] == ["completed"] * len(jobs)
    by_id = {f["jobId"]: f for f in finals}
    assert by_id[victim_job]["attempt"] >= 2
    for job_id in jobs:
        assert _result_path(slow_stack, job_id).is_file()
        leftovers = [p.name for p in _job_dir(slow_stack, job_id).iterdir()]
        assert sorted(leftovers) == ["input", "results"]
        results = _results(slow_stack, job_id)
        # Only the killed delivery may have left a (never served) result of its own.
        assert len(results) == 1 or (job_id == victim_job and len(results) == 2), results
        assert all(path.suffix == ".json" for path in results), results


def test_sigterm_hands_back_running_jobs_and_exits_zero(
    slow_stack: Stack, client: httpx.Client
) -> None:
    jobs = [upload(client, f"t{i}.csv", CSV)["jobId"] for i in range(4)]
    victim_job, pid = _running_on_some_worker(slow_stack, jobs)
    name = worker_name_by_pid(slow_stack, pid)
    assert name is not None
    popen = slow_stack.processes[name].process
    assert popen is not None
    popen.send_signal(signal.SIGTERM)
    assert popen.wait(15) == 0
    finals = [wait_terminal(client, job_id, timeout=60) for job_id in jobs]
    assert [f["status"] for f in finals] == ["completed"] * len(jobs)
    assert {f["jobId"]: f for f in finals}[victim_job]["attempt"] >= 2


def test_cancel_stops_a_running_job_at_once_and_frees_the_worker(
    slow_stack: Stack, client: httpx.Client
) -> None:
    job_id = upload(client, "c.csv", CSV)["jobId"]
    _wait_for(lambda: holder_pid(slow_stack, job_id) is not None, 20, "processing")
    response = client.post("/api/cancel", params={"jobId": job_id})
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    _wait_for(lambda: "stopped_at" in job_fields(slow_stack, job_id), 5, "the work to stop")
    fields = job_fields(slow_stack, job_id)
    # Stopped before its 1.5 s of simulated work could have ended, not when it ended.
    assert float(fields["stopped_at"]) < float(fields["started_at"]) + SLOW_SECONDS, fields
    # A job sent after the cancel has run its whole 1.5 s once it completes, so by then the
    # cancelled one would have published its result had it kept going.
    follow_up = upload(client, "next.csv", CSV)["jobId"]
    assert wait_terminal(client, follow_up, timeout=30)["status"] == "completed"
    assert not _results(slow_stack, job_id)
    assert client.get("/api/job-status", params={"jobId": job_id}).json()["status"] == "cancelled"
    assert client.get(f"/api/jobs/{job_id}/result").status_code == 409
    again = client.post("/api/cancel", params={"jobId": job_id})
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_poison_job_fails_with_worker_lost_after_max_attempts(
    slow_stack: Stack, client: httpx.Client
) -> None:
    job_id = upload(client, "poison.csv", CSV)["jobId"]
    killed_attempts: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fields = job_fields(slow_stack, job_id)
        if fields.get("status") in ("completed", "failed", "cancelled"):
            break
        pid = holder_pid(slow_stack, job_id)
        name = worker_name_by_pid(slow_stack, pid) if pid else None
        if name and fields.get("attempt") not in killed_attempts:
            killed_attempts.append(fields["attempt"])
            slow_stack.processes[name].signal(signal.SIGKILL)
        time.sleep(0.02)
    final = wait_terminal(client, job_id, timeout=5)
    assert killed_attempts == ["1", "2", "3"]
    assert final["status"] == "failed"
    assert final["error"] == "worker_lost"
    error = client.get(f"/api/jobs/{job_id}/error").json()
    assert error["error"] == "worker_lost" and error["jobId"] == job_id


def test_worker_restarts_are_supervised(slow_stack: Stack) -> None:
    restarted = {name: s.count for name, s in slow_stack.restarts.items() if s.count}
    assert restarted, "the tests above killed workers; the supervisor must have restarted them"
    _wait_for(
        lambda: all(p.alive() for n, p in slow_stack.processes.items() if n.startswith("worker")),
        15,
        "every worker to be running again",
    )


def test_an_input_damaged_in_the_store_fails_its_job(
    slow_stack: Stack, client: httpx.Client
) -> None:
    """An input whose stored bytes changed after its upload is not analysed: the job fails with
    `blob_download_failed` and says the upload is damaged."""
    workers = [
        process.process
        for name, process in slow_stack.processes.items()
        if name.startswith("worker-") and process.process is not None
    ]
    for popen in workers:  # no worker claims the job while its input is changed
        popen.send_signal(signal.SIGSTOP)
    try:
        job_id = upload(client, "damaged.csv", CSV)["jobId"]
        (_job_dir(slow_stack, job_id) / "input").write_bytes(CSV.replace(b"7", b"9"))
    finally:
        for popen in workers:
            popen.send_signal(signal.SIGCONT)
    final = wait_terminal(client, job_id, timeout=30)
    assert (final["status"], final["error"]) == ("failed", "blob_download_failed")
    assert "damaged" in final["errorMessage"]
    assert client.get(f"/api/jobs/{job_id}/error").json()["error"] == "blob_download_failed"
    assert not _results(slow_stack, job_id)


def test_drain_lets_short_jobs_finish(tmp_path: Path) -> None:
    """A job running when SIGTERM arrives is finished by that worker (within its 10 s grace)."""
    env = {"SIMULATED_SLOW_PROCESSING_SECONDS": "0.8", "WORKER_SHUTDOWN_GRACE_SECONDS": "10"}
    stack = _stack(tmp_path, env, workers=1)
    try:
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
            jobs = [upload(http, f"d{i}.csv", CSV)["jobId"] for i in range(2)]
            running, pid = _running_on_some_worker(stack, jobs)
            popen = stack.processes["worker-1"].process
            assert popen is not None and popen.pid == pid
            popen.send_signal(signal.SIGTERM)
            assert popen.wait(15) == 0
            # Read before any restarted worker could touch it: done, on its first delivery.
            drained = job_fields(stack, running)
            finals = [wait_terminal(http, job_id, timeout=30) for job_id in jobs]
        assert (drained["status"], drained["attempt"]) == ("completed", "1"), drained
        assert [f["status"] for f in finals] == ["completed", "completed"]
        assert {f["jobId"]: f for f in finals}[running]["attempt"] == 1
    finally:
        stack.stop()


def test_timeout_fails_the_job_with_error_json(tmp_path: Path) -> None:
    env = {"SIMULATED_SLOW_PROCESSING_SECONDS": "5", "JOB_TIMEOUT_SECONDS": "2"}
    stack = _stack(tmp_path, env, workers=1)
    try:
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
            job_id = upload(http, "slow.csv", CSV)["jobId"]
            final = wait_terminal(http, job_id, timeout=15)
            assert final["status"] == "failed"
            assert final["error"] == "timeout"
            fields = job_fields(stack, job_id)
            # Failed at its deadline, not when its 5 s of work would have ended.
            finished, timeout_at = float(fields["finished_at"]), float(fields["timeout_at"])
            assert timeout_at - 0.1 < finished < float(fields["started_at"]) + 5, fields
            error = http.get(f"/api/jobs/{job_id}/error").json()
            assert error["error"] == "timeout"
            assert not _results(stack, job_id)
    finally:
        stack.stop()
