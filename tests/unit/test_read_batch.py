"""The gateway's job-read batcher: a lone read is a GetJob, reads that wait go out in a GetJobs."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from datapilot.common.v1 import common_pb2
from datapilot.ingest.v1 import ingest_pb2

from datapilot_runtime.context import (
    INTERNAL_TOKEN_METADATA_KEY,
    QUOTA_METADATA_KEY,
    TENANT_METADATA_KEY,
)
from gateway.deps import MAX_IN_FLIGHT, MAX_WAIT_SECONDS, JobReadBatcher


class _Unavailable(grpc.aio.AioRpcError):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
        )


class _Ingest:
    """GetJob and GetJobs stubs: GetJob blocks until `release` is set; GetJobs answers `left`
    ids unanswered (charged or not, as `charged` says) and raises while `failing`."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.get_job_calls: list[tuple[str, dict[str, str], float]] = []
        self.get_jobs_calls: list[tuple[list[ingest_pb2.JobRead], dict[str, str]]] = []
        self.left: set[str] = set()
        self.charged = False
        self.failing = False
        self.missing: set[str] = set()

    async def get_job(
        self, request: ingest_pb2.GetJobRequest, **call: Any
    ) -> ingest_pb2.GetJobResponse:
        self.get_job_calls.append((request.job_id, dict(call["metadata"]), call["timeout"]))
        await self.release.wait()
        if request.job_id in self.missing:
            raise _Unavailable()
        return ingest_pb2.GetJobResponse(job=common_pb2.Job(job_id=request.job_id))

    async def get_jobs(
        self, request: ingest_pb2.GetJobsRequest, **call: Any
    ) -> ingest_pb2.GetJobsResponse:
        self.get_jobs_calls.append((list(request.reads), dict(call["metadata"])))
        if self.failing:
            raise _Unavailable()
        results = [
            ingest_pb2.JobReadResult(charged=self.charged)
            if read.job_id in self.left
            else ingest_pb2.JobReadResult(
                job=common_pb2.Job(job_id=read.job_id, tenant=read.tenant), charged=self.charged
            )
            for read in request.reads
        ]
        return ingest_pb2.GetJobsResponse(results=results)


def _batcher(ingest: _Ingest) -> JobReadBatcher:
    return JobReadBatcher(ingest.get_job, ingest.get_jobs, "secret")


async def _busy_line(batcher: JobReadBatcher, ingest: _Ingest) -> list[asyncio.Task[Any]]:
    """MAX_IN_FLIGHT GetJob reads in flight (blocked until ingest.release is set)."""
    first = [
        asyncio.ensure_future(batcher.read(f"first{i}", "acme", f"r{i}", "", 5))
        for i in range(MAX_IN_FLIGHT)
    ]
    await asyncio.sleep(0)  # each runs until GetJob blocks
    assert len(ingest.get_job_calls) == MAX_IN_FLIGHT
    return first


async def test_a_lone_read_is_one_getjob_charging_the_quota() -> None:
    ingest = _Ingest()
    ingest.release.set()
    job = await _batcher(ingest).read("j1", "acme", "req-1", "tp", 3.0)
    assert job.job_id == "j1" and not ingest.get_jobs_calls
    [(job_id, metadata, timeout)] = ingest.get_job_calls
    assert job_id == "j1" and timeout == 3.0
    assert metadata[TENANT_METADATA_KEY] == "acme" and metadata[QUOTA_METADATA_KEY] == "1"
    assert metadata["traceparent"] == "tp"


async def test_reads_that_wait_for_the_line_go_out_in_one_getjobs() -> None:
    ingest = _Ingest()
    batcher = _batcher(ingest)
    first = await _busy_line(batcher, ingest)
    waiting = [
        asyncio.ensure_future(batcher.read(f"w{i}", f"tenant{i}", f"rw{i}", f"tp{i}", 5))
        for i in range(5)
    ]
    await asyncio.sleep(0)
    assert not ingest.get_jobs_calls  # nothing goes out while the line is full
    ingest.release.set()
    jobs = await asyncio.gather(*waiting, *first)
    assert [j.job_id for j in jobs[:5]] == [f"w{i}" for i in range(5)]
    assert [j.tenant for j in jobs[:5]] == [f"tenant{i}" for i in range(5)]
    [(reads, metadata)] = ingest.get_jobs_calls
    assert [(r.job_id, r.tenant, r.request_id, r.traceparent) for r in reads] == [
        (f"w{i}", f"tenant{i}", f"rw{i}", f"tp{i}") for i in range(5)
    ]
    assert metadata == {INTERNAL_TOKEN_METADATA_KEY: "secret"}  # no tenant, no quota charge
    assert len(ingest.get_job_calls) == MAX_IN_FLIGHT


@pytest.mark.parametrize("charged", [True, False])
async def test_a_read_getjobs_leaves_is_asked_again_with_getjob(charged: bool) -> None:
    ingest = _Ingest()
    ingest.left = {"gone"}
    ingest.charged = charged
    batcher = _batcher(ingest)
    first = await _busy_line(batcher, ingest)
    left = asyncio.ensure_future(batcher.read("gone", "acme", "rg", "", 5))
    found = asyncio.ensure_future(batcher.read("here", "acme", "rh", "", 5))
    await asyncio.sleep(0)
    ingest.release.set()
    assert (await found).job_id == "here"
    assert (await left).job_id == "gone"  # GetJob's answer
    await asyncio.gather(*first)
    again = [c for c in ingest.get_job_calls if c[0] == "gone"]
    assert len(again) == 1
    # Charged by GetJobs already: the GetJob does not charge the request a second time.
    assert (QUOTA_METADATA_KEY in again[0][1]) is not charged
    assert 0 < again[0][2] <= 5


async def test_a_failed_getjobs_call_leaves_every_read_to_getjob() -> None:
    ingest = _Ingest()
    ingest.failing = True
    ingest.missing = {"w1"}  # GetJob fails for this one: its error reaches its caller
    batcher = _batcher(ingest)
    first = await _busy_line(batcher, ingest)
    ok = asyncio.ensure_future(batcher.read("w0", "acme", "r0", "", 5))
    bad = asyncio.ensure_future(batcher.read("w1", "acme", "r1", "", 5))
    await asyncio.sleep(0)
    ingest.release.set()
    assert (await ok).job_id == "w0"
    with pytest.raises(grpc.aio.AioRpcError):
        await bad
    await asyncio.gather(*first)
    assert len(ingest.get_jobs_calls) == 1
    assert {c[0] for c in ingest.get_job_calls} >= {"w0", "w1"}


async def test_a_read_whose_client_went_away_is_not_sent() -> None:
    ingest = _Ingest()
    batcher = _batcher(ingest)
    first = await _busy_line(batcher, ingest)
    gone = asyncio.ensure_future(batcher.read("gone", "acme", "rg", "", 5))
    kept = asyncio.ensure_future(batcher.read("kept", "acme", "rk", "", 5))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    ingest.release.set()
    assert (await kept).job_id == "kept"
    await asyncio.gather(*first)
    [(reads, _)] = ingest.get_jobs_calls
    assert [r.job_id for r in reads] == ["kept"]


async def test_a_read_whose_deadline_passes_while_it_waits_asks_getjob_at_once() -> None:
    ingest = _Ingest()
    batcher = _batcher(ingest)
    first = await _busy_line(batcher, ingest)
    late = asyncio.ensure_future(batcher.read("late", "acme", "rl", "", MAX_WAIT_SECONDS / 5))
    await asyncio.sleep(MAX_WAIT_SECONDS * 2)  # past its deadline, the line still full
    [(_, _, timeout)] = [c for c in ingest.get_job_calls if c[0] == "late"]
    assert timeout == 0.0  # GetJob then answers DEADLINE_EXCEEDED at once (a 504)
    assert not ingest.get_jobs_calls  # it did not wait for the line
    ingest.release.set()
    await asyncio.gather(late, *first)


async def test_slow_calls_on_the_line_hold_no_read_longer_than_the_wait() -> None:
    ingest = _Ingest()
    batcher = _batcher(ingest)
    first = await _busy_line(batcher, ingest)  # two GetJobs that never end (a stalled store)
    waiting = [
        asyncio.ensure_future(batcher.read(f"w{i}", "acme", f"r{i}", "", 5)) for i in range(3)
    ]
    jobs = await asyncio.wait_for(asyncio.gather(*waiting), MAX_WAIT_SECONDS * 20)
    assert [j.job_id for j in jobs] == ["w0", "w1", "w2"]
    [(reads, _)] = ingest.get_jobs_calls  # sent together once they had waited long enough
    assert len(reads) == 3 and not any(task.done() for task in first)
    ingest.release.set()
    await asyncio.gather(*first)
