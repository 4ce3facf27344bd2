"""The blob janitor against real parts: redis-server, moto's S3 server and the filesystem store.

Each test runs on both backends, with a bucket (or folder) and a janitor state key of its own.
Blob ages are judged by the janitor's clock; "old" blobs are made by running it with a clock
hours ahead (S3 cannot backdate an object), never by waiting.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from prometheus_client import REGISTRY
from redis.exceptions import RedisError

from datapilot_runtime import artifacts
from datapilot_runtime.backoff import BackoffPolicy
from datapilot_runtime.context import TENANT_METADATA_KEY
from datapilot_runtime.grpc_host import GrpcHost
from datapilot_runtime.jobs.queue import JobQueue
from datapilot_runtime.jobs.store import JobRecord, JobStore, Status
from datapilot_runtime.redis_client import RedisClient, connect_redis
from devstack.processes import free_port, python_process, wait_grpc_serving
from ingest_svc.blob_janitor import REASON_EXPIRED, REASON_ORPHAN, BlobJanitor, JanitorStateStore
from ingest_svc.blob_store import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    FilesystemBlobStore,
    S3BlobStore,
)
from ingest_svc.servicer import IngestServicer, store_fault
from ingest_svc.settings import IngestSettings
from tests.support.fault_proxy import FaultProxy
from tests.support.servers import RunningServer, start_redis

POLICY = BackoffPolicy(attempts=3, initial_delay=0.01, factor=2, max_delay=0.05)
MIN_AGE = 3600.0
LATER = 2 * MIN_AGE  # how far ahead the clock runs to make every blob "old"
WAIT_SECONDS = 30


@dataclass
class Parts:
    """A blob store, a job store on the test Redis, and what a janitor needs."""

    backend: str
    blobs: BlobStore
    settings: IngestSettings
    jobs: JobStore
    queue: JobQueue
    state: JanitorStateStore
    redis: RedisClient

    def janitor(self, *, ahead: float = 0.0, batch: int = 1000) -> BlobJanitor:
        return BlobJanitor(
            self.blobs,
            self.jobs,
            self.queue,
            self.state,
            owner="test",
            interval_seconds=60,
            min_age_seconds=MIN_AGE,
            batch_size=batch,
            clock=lambda: time.time() + ahead,
        )


@pytest.fixture(params=["fs", "s3"])
async def parts(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    moto_server: RunningServer,
    redis_server: RunningServer,
) -> AsyncIterator[Parts]:
    settings = IngestSettings(
        blob_backend=request.param,
        blob_fs_root=str(tmp_path / "blobs"),
        s3_endpoint=moto_server.url,
        s3_access_key="test",
        s3_secret_key="test",
        s3_bucket=f"janitor-{uuid.uuid4().hex[:10]}",
        blob_retry_attempts=3,
    )
    blobs: BlobStore = (
        S3BlobStore.from_settings(settings, POLICY)
        if request.param == "s3"
        else FilesystemBlobStore(tmp_path / "blobs", POLICY)
    )
    client = await connect_redis(redis_server.url)
    state = JanitorStateStore(client, f"test:janitor:{uuid.uuid4().hex}")
    yield Parts(
        request.param,
        blobs,
        settings,
        JobStore(client, record_ttl_seconds=3600),
        JobQueue(client),
        state,
        client,
    )
    await client.aclose()


def _job_id() -> str:
    return uuid.uuid4().hex


async def _put(blobs: BlobStore, key: str, size: int = 10) -> str:
    await blobs.put_stream(key, io.BytesIO(b"x" * size))
    return key


async def _exists(blobs: BlobStore, key: str) -> bool:
    try:
        await blobs.stat(key)
    except BlobNotFound:
        return False
    return True


async def _submit(jobs: JobStore, job_id: str) -> None:
    now = time.time()
    record = JobRecord(
        job_id=job_id,
        status=Status.QUEUED,
        created_at=now,
        timeout_at=now + 60,
        input_key=artifacts.input_key(job_id),
    )
    await JobQueue(jobs.redis).submit(record)


async def _all_blobs(job_id: str, blobs: BlobStore) -> list[str]:
    return [
        await _put(blobs, artifacts.input_key(job_id), 100),
        await _put(blobs, artifacts.result_key(job_id, uuid.uuid4().hex), 20),
        await _put(blobs, artifacts.error_key(job_id), 3),
    ]


def _deleted(reason: str) -> float:
    value = REGISTRY.get_sample_value("datapilot_blob_janitor_deleted_total", {"reason": reason})
    return value or 0.0


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for a condition that another task or process brings about."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.05)


async def test_the_blobs_of_an_expired_job_are_deleted(parts: Parts) -> None:
    job_id = _job_id()
    keys = await _all_blobs(job_id, parts.blobs)
    expiring = JobStore(parts.redis, record_ttl_seconds=1)
    await _submit(expiring, job_id)
    failed = await expiring.transition(job_id, (Status.QUEUED,), Status.FAILED)
    assert failed.applied  # terminal: the record now expires after its TTL (1 s)

    async def expired() -> bool:
        return await parts.jobs.get(job_id) is None

    await _eventually(expired, "the record expired")
    before = _deleted(REASON_EXPIRED)
    report = await parts.janitor(ahead=LATER).run_pass()
    assert report.deleted == {REASON_EXPIRED: 3}
    assert [key for key in keys if await _exists(parts.blobs, key)] == []
    assert _deleted(REASON_EXPIRED) == before + 3


async def test_a_live_job_keeps_its_blobs_however_old(parts: Parts) -> None:
    queued, done = _job_id(), _job_id()
    keys = await _all_blobs(queued, parts.blobs) + await _all_blobs(done, parts.blobs)
    await _submit(parts.jobs, queued)
    await _submit(parts.jobs, done)
    assert (await parts.jobs.transition(done, (Status.QUEUED,), Status.COMPLETED)).applied
    report = await parts.janitor(ahead=365 * 86400).run_pass()
    assert report.deleted == {}
    assert report.listed == 6
    assert [key for key in keys if await _exists(parts.blobs, key)] == keys


async def test_a_young_orphan_is_kept(parts: Parts) -> None:
    key = await _put(parts.blobs, artifacts.input_key(_job_id()))
    report = await parts.janitor().run_pass()
    assert report.deleted == {}
    assert await _exists(parts.blobs, key)


async def test_an_old_orphan_is_deleted(parts: Parts) -> None:
    orphan = await _put(parts.blobs, artifacts.input_key(_job_id()))
    foreign = await _put(parts.blobs, "jobs/not-a-job-id/input")  # outside the layout: kept
    before = _deleted(REASON_ORPHAN)
    report = await parts.janitor(ahead=LATER).run_pass()
    assert report.deleted == {REASON_ORPHAN: 1}
    assert not await _exists(parts.blobs, orphan)
    assert await _exists(parts.blobs, foreign)
    assert _deleted(REASON_ORPHAN) == before + 1


async def test_the_stored_bytes_gauge_is_the_sum_of_the_sizes(parts: Parts) -> None:
    """Over several bounded passes (2 keys each), the round's totals are the store's."""
    sizes: dict[str, int] = {}
    for size in (5, 70, 300, 4096):
        job_id = _job_id()
        await _submit(parts.jobs, job_id)
        key = await _put(parts.blobs, artifacts.input_key(job_id), size)
        sizes[key] = size
        error = await _put(parts.blobs, artifacts.error_key(job_id), size + 1)
        sizes[error] = size + 1
    gone = await _put(parts.blobs, artifacts.input_key(_job_id()), 999)  # an old orphan
    janitor = parts.janitor(ahead=LATER, batch=2)
    passes = 0
    while not (report := await janitor.run_pass()).round_done:
        passes += 1
        assert passes < 20
    assert passes >= 4  # the batch bounded each pass
    assert not await _exists(parts.blobs, gone)
    assert REGISTRY.get_sample_value("datapilot_blob_stored_bytes") == sum(sizes.values())
    assert REGISTRY.get_sample_value("datapilot_blob_stored_objects") == len(sizes)
    state = await parts.state.load()
    assert (state.stored_bytes, state.stored_objects, state.cursor) == (
        sum(sizes.values()),
        len(sizes),
        "",
    )
    assert report.round_done


async def _serve(
    settings: IngestSettings, blobs: BlobStore, redis_url: str
) -> tuple[GrpcHost, grpc.aio.Channel, ingest_pb2_grpc.IngestServiceStub, RedisClient]:
    redis = await connect_redis(redis_url)
    servicer = IngestServicer(settings, blobs, JobStore(redis, 3600), JobQueue(redis))
    host = GrpcHost("ingest_svc", "127.0.0.1:0", 1.0, store_errors=store_fault)
    host.add_service(
        ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name,
        lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server),
    )
    port = await host.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return host, channel, ingest_pb2_grpc.IngestServiceStub(channel), redis


async def _upload(payload: bytes) -> AsyncIterator[ingest_pb2.UploadRequest]:
    yield ingest_pb2.UploadRequest(
        metadata=ingest_pb2.UploadMetadata(filename="a.csv", content_type="text/csv")
    )
    yield ingest_pb2.UploadRequest(chunk=payload)


async def test_a_pass_during_an_upload_keeps_its_input(
    parts: Parts, redis_server: RunningServer
) -> None:
    """The upload's blob is stored, its record not yet (Redis unreachable): the janitor waits.

    ingest reaches Redis through a proxy that blackholes it, so the upload stops between
    storing its input and creating its record: the one window where a blob has no record.
    """
    proxy = await FaultProxy(redis_server.port).start()
    host, channel, stub, ingest_redis = await _serve(parts.settings, parts.blobs, proxy.url)
    try:
        proxy.blackholed = True
        call = stub.Upload(
            _upload(b"a,b\n1,2\n"),
            timeout=WAIT_SECONDS,
            metadata=((TENANT_METADATA_KEY, "tenant-a"),),  # ingest refuses a call without one
        )
        listed: list[BlobInfo] = []

        async def input_stored() -> bool:
            listed[:] = [blob async for blob in parts.blobs.list_blobs("jobs/")]
            return bool(listed)

        await _eventually(input_stored, "the upload stored its input")
        (stored,) = listed
        job = artifacts.job_blob(stored.key)
        assert job is not None and await parts.jobs.get(job.job_id) is None
        report = await parts.janitor().run_pass()  # its blob is young: kept
        assert report.deleted == {} and report.listed == 1
        proxy.blackholed = False  # Redis is back: the upload creates its record
        response = await call
        assert response.job.job_id == job.job_id
        report = await parts.janitor(ahead=LATER).run_pass()  # old now, but its record exists
        assert report.deleted == {}
        assert await _exists(parts.blobs, stored.key)
    finally:
        await channel.close()
        await host.stop()
        await ingest_redis.aclose()
        await proxy.stop()


async def test_a_pass_that_cannot_reach_redis_deletes_nothing(
    parts: Parts, redis_server: RunningServer
) -> None:
    """No answer about a record is never taken for "no record" (the job store is cut off)."""
    key = await _put(parts.blobs, artifacts.input_key(_job_id()))
    proxy = await FaultProxy(redis_server.port).start()
    client = await connect_redis(proxy.url, socket_timeout=0.5)
    try:
        janitor = BlobJanitor(
            parts.blobs,
            JobStore(client, record_ttl_seconds=3600),
            parts.queue,
            parts.state,
            owner="test",
            interval_seconds=60,
            min_age_seconds=MIN_AGE,
            batch_size=100,
            clock=lambda: time.time() + LATER,
        )
        proxy.blackholed = True
        with pytest.raises(RedisError):
            await janitor.run_pass()
        assert await _exists(parts.blobs, key)
    finally:
        await client.aclose()
        await proxy.stop()


def _metric(port: int, name: str) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def test_the_ingest_process_runs_the_janitor(tmp_path: Path) -> None:
    """python -m ingest_svc with a short interval: old orphans go, the rest stays and is counted."""
    redis = start_redis(tmp_path / "redis")
    root = tmp_path / "blobs"
    blobs = FilesystemBlobStore(root, POLICY)
    client = await connect_redis(redis.url)
    live = _job_id()
    await _submit(JobStore(client, record_ttl_seconds=3600), live)
    kept = [
        await _put(blobs, artifacts.input_key(live), 1000),
        await _put(blobs, artifacts.error_key(live), 24),
        await _put(blobs, artifacts.input_key(_job_id()), 7),  # a young orphan
    ]
    old = await _put(blobs, artifacts.input_key(_job_id()), 5000)
    hours_ago = time.time() - LATER
    os.utime(root / old, (hours_ago, hours_ago))
    address, metrics_port = f"127.0.0.1:{free_port()}", free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis.url,
        "BLOB_BACKEND": "fs",
        "BLOB_FS_ROOT": str(root),
        "GRPC_LISTEN_ADDR": address,
        "METRICS_PORT": str(metrics_port),
        "BLOB_JANITOR_INTERVAL_SECONDS": "0.2",
        "BLOB_JANITOR_MIN_AGE_SECONDS": str(MIN_AGE),
    }
    ingest = python_process("ingest", ["ingest_svc"], env, tmp_path / "ingest.log")
    ingest.start()
    try:
        await asyncio.to_thread(wait_grpc_serving, address, WAIT_SECONDS, ingest)

        async def counted() -> bool:
            name = "datapilot_blob_stored_objects"
            return await asyncio.to_thread(_metric, metrics_port, name) == len(kept)

        await _eventually(counted, "the janitor's round was exported")
        stored = await asyncio.to_thread(_metric, metrics_port, "datapilot_blob_stored_bytes")
        assert stored == 1000 + 24 + 7
        assert not await _exists(blobs, old)
        assert [key for key in kept if await _exists(blobs, key)] == kept
        # SIGTERM while the janitor runs every 0.2 s: it does not hold up the drain.
        assert await asyncio.to_thread(ingest.stop) == 0
    finally:
        if ingest.alive():
            ingest.stop()
        await client.aclose()
        redis.stop()
