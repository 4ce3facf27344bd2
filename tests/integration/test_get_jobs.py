"""ingest_svc's GetJobs: each read answered for its own tenant as GetJob would, or left to GetJob.

Against a real redis-server and a real ingest_svc gRPC server with the admissions the service
installs (tenant required, the per-tenant rate limit).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc

from datapilot_runtime.context import INTERNAL_TENANT, QUOTA_METADATA_KEY, TENANT_METADATA_KEY
from datapilot_runtime.grpc_host import GrpcHost
from datapilot_runtime.jobs.queue import JobQueue
from datapilot_runtime.jobs.store import JobRecord, JobStore, Status
from datapilot_runtime.redis_client import connect_redis
from ingest_svc.blob_store import FilesystemBlobStore
from ingest_svc.metrics import RATE_LIMITED
from ingest_svc.rate_limit import TenantRateLimit
from ingest_svc.servicer import IngestServicer, require_tenant, store_fault
from ingest_svc.settings import IngestSettings
from tests.support.servers import RunningServer

RATE = 3  # requests a minute per tenant, where the test limits them


@pytest.fixture()
async def store(redis_server: RunningServer) -> AsyncIterator[JobStore]:
    client = await connect_redis(redis_server.url)
    yield JobStore(client, record_ttl_seconds=3600)
    await client.aclose()


async def _serve(store: JobStore, tmp_path: Path, per_minute: int) -> tuple[GrpcHost, str]:
    settings = IngestSettings(blob_fs_root=str(tmp_path / "blobs"), blob_retry_attempts=1)
    blobs = FilesystemBlobStore(tmp_path / "blobs", settings.blob_backoff())
    limit = TenantRateLimit(store.redis, per_minute)
    servicer = IngestServicer(settings, blobs, store, JobQueue(store.redis), limit)
    host = GrpcHost(
        "ingest_svc",
        "127.0.0.1:0",
        0.2,
        admissions=(require_tenant, limit),
        store_errors=store_fault,
    )
    host.add_service(
        ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name,
        lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server),
    )
    port = await host.start()
    return host, f"127.0.0.1:{port}"


@pytest.fixture()
async def ingest(store: JobStore, tmp_path: Path) -> AsyncIterator[str]:
    host, address = await _serve(store, tmp_path, 0)
    yield address
    await host.stop()


@pytest.fixture()
async def limited(store: JobStore, tmp_path: Path) -> AsyncIterator[str]:
    host, address = await _serve(store, tmp_path, RATE)
    yield address
    await host.stop()


async def _job(store: JobStore, tenant: str, timeout_in: float = 60) -> str:
    job_id = uuid.uuid4().hex
    now = time.time()
    await JobQueue(store.redis).submit(
        JobRecord(
            job_id=job_id,
            status=Status.QUEUED,
            created_at=now,
            timeout_at=now + timeout_in,
            tenant=tenant,
            filename=f"{tenant}.csv",
        )
    )
    return job_id


def _read(job_id: str, tenant: str) -> ingest_pb2.JobRead:
    return ingest_pb2.JobRead(job_id=job_id, tenant=tenant, request_id=uuid.uuid4().hex)


async def test_each_read_is_answered_for_its_own_tenant_or_left(
    ingest: str, store: JobStore
) -> None:
    acme, beta = await _job(store, "acme"), await _job(store, "beta")
    expired = await _job(store, "acme", timeout_in=-1)
    reads = [
        _read(acme, "acme"),
        _read(acme, "beta"),  # another tenant's job: left (GetJob answers NOT_FOUND)
        _read(beta, "beta"),
        _read(uuid.uuid4().hex, "acme"),  # missing
        _read("not a job id", "acme"),
        _read(acme, ""),  # no tenant: left (GetJob refuses it)
        _read(expired, "acme"),  # past its deadline: left (GetJob fails it with `timeout`)
        _read(beta, INTERNAL_TENANT),  # the services see every job, as with GetJob
    ]
    # A raw channel: the call names no tenant, each read does.
    async with grpc.aio.insecure_channel(ingest) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        reply = await stub.GetJobs(ingest_pb2.GetJobsRequest(reads=reads), timeout=10)
        answered = [r.job.job_id if r.HasField("job") else None for r in reply.results]
        assert answered == [acme, None, beta, None, None, None, None, beta]
        assert reply.results[0].job.filename == "acme.csv"
        assert not any(r.charged for r in reply.results)  # no rate limit here
        # What GetJobs left, GetJob answers: the expired job is failed with `timeout`.
        get = ingest_pb2.GetJobRequest(job_id=expired)
        job = (await stub.GetJob(get, metadata=((TENANT_METADATA_KEY, "acme"),))).job
        assert job.error == "timeout"
        empty = await stub.GetJobs(ingest_pb2.GetJobsRequest(), timeout=10)
        assert list(empty.results) == []
    record = await store.get(acme)
    assert record is not None and record.status is Status.QUEUED


async def test_each_read_is_charged_once_and_a_refused_one_is_left(
    limited: str, store: JobStore
) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    job_id = await _job(store, tenant)
    limited_before = RATE_LIMITED._value.get()
    async with grpc.aio.insecure_channel(limited) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        reads = [_read(job_id, tenant) for _ in range(RATE + 1)] + [_read(job_id, "")]
        reply = await stub.GetJobs(ingest_pb2.GetJobsRequest(reads=reads), timeout=10)
        results = list(reply.results)
        assert sum(r.HasField("job") for r in results) == RATE
        assert [r.charged for r in results].count(True) == RATE
        refused = [r for r in results[:-1] if not r.HasField("job")]
        assert len(refused) == 1 and not refused[0].charged
        assert not results[-1].charged and not results[-1].HasField("job")  # no tenant
        # Passed on to GetJob, not counted as limited yet: GetJob's own refusal counts it.
        assert RATE_LIMITED._value.get() == limited_before
        get = stub.GetJob(
            ingest_pb2.GetJobRequest(job_id=job_id),
            metadata=((TENANT_METADATA_KEY, tenant), (QUOTA_METADATA_KEY, "1")),
        )
        with pytest.raises(grpc.aio.AioRpcError) as refusal:
            await get
        assert refusal.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert RATE_LIMITED._value.get() == limited_before + 1
