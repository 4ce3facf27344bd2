"""Uploads streamed into the blob store as they arrive: multipart parts, per-part retries, aborts.

Real parts throughout: moto's S3 server (behind a forwarder that can refuse a request once),
redis-server, and ingest_svc's servicer on a real gRPC server.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from minio import Minio

from datapilot_runtime.backoff import BackoffPolicy
from datapilot_runtime.grpc_errors import error_code_of
from datapilot_runtime.grpc_host import GrpcHost, open_channel
from datapilot_runtime.jobs.queue import JobQueue
from datapilot_runtime.jobs.store import JobStore
from datapilot_runtime.redis_client import connect_redis
from ingest_svc.blob_store import (
    PART_BYTES,
    BlobStore,
    FilesystemBlobStore,
    S3BlobStore,
)
from ingest_svc.servicer import IngestServicer, store_fault
from ingest_svc.settings import IngestSettings
from tests.support.flaky_s3 import FlakyS3
from tests.support.servers import RunningServer

POLICY = BackoffPolicy(attempts=3, initial_delay=0.01, factor=2, max_delay=0.05)
CHUNK = 256 * 1024
WAIT_SECONDS = 30


def _settings(endpoint: str, bucket: str, **extra: object) -> IngestSettings:
    return IngestSettings(
        blob_backend="s3",
        s3_endpoint=endpoint,
        s3_access_key="test",
        s3_secret_key="test",
        s3_bucket=bucket,
        blob_retry_attempts=3,
        **extra,  # type: ignore[arg-type]
    )


def _raw(moto: RunningServer) -> Minio:
    return Minio(moto.url.removeprefix("http://"), "test", "test", secure=False)


async def _open_uploads(moto: RunningServer, bucket: str) -> int:
    """How many multipart uploads the bucket holds (ListMultipartUploads), off the event loop."""
    result = await asyncio.to_thread(_raw(moto)._list_multipart_uploads, bucket)
    return len(result.uploads)


async def _objects(moto: RunningServer, bucket: str) -> list[str]:
    def names() -> list[str]:
        return [str(o.object_name) for o in _raw(moto).list_objects(bucket, recursive=True)]

    return await asyncio.to_thread(names)


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for a condition that another task or process brings about."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.05)


async def _write_all(store: BlobStore, key: str, payload: bytes) -> str:
    writer = await store.open_writer(key)
    for start in range(0, len(payload), CHUNK):
        await writer.write(payload[start : start + CHUNK])
    blob = await writer.complete()
    assert (blob.key, blob.size_bytes) == (key, len(payload))
    return blob.sha256


async def _read_all(store: BlobStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.read_chunks(key)])


async def test_a_large_upload_goes_up_as_a_multipart_upload(moto_server: RunningServer) -> None:
    settings = _settings(moto_server.url, "stream-multipart")
    store = S3BlobStore.from_settings(settings, POLICY)
    payload = os.urandom(2 * PART_BYTES + 17)
    sha = await _write_all(store, "jobs/m/input", payload)
    assert sha == hashlib.sha256(payload).hexdigest()
    assert await _read_all(store, "jobs/m/input") == payload
    stat = await asyncio.to_thread(
        _raw(moto_server).stat_object, "stream-multipart", "jobs/m/input"
    )
    assert str(stat.etag).endswith("-3")  # S3's ETag of a three-part multipart object
    assert await _open_uploads(moto_server, "stream-multipart") == 0


async def test_the_digest_read_midway_covers_every_byte_once(
    moto_server: RunningServer, tmp_path: Path
) -> None:
    s3 = S3BlobStore.from_settings(_settings(moto_server.url, "stream-digest"), POLICY)
    fs = FilesystemBlobStore(tmp_path / "blobs", POLICY)
    payload = os.urandom(PART_BYTES + 3 * CHUNK + 11)
    for store in (s3, fs):
        writer = await store.open_writer("jobs/d/input")
        await writer.write(payload[:CHUNK])
        assert await writer.sha256() == hashlib.sha256(payload[:CHUNK]).hexdigest()
        for start in range(CHUNK, len(payload), CHUNK):
            await writer.write(payload[start : start + CHUNK])
        blob = await writer.complete()
        assert blob.sha256 == hashlib.sha256(payload).hexdigest()
        assert await _read_all(store, "jobs/d/input") == payload


async def test_a_small_upload_is_one_put(moto_server: RunningServer) -> None:
    store = S3BlobStore.from_settings(_settings(moto_server.url, "stream-small"), POLICY)
    payload = os.urandom(PART_BYTES - 1)
    await _write_all(store, "jobs/s/input", payload)
    stat = await asyncio.to_thread(_raw(moto_server).stat_object, "stream-small", "jobs/s/input")
    assert "-" not in str(stat.etag)
    assert await _read_all(store, "jobs/s/input") == payload
    # The multipart upload started when the part was half full is dropped again.
    assert await _open_uploads(moto_server, "stream-small") == 0


async def test_a_refused_part_is_sent_again_alone(moto_server: RunningServer) -> None:
    refused: list[str] = []

    def refuse_part_two_once(method: str, query: dict[str, list[str]]) -> bool:
        if method == "PUT" and query.get("partNumber") == ["2"] and not refused:
            refused.append("2")
            return True
        return False

    with FlakyS3(moto_server.port, refuse_part_two_once) as front:
        store = S3BlobStore.from_settings(_settings(front.url, "stream-retry"), POLICY)
        payload = os.urandom(3 * PART_BYTES + 5)
        await _write_all(store, "jobs/r/input", payload)
        puts = [q["partNumber"][0] for m, q in front.seen if m == "PUT" and "partNumber" in q]
    assert refused == ["2"]
    assert front.mismatched == []
    assert sorted(puts) == ["1", "2", "2", "3", "4"]  # only the refused part went twice
    assert await _read_all(store, "jobs/r/input") == payload


async def test_each_part_is_signed_with_its_own_bytes_hash(moto_server: RunningServer) -> None:
    """Chunks of odd sizes cross the part ends, one chunk is larger than a part: every part's
    signed payload hash (computed as the bytes arrive) is its body's, which S3 checks."""
    with FlakyS3(moto_server.port, lambda method, query: False) as front:
        store = S3BlobStore.from_settings(_settings(front.url, "stream-signed"), POLICY)
        payload = os.urandom(4 * PART_BYTES + 99)
        writer = await store.open_writer("jobs/h/input")
        sizes = itertools.cycle((333_333, 1024 * 1024, 17, 2 * PART_BYTES + 5))
        start = 0
        while start < len(payload):
            end = start + next(sizes)
            await writer.write(payload[start:end])
            start = end
        blob = await writer.complete()
        puts = [q["partNumber"][0] for m, q in front.seen if m == "PUT" and "partNumber" in q]
    assert front.mismatched == []
    assert sorted(puts) == ["1", "2", "3", "4", "5"]
    assert blob.sha256 == hashlib.sha256(payload).hexdigest()
    assert await _read_all(store, "jobs/h/input") == payload


async def test_an_aborted_writer_leaves_nothing(moto_server: RunningServer, tmp_path: Path) -> None:
    s3 = S3BlobStore.from_settings(_settings(moto_server.url, "stream-abort"), POLICY)
    fs = FilesystemBlobStore(tmp_path / "blobs", POLICY)
    for store in (s3, fs):
        writer = await store.open_writer("jobs/a/input")
        for _ in range(2 * PART_BYTES // CHUNK + 1):
            await writer.write(os.urandom(CHUNK))
        await writer.abort()
        await writer.abort()  # twice is harmless
    assert await _open_uploads(moto_server, "stream-abort") == 0
    assert await _objects(moto_server, "stream-abort") == []
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []  # no temp file


async def test_a_writer_cancelled_while_its_replies_are_late_leaves_nothing(
    moto_server: RunningServer,
) -> None:
    """The caller goes away while S3 has done CreateMultipartUpload (or a part) but its reply is
    still on the way: the upload exists in S3 all the same, and the abort must find it."""

    def creates_and_parts(method: str, query: dict[str, list[str]]) -> bool:
        return (method == "POST" and "uploads" in query) or "partNumber" in query

    with FlakyS3(moto_server.port, lambda method, query: False, hold=creates_and_parts) as front:
        store = S3BlobStore.from_settings(_settings(front.url, "stream-late"), POLICY)
        writer = await store.open_writer("jobs/l/input")
        payload = os.urandom(2 * PART_BYTES + 1)

        async def feed() -> None:
            for start in range(0, len(payload), CHUNK):
                await writer.write(payload[start : start + CHUNK])

        feeding = asyncio.create_task(feed())

        async def create_done() -> bool:
            return front.held >= 1 and not feeding.done()

        await _eventually(create_done, "CreateMultipartUpload reached S3")
        feeding.cancel()  # as the servicer's task is cancelled when its client goes away
        with pytest.raises(asyncio.CancelledError):
            await feeding
        front.release.set()  # the replies arrive, after the cancellation
        await writer.abort()
    assert await _open_uploads(moto_server, "stream-late") == 0
    assert await _objects(moto_server, "stream-late") == []


async def _serve(
    settings: IngestSettings, redis_url: str
) -> tuple[GrpcHost, grpc.aio.Channel, ingest_pb2_grpc.IngestServiceStub]:
    redis = await connect_redis(redis_url)
    blobs = S3BlobStore.from_settings(settings, settings.blob_backoff())
    await blobs.check()  # creates the bucket, as the service does at start
    servicer = IngestServicer(settings, blobs, JobStore(redis, 3600), JobQueue(redis))
    host = GrpcHost("ingest_svc", "127.0.0.1:0", 1.0, store_errors=store_fault)
    host.add_service(
        ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name,
        lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server),
    )
    port = await host.start()
    channel = open_channel(f"127.0.0.1:{port}")  # names a tenant (INTERNAL_TENANT)
    return host, channel, ingest_pb2_grpc.IngestServiceStub(channel)


async def _messages(
    payload: bytes, idempotency_key: str = "", hold: asyncio.Event | None = None
) -> AsyncIterator[ingest_pb2.UploadRequest]:
    yield ingest_pb2.UploadRequest(
        metadata=ingest_pb2.UploadMetadata(
            filename="big.csv", content_type="text/csv", idempotency_key=idempotency_key
        )
    )
    for start in range(0, len(payload), 1024 * 1024):
        yield ingest_pb2.UploadRequest(chunk=payload[start : start + 1024 * 1024])
    if hold is not None:  # an upload whose client never finishes it
        await hold.wait()


async def test_an_abandoned_upload_aborts_its_multipart_upload(
    moto_server: RunningServer, redis_server: RunningServer
) -> None:
    bucket = f"abandoned-{uuid.uuid4().hex[:8]}"
    host, channel, stub = await _serve(_settings(moto_server.url, bucket), redis_server.url)
    try:
        call = stub.Upload(_messages(os.urandom(PART_BYTES + 1), hold=asyncio.Event()))

        async def part_sent() -> bool:
            return await _open_uploads(moto_server, bucket) == 1

        await _eventually(part_sent, "the first part reached S3")
        call.cancel()  # the client goes away mid-upload

        async def aborted() -> bool:
            return await _open_uploads(moto_server, bucket) == 0

        await _eventually(aborted, "the multipart upload was aborted")
        assert await _objects(moto_server, bucket) == []
    finally:
        await channel.close()
        await host.stop()


async def test_a_refused_upload_aborts_its_multipart_upload(
    moto_server: RunningServer, redis_server: RunningServer
) -> None:
    bucket = f"too-large-{uuid.uuid4().hex[:8]}"
    settings = _settings(moto_server.url, bucket, max_upload_bytes=PART_BYTES + 1024 * 1024)
    host, channel, stub = await _serve(settings, redis_server.url)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Upload(_messages(os.urandom(PART_BYTES + 2 * 1024 * 1024)), timeout=30)
        assert error_code_of(refused.value) == "payload_too_large"
        assert await _open_uploads(moto_server, bucket) == 0
        assert await _objects(moto_server, bucket) == []
    finally:
        await channel.close()
        await host.stop()


async def test_an_idempotent_replay_of_a_multipart_upload_is_the_same_job(
    moto_server: RunningServer, redis_server: RunningServer
) -> None:
    bucket = f"replay-{uuid.uuid4().hex[:8]}"
    host, channel, stub = await _serve(_settings(moto_server.url, bucket), redis_server.url)
    key = f"k-{uuid.uuid4().hex}"
    payload = os.urandom(PART_BYTES + 3)
    try:
        first = await stub.Upload(_messages(payload, key), timeout=30)
        again = await stub.Upload(_messages(payload, key), timeout=30)
        assert again.job.job_id == first.job.job_id
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await stub.Upload(_messages(payload + b"x", key), timeout=30)
        assert error_code_of(reused.value) == "idempotency_key_reused"
        # One blob, under the first job's key; the replays' parts were dropped.
        assert await _objects(moto_server, bucket) == [f"jobs/{first.job.job_id}/input"]
        assert await _open_uploads(moto_server, bucket) == 0
        assert first.job.size_bytes == len(payload)
    finally:
        await channel.close()
        await host.stop()


async def test_a_writer_aborted_before_its_first_part_leaves_no_upload(
    moto_server: RunningServer,
) -> None:
    store = S3BlobStore.from_settings(_settings(moto_server.url, "stream-early"), POLICY)
    writer = await store.open_writer("jobs/e/input")
    for _ in range(3 * PART_BYTES // 4 // CHUNK):  # past the point where the upload starts
        await writer.write(os.urandom(CHUNK))
    await writer.abort()
    assert await _open_uploads(moto_server, "stream-early") == 0
    assert await _objects(moto_server, "stream-early") == []
