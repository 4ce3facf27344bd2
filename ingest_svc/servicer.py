"""IngestService: streaming upload into the blob store, job records, downloads, artifacts."""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import AsyncIterator

import grpc
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc

from datapilot_runtime import artifacts
from datapilot_runtime.blob_store import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    StoredBlob,
    spooled_file,
)
from datapilot_runtime.context import job_id_var
from datapilot_runtime.job_proto import record_to_proto
from datapilot_runtime.job_store import ACTIVE, JobRecord, JobStore, Status
from ingest_svc.settings import IngestSettings

_LOGGER = logging.getLogger(__name__)
MAX_CHUNK_BYTES = 1024 * 1024
_KIND_TO_KEY = {
    ingest_pb2.BLOB_KIND_INPUT: artifacts.input_key,
    ingest_pb2.BLOB_KIND_RESULT: artifacts.result_key,
    ingest_pb2.BLOB_KIND_ERROR: artifacts.error_key,
}


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):  # type: ignore[misc]
    """Owns the blobs and the job records."""

    def __init__(self, settings: IngestSettings, blobs: BlobStore, jobs: JobStore) -> None:
        self._settings = settings
        self._blobs = blobs
        self._jobs = jobs

    async def Upload(
        self,
        request_iterator: AsyncIterator[ingest_pb2.UploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> ingest_pb2.UploadResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("payload") != "metadata":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first message must be metadata")
        assert first is not None
        meta = first.metadata
        limit = self._settings.max_upload_bytes
        if meta.declared_size_bytes > limit:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"file is larger than the {limit} byte limit"
            )
        job_id = uuid.uuid4().hex
        job_id_var.set(job_id)
        with spooled_file() as spool:
            total = 0
            async for message in request_iterator:
                chunk = message.chunk
                if len(chunk) > MAX_CHUNK_BYTES:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "chunk over 1 MiB")
                total += len(chunk)
                if total > limit:
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"file is larger than the {limit} byte limit",
                    )
                spool.write(chunk)
            try:
                blob = await self._blobs.put_stream(artifacts.input_key(job_id), spool)
            except BlobStoreError:
                _LOGGER.exception("upload could not be stored")
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, "blob_upload_failed: the blob store is unavailable"
                )
        now = time.time()
        record = JobRecord(
            job_id=job_id,
            status=Status.QUEUED,
            created_at=now,
            timeout_at=now + self._settings.job_timeout_seconds,
            filename=meta.filename[:255],
            size_bytes=blob.size_bytes,
            sha256=blob.sha256,
            tenant=meta.tenant,
            content_type=meta.content_type[:127],
            input_key=blob.key,
        )
        await self._jobs.create_and_enqueue(record)
        _LOGGER.info("job queued", extra={"size_bytes": blob.size_bytes})
        return ingest_pb2.UploadResponse(job=record_to_proto(record))

    async def _existing(self, job_id: str, context: grpc.aio.ServicerContext) -> JobRecord:
        record = None
        if artifacts.JOB_ID_RE.match(job_id):
            record = await self._jobs.get(job_id)
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {job_id!r} not found")
        assert record is not None
        job_id_var.set(job_id)
        return record

    async def GetJob(
        self, request: ingest_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.GetJobResponse:
        record = await self._existing(request.job_id, context)
        if record.timed_out:
            record = await self._expire(record)
        return ingest_pb2.GetJobResponse(job=record_to_proto(record))

    async def _expire(self, record: JobRecord) -> JobRecord:
        """A job past its timeoutAt that is still active is failed with `timeout` (the seed)."""
        message = "The job did not finish before its deadline (timeoutAt)."
        now = time.time()
        await self._put(
            artifacts.error_key(record.job_id),
            artifacts.error_document(record.job_id, "timeout", message, now),
        )
        await self._jobs.transition(
            record.job_id,
            ACTIVE,
            Status.FAILED,
            {"error": "timeout", "error_message": message, "finished_at": now},
        )
        _LOGGER.info("job timed out (seen by job-status)")
        fresh = await self._jobs.get(record.job_id)
        return fresh or record

    async def CancelJob(
        self, request: ingest_pb2.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.CancelJobResponse:
        record = await self._existing(request.job_id, context)
        if record.status is not Status.CANCELLED:
            result = await self._jobs.transition(
                record.job_id, ACTIVE, Status.CANCELLED, {"finished_at": time.time()}
            )
            if not result.applied and result.status is not Status.CANCELLED:
                await context.abort(
                    grpc.StatusCode.ABORTED,
                    f"job is already {result.status.value if result.status else 'gone'}"
                    " and cannot be cancelled",
                )
            _LOGGER.info("job cancelled")
        fresh = await self._jobs.get(record.job_id)
        return ingest_pb2.CancelJobResponse(job=record_to_proto(fresh or record))

    async def Download(
        self, request: ingest_pb2.DownloadRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingest_pb2.DownloadResponse]:
        key_of = _KIND_TO_KEY.get(request.kind)
        if key_of is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown blob kind")
            return
        record = await self._existing(request.job_id, context)
        try:
            async for chunk in self._blobs.read_chunks(key_of(record.job_id)):
                yield ingest_pb2.DownloadResponse(chunk=chunk)
        except BlobNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, "the job has no such blob")
        except BlobStoreError:
            _LOGGER.exception("download failed")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the blob store is unavailable")

    async def PutArtifact(
        self, request: ingest_pb2.PutArtifactRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.PutArtifactResponse:
        if request.kind not in (ingest_pb2.BLOB_KIND_RESULT, ingest_pb2.BLOB_KIND_ERROR):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "artifacts are result or error")
        record = await self._existing(request.job_id, context)
        try:
            blob = await self._put(_KIND_TO_KEY[request.kind](record.job_id), request.content)
        except BlobStoreError:
            _LOGGER.exception("artifact could not be stored")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the blob store is unavailable")
        return ingest_pb2.PutArtifactResponse(
            blob={"key": blob.key, "size_bytes": blob.size_bytes, "sha256": blob.sha256}
        )

    async def _put(self, key: str, content: bytes) -> StoredBlob:
        return await self._blobs.put_stream(key, io.BytesIO(content))
