"""ingest_svc's one store-error mapping, through a real gRPC server: store failures are UNAVAILABLE.

The interceptor answers with ingest's `store_fault`: a blob store that cannot store the upload is
`blob_upload_failed`, an unreachable Redis is `store_unavailable`; never UNKNOWN.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc

from datapilot_runtime.grpc_errors import error_code_of
from datapilot_runtime.grpc_host import GrpcHost, open_channel
from datapilot_runtime.jobs.queue import JobQueue
from datapilot_runtime.jobs.store import JobStore
from datapilot_runtime.redis_client import RedisClient, connect_redis
from ingest_svc.blob_store import FilesystemBlobStore
from ingest_svc.servicer import IngestServicer, store_fault
from ingest_svc.settings import IngestSettings
from tests.support.servers import RunningServer


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _serve(
    redis: RedisClient, blob_root: Path
) -> tuple[GrpcHost, grpc.aio.Channel, ingest_pb2_grpc.IngestServiceStub]:
    settings = IngestSettings(blob_fs_root=str(blob_root), blob_retry_attempts=1)
    blobs = FilesystemBlobStore(blob_root, settings.blob_backoff())
    servicer = IngestServicer(settings, blobs, JobStore(redis, 3600), JobQueue(redis))
    host = GrpcHost("ingest_svc", "127.0.0.1:0", 1.0, store_errors=store_fault)
    host.add_service(
        ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name,
        lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server),
    )
    port = await host.start()
    channel = open_channel(f"127.0.0.1:{port}")  # names a tenant (INTERNAL_TENANT)
    return host, channel, ingest_pb2_grpc.IngestServiceStub(channel)


async def _upload(stub: ingest_pb2_grpc.IngestServiceStub) -> ingest_pb2.UploadResponse:
    async def messages() -> AsyncIterator[ingest_pb2.UploadRequest]:
        yield ingest_pb2.UploadRequest(
            metadata=ingest_pb2.UploadMetadata(filename="a.csv", content_type="text/csv")
        )
        yield ingest_pb2.UploadRequest(chunk=b"a,b\n1,2\n")

    response: ingest_pb2.UploadResponse = await stub.Upload(messages(), timeout=10)
    return response


async def test_a_blob_store_that_cannot_store_the_upload_is_blob_upload_failed(
    redis_server: RunningServer, tmp_path: Path
) -> None:
    redis = await connect_redis(redis_server.url)
    host, channel, stub = await _serve(redis, tmp_path / "blobs")
    try:
        assert (await _upload(stub)).job.job_id  # the store works: the upload is accepted
        # Every input lives under jobs/: a file in its place makes each store fail (OSError).
        jobs_dir = tmp_path / "blobs" / "jobs"
        for path in sorted(jobs_dir.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        jobs_dir.rmdir()
        jobs_dir.write_bytes(b"not a folder")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _upload(stub)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert error_code_of(refused.value) == "blob_upload_failed"
    finally:
        await channel.close()
        await host.stop()
        await redis.aclose()


async def test_an_unreachable_redis_is_store_unavailable(tmp_path: Path) -> None:
    # No connect_redis (it pings): the client is made for a port where nothing listens.
    redis = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{_closed_port()}/0", decode_responses=True, socket_connect_timeout=1
    )
    host, channel, stub = await _serve(redis, tmp_path / "blobs")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetJob(ingest_pb2.GetJobRequest(job_id=uuid.uuid4().hex), timeout=10)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert error_code_of(refused.value) == "store_unavailable"
        with pytest.raises(grpc.aio.AioRpcError) as upload_refused:
            await _upload(stub)
        assert upload_refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert error_code_of(upload_refused.value) == "store_unavailable"
        assert not list((tmp_path / "blobs" / "jobs").rglob("input"))  # the orphan was removed
    finally:
        await channel.close()
        await host.stop()
        await redis.aclose()


async def _download(stub: ingest_pb2_grpc.IngestServiceStub, job_id: str) -> bytes:
    call = stub.Download(
        ingest_pb2.DownloadRequest(job_id=job_id, kind=ingest_pb2.BLOB_KIND_INPUT), timeout=10
    )
    return b"".join([message.chunk async for message in call])


async def test_a_damaged_input_is_refused_as_data_loss(
    redis_server: RunningServer, tmp_path: Path
) -> None:
    """An input changed, cut short or grown in the store after its upload is never handed out as
    the job's input: the download ends in DATA_LOSS / blob_download_failed."""
    redis = await connect_redis(redis_server.url)
    host, channel, stub = await _serve(redis, tmp_path / "blobs")
    try:
        job_id = (await _upload(stub)).job.job_id
        assert await _download(stub, job_id) == b"a,b\n1,2\n"
        [stored] = (tmp_path / "blobs" / "jobs").rglob("input")
        for damaged in (b"a,b\n1,3\n", b"a,b\n1,", b"a,b\n1,2\n3,4\n"):
            stored.write_bytes(damaged)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _download(stub, job_id)
            assert refused.value.code() is grpc.StatusCode.DATA_LOSS
            assert error_code_of(refused.value) == "blob_download_failed"
            assert "damaged" in (refused.value.details() or "")
        stored.write_bytes(b"a,b\n1,2\n")  # put back as uploaded: readable again
        assert await _download(stub, job_id) == b"a,b\n1,2\n"
    finally:
        await channel.close()
        await host.stop()
        await redis.aclose()
