"""Internal defaults fail closed: no tenant is nobody, not everybody; no lease token fences none.

Against a real redis-server and a real ingest_svc gRPC server (with the admissions the service
installs); the callers are the same channels the services use.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc

from datapilot_runtime.context import (
    INTERNAL_TENANT,
    TENANT_METADATA_KEY,
    serving_call_var,
    tenant_var,
)
from datapilot_runtime.grpc_errors import error_code_of
from datapilot_runtime.grpc_host import GrpcHost, open_channel
from datapilot_runtime.interceptors import outgoing_metadata
from datapilot_runtime.jobs.keys import job_key
from datapilot_runtime.jobs.queue import JobQueue
from datapilot_runtime.jobs.store import ACTIVE, JobRecord, JobStore, Status
from datapilot_runtime.redis_client import connect_redis
from ingest_svc.blob_store import FilesystemBlobStore
from ingest_svc.servicer import IngestServicer, require_tenant, store_fault
from ingest_svc.settings import IngestSettings
from tests.support.servers import RunningServer


@pytest.fixture()
async def store(redis_server: RunningServer) -> AsyncIterator[JobStore]:
    client = await connect_redis(redis_server.url)
    yield JobStore(client, record_ttl_seconds=3600)
    await client.aclose()


async def _job(store: JobStore, tenant: str = "acme") -> str:
    job_id = uuid.uuid4().hex
    now = time.time()
    await JobQueue(store.redis).submit(
        JobRecord(
            job_id=job_id, status=Status.QUEUED, created_at=now, timeout_at=now + 60, tenant=tenant
        )
    )
    return job_id


async def test_an_empty_lease_token_is_refused_by_every_fenced_operation(store: JobStore) -> None:
    job_id = await _job(store)
    with pytest.raises(ValueError, match="empty lease token"):
        await store.claim(job_id, "", 3, take_over=False)
    # A processing record that somehow holds no token is not anyone's to complete.
    await store.redis.hset(job_key(job_id), mapping={"status": "processing", "lease_token": ""})
    with pytest.raises(ValueError, match="empty lease token"):
        await store.transition(job_id, ACTIVE, Status.COMPLETED, lease_token="")
    with pytest.raises(ValueError, match="empty lease token"):
        await JobQueue(store.redis).requeue(job_id, "", "0-1")
    record = await store.get(job_id)
    assert record is not None and record.status is Status.PROCESSING
    # Unfenced transitions (cancel, expiry) say so with None.
    cancelled = await store.transition(job_id, ACTIVE, Status.CANCELLED)
    assert cancelled.applied


async def test_the_claim_script_itself_refuses_an_empty_token(store: JobStore) -> None:
    job_id = await _job(store)
    with pytest.raises(Exception, match="empty lease token"):
        await store._claim(keys=[job_key(job_id)], args=["", "3", "0", "1", "w", "0-1"])
    record = await store.get(job_id)
    assert record is not None and record.status is Status.QUEUED


@pytest.fixture()
async def ingest(store: JobStore, tmp_path: Path) -> AsyncIterator[str]:
    settings = IngestSettings(blob_fs_root=str(tmp_path / "blobs"), blob_retry_attempts=1)
    blobs = FilesystemBlobStore(tmp_path / "blobs", settings.blob_backoff())
    servicer = IngestServicer(settings, blobs, store, JobQueue(store.redis))
    host = GrpcHost(
        "ingest_svc", "127.0.0.1:0", 0.2, admissions=(require_tenant,), store_errors=store_fault
    )
    host.add_service(
        ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name,
        lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server),
    )
    port = await host.start()
    yield f"127.0.0.1:{port}"
    await host.stop()


def _as(tenant: str | None) -> tuple[tuple[str, str], ...]:
    return () if tenant is None else ((TENANT_METADATA_KEY, tenant),)


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_call_without_a_tenant_is_refused(ingest: str, store: JobStore) -> None:
    job_id = await _job(store)
    # A raw channel: no interceptor names a tenant for it.
    async with grpc.aio.insecure_channel(ingest) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        get = ingest_pb2.GetJobRequest(job_id=job_id)
        for metadata in ((), _as("")):
            assert (
                await _code(stub.GetJob(get, metadata=metadata)) is grpc.StatusCode.UNAUTHENTICATED
            )
            listing = stub.ListJobs(ingest_pb2.ListJobsRequest(), metadata=metadata)
            assert await _code(listing) is grpc.StatusCode.UNAUTHENTICATED
            cancel = stub.CancelJob(ingest_pb2.CancelJobRequest(job_id=job_id), metadata=metadata)
            assert await _code(cancel) is grpc.StatusCode.UNAUTHENTICATED
        assert await _code(stub.GetJob(get, metadata=_as("acme"))) is grpc.StatusCode.OK
        # Another tenant's job does not exist for you; the services (INTERNAL_TENANT) see it.
        assert await _code(stub.GetJob(get, metadata=_as("beta"))) is grpc.StatusCode.NOT_FOUND
        internal = stub.GetJob(get, metadata=_as(INTERNAL_TENANT))
        assert await _code(internal) is grpc.StatusCode.OK
        # ... but a job list is always one tenant's.
        listing = stub.ListJobs(ingest_pb2.ListJobsRequest(), metadata=_as(INTERNAL_TENANT))
        assert await _code(listing) is grpc.StatusCode.UNAUTHENTICATED
    record = await store.get(job_id)
    assert record is not None and record.status is Status.QUEUED  # no refused cancel applied


async def test_a_result_without_a_lease_token_is_not_stored(ingest: str, store: JobStore) -> None:
    job_id = await _job(store)
    await store.redis.hset(job_key(job_id), mapping={"status": "processing", "lease_token": ""})
    async with open_channel(ingest) as channel:  # the worker's channel: INTERNAL_TENANT
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.PutArtifact(
                ingest_pb2.PutArtifactRequest(
                    job_id=job_id, kind=ingest_pb2.BLOB_KIND_RESULT, content=b"{}"
                )
            )
    assert error_code_of(refused.value) == "lease_lost"


def test_the_default_tenant_is_only_for_a_service_acting_for_itself() -> None:
    def tenant_of(metadata: grpc.aio.Metadata) -> str | None:
        values = [value for key, value in metadata if key == TENANT_METADATA_KEY]
        return str(values[0]) if values else None

    assert tenant_of(outgoing_metadata("", None, INTERNAL_TENANT)) == INTERNAL_TENANT
    # Serving a call that named no tenant: the calls it makes name none either (refused
    # downstream), never the internal tenant.
    serving = serving_call_var.set(True)
    try:
        assert tenant_of(outgoing_metadata("", None, INTERNAL_TENANT)) is None
        tenant = tenant_var.set("acme")
        try:
            assert tenant_of(outgoing_metadata("", None, INTERNAL_TENANT)) == "acme"
        finally:
            tenant_var.reset(tenant)
    finally:
        serving_call_var.reset(serving)
