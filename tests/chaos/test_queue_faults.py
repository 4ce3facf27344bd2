"""Queue faults: a frozen worker whose reclaimer dies, Redis losing its data, a job nobody polls."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from datapilot_runtime.grpc_host import READINESS_SERVICE
from datapilot_runtime.jobs.keys import CONSUMER_GROUP, job_key, stream_key
from devstack.processes import wait_tcp
from devstack.stack import Stack
from tests.chaos.harness import (
    SCALE,
    Upload,
    UploadStream,
    check,
    job_records,
    metric_total,
    report,
    running_stack,
    sales_csv,
    settle,
    wait_until,
)
from tests.chaos.summary import Outcomes
from tests.support.jobs_redis import holder_pid, job_fields, worker_name_by_pid

pytestmark = pytest.mark.timeout(SCALE.test_timeout)
JOBS = 4 if SCALE.name == "short" else 20
# Slow enough that the freeze, the takeover and the kill all land while the job runs.
ENV = {"SIMULATED_SLOW_PROCESSING_SECONDS": "2", "WORKER_CONCURRENCY": "2"}


def _upload(stack: Stack, out: Outcomes, prefix: str, count: int, first: int = 0) -> None:
    uploads = [Upload(f"{prefix}{n}.csv", sales_csv(first + n)) for n in range(count)]
    UploadStream(stack.gateway_url, uploads, out).start().join(60)
    assert len(out.refused) == 0, out.line()


def _redis(stack: Stack) -> redis.Redis:
    return redis.Redis.from_url(stack.redis_url, decode_responses=True)


def test_a_worker_frozen_past_its_lease_whose_reclaimer_dies_loses_nothing(
    tmp_path: Path,
) -> None:
    """Worker A is SIGSTOPped holding a job; B takes the job over and is SIGKILLed; A resumes.

    A finds its lease lost and must leave the entry (now B's) pending: with B dead, the entry
    is reclaimed again (by A) and the job completes.
    """
    out = Outcomes("8 frozen worker, reclaimer killed")
    with running_stack(tmp_path, ENV, workers=2) as stack:
        _upload(stack, out, "f", JOBS)
        job_id = ""

        def held() -> bool:
            nonlocal job_id
            job_id = next((j for j in out.accepted if holder_pid(stack, j)), "")
            return bool(job_id)

        wait_until(held, 60, "a job to be running")
        frozen_pid = holder_pid(stack, job_id)
        assert frozen_pid is not None
        frozen = stack.processes[str(worker_name_by_pid(stack, frozen_pid))]
        frozen.signal(signal.SIGSTOP)
        try:
            wait_until(
                lambda: holder_pid(stack, job_id) not in (None, frozen_pid),
                60,
                "the other worker to take the frozen worker's job over",
            )
            reclaimer_pid = holder_pid(stack, job_id)
            assert reclaimer_pid is not None
            reclaimer = stack.processes[str(worker_name_by_pid(stack, reclaimer_pid))]
            reclaimer.signal(signal.SIGKILL)
            reclaimer.stop()
        finally:
            frozen.signal(signal.SIGCONT)
        settle(stack.gateway_url, out, timeout=SCALE.test_timeout / 2)
        attempts = int(job_fields(stack, job_id).get("attempt", "0"))
    out.notes.append(f"the frozen job ran {attempts} times")
    report(out)
    check(out, allowed_failures=set(), allowed_refusals=set())
    assert out.final[job_id].status == "completed", out.final[job_id]
    assert attempts >= 3, "the job was not taken over twice (frozen worker, then reclaimer)"


def _flushall(stack: Stack) -> str:
    client = _redis(stack)
    try:
        client.flushall()
    finally:
        client.close()
    return "FLUSHALL"


def _empty_restart(stack: Stack) -> str:
    process = stack.processes["redis"]
    assert process.stop() == 0
    data = stack.config.run_dir / "redis"
    shutil.rmtree(data)
    data.mkdir()
    process.start()
    port = int(stack.redis_url.rsplit(":", 1)[1].split("/", 1)[0])
    wait_tcp("127.0.0.1", port, 30, process)
    return "restart on an empty data folder"


def _stream_deleted(stack: Stack) -> str:
    client = _redis(stack)
    try:
        client.delete(stream_key(0))
    finally:
        client.close()
    return "job stream deleted (evicted)"


@pytest.mark.parametrize("fault", [_flushall, _empty_restart, _stream_deleted])
def test_redis_losing_its_data_mid_run_heals_without_a_restart(
    tmp_path: Path, fault: Callable[[Stack], str]
) -> None:
    """Jobs are running when Redis loses its data; new jobs complete without restarting anything.

    Jobs whose records went with the data answer 404 (documented): they are counted as erased,
    not lost, and no worker may recreate their records. When only the stream goes, the records
    survive and the sweeper re-enqueues every one of them: all complete.
    """
    out = Outcomes(f"9 redis data loss ({fault.__name__.strip('_')})")
    with running_stack(tmp_path, {**ENV, "SIMULATED_SLOW_PROCESSING_SECONDS": "1"}) as stack:
        before = Outcomes("before")
        _upload(stack, before, "b", JOBS)
        wait_until(lambda: any(holder_pid(stack, j) for j in before.accepted), 60, "a running job")
        what = fault(stack)
        records = job_records(stack)
        erased = [j for j in before.accepted if j not in records]
        for job_id in before.accepted:
            if job_id in records:
                out.accept(job_id, "before")
        _upload(stack, out, "a", JOBS, first=100)
        settle(stack.gateway_url, out, timeout=SCALE.test_timeout / 2)
        with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
            answers = {
                client.get("/api/job-status", params={"jobId": j}).status_code for j in erased
            }
        resurrected = set(erased) & job_records(stack)
        dead = stack.dead()
        repairs = {
            kind: sum(
                metric_total(port, "datapilot_queue_repairs_total", kind=kind)
                for name, port in stack.metrics_ports.items()
                if name.startswith("worker")
            )
            for kind in ("group_recreated", "requeued")
        }
    out.notes.append(
        f"{what}: {len(erased)} jobs erased (404), consumer group recreated "
        f"{repairs['group_recreated']:.0f}x, {repairs['requeued']:.0f} jobs re-enqueued"
    )
    report(out)
    assert not dead, f"processes died: {dead}"
    assert not resurrected, f"a worker recreated erased records: {sorted(resurrected)}"
    assert answers <= {404}, answers
    assert repairs["group_recreated"] >= 1, "no worker noticed the lost consumer group"
    check(out, allowed_failures=set(), allowed_refusals=set())
    if fault is _stream_deleted:
        assert not erased and len(out.jobs_labelled("before")) == JOBS
        assert repairs["requeued"] >= 1, "the sweeper re-enqueued no job of the lost stream"


def test_a_job_nobody_polls_times_out_by_itself(tmp_path: Path) -> None:
    """The sweeper fails a job past its deadline (with error.json) though no client asks."""
    env = {
        "JOB_TIMEOUT_SECONDS": "2",
        "SIMULATED_SLOW_PROCESSING_SECONDS": "30",
        "WORKER_CONCURRENCY": "1",
    }
    out = Outcomes("10 unpolled timeout")
    with running_stack(tmp_path, env, workers=1) as stack:
        _upload(stack, out, "t", 2)  # one runs past its deadline, one waits in the queue
        wait_until(
            lambda: all(job_fields(stack, j).get("status") == "failed" for j in out.accepted),
            60,
            "both jobs to fail without a poll",
        )
        codes = {job_fields(stack, j).get("error") for j in out.accepted}
        settle(stack.gateway_url, out, timeout=30)
    report(out)
    assert codes == {"timeout"}, codes
    check(out, allowed_failures={"timeout"}, allowed_refusals=set())


def test_a_cancel_whose_announcement_was_lost_still_stops_the_job(tmp_path: Path) -> None:
    """The record says cancelled but nothing was published: the heartbeat stops the job."""
    env = {"SIMULATED_SLOW_PROCESSING_SECONDS": "60", "WORKER_CONCURRENCY": "1"}
    out = Outcomes("11 cancel without pub/sub")
    with running_stack(tmp_path, env, workers=1) as stack:
        _upload(stack, out, "c", 1)
        (job_id,) = out.accepted
        wait_until(lambda: holder_pid(stack, job_id) is not None, 60, "the job to run")
        client = _redis(stack)
        try:
            # What CancelJob stores, without its PUBLISH (as if the listener's link was down).
            client.hset(job_key(job_id), mapping={"status": "cancelled"})
            wait_until(
                lambda: bool(job_fields(stack, job_id).get("stopped_at")),
                60,
                "the worker to stop the cancelled job",
            )
            # The worker records stopped_at and then acknowledges: wait for the second step.
            wait_until(
                lambda: client.xpending(stream_key(0), CONSUMER_GROUP)["pending"] == 0,
                30,
                "the cancelled job's entry to be acknowledged",
            )
        finally:
            client.close()
        settle(stack.gateway_url, out, timeout=30)
    report(out)
    assert out.final[job_id].status == "cancelled"


def _readiness(stack: Stack, name: str) -> int:
    with grpc.insecure_channel(stack.addresses[name]) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=READINESS_SERVICE), timeout=5
        )
    return int(reply.status)


def test_readiness_and_a_metric_say_when_the_queue_cannot_be_read(tmp_path: Path) -> None:
    """The consumer group is lost and Redis refuses to recreate it (an ACL): not ready, metric 0.

    Once Redis accepts it again, the group is recreated and a new job completes, no restart.
    """
    out = Outcomes("12 queue unreadable")
    serving = health_pb2.HealthCheckResponse.SERVING
    with running_stack(tmp_path, ENV, workers=1) as stack:
        port = stack.metrics_ports["worker-1"]
        wait_until(lambda: _readiness(stack, "worker-1") == serving, 60, "the worker ready")
        client = _redis(stack)
        try:
            client.execute_command("ACL", "SETUSER", "default", "-xgroup|create")  # type: ignore[no-untyped-call]
            client.delete(stream_key(0))  # the group goes with it
            wait_until(
                lambda: (
                    _readiness(stack, "worker-1") != serving
                    and metric_total(port, "datapilot_queue_healthy") == 0
                ),
                60,
                "readiness and the metric to report the unreadable queue",
            )
            client.execute_command("ACL", "SETUSER", "default", "+xgroup|create")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        wait_until(
            lambda: (
                _readiness(stack, "worker-1") == serving
                and metric_total(port, "datapilot_queue_healthy") == 1
            ),
            60,
            "the worker ready again",
        )
        _upload(stack, out, "q", 1)
        settle(stack.gateway_url, out, timeout=60)
    report(out)
    check(out, allowed_failures=set(), allowed_refusals=set())
