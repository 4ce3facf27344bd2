"""IngestService: streaming upload into the blob store, job records, downloads, artifacts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator

import grpc
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from redis.exceptions import RedisError

from datapilot_runtime import artifacts, tracing
from datapilot_runtime.context import (
    ADMITTED_METADATA,
    INTERNAL_TENANT,
    RETRY_AFTER_METADATA_KEY,
    TENANT_METADATA_KEY,
    UPLOAD_SIZE_METADATA_KEY,
    job_id_var,
    request_id_var,
    tenant_var,
)
from datapilot_runtime.error_codes import ErrorCode
from datapilot_runtime.grpc_errors import ERROR_CODE_METADATA_KEY, abort, grpc_status
from datapilot_runtime.interceptors import Rejection, StoreFault
from datapilot_runtime.jobs.proto import record_to_proto
from datapilot_runtime.jobs.queue import JobQueue, ReplicationLagging
from datapilot_runtime.jobs.status import PROTO_TO_STATUS
from datapilot_runtime.jobs.store import ACTIVE, JobRecord, JobStore, Status
from datapilot_runtime.redis_client import redis_fault
from datapilot_runtime.report.options import InvalidOptions, parse_options
from ingest_svc.blob_store import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    StoredBlob,
)
from ingest_svc.metrics import JOB_WATCHES, SPOOL_BYTES
from ingest_svc.rate_limit import TenantRateLimit
from ingest_svc.settings import IngestSettings

_LOGGER = logging.getLogger(__name__)
_SERVICE = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name
GET_JOB_METHOD = f"/{_SERVICE}/GetJob"
GET_JOBS_METHOD = f"/{_SERVICE}/GetJobs"
MAX_CHUNK_BYTES = 1024 * 1024
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_CURSOR_RE = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?")
_BLOB_WRITING_METHODS = frozenset({"Upload", "PutArtifact"})
_BLOB_KINDS = (ingest_pb2.BLOB_KIND_INPUT, ingest_pb2.BLOB_KIND_RESULT, ingest_pb2.BLOB_KIND_ERROR)
# An upload refused for a full spool is retried after this long (others will have finished).
SPOOL_RETRY_AFTER_SECONDS = 2
# A WatchJob waits on the job's feed at most this long per read: under the Redis client's socket
# timeout, and often enough to send heartbeats on time.
WATCH_BLOCK_MS = 1000
DEFAULT_HEARTBEAT_MS = 15_000
MIN_HEARTBEAT_MS = 50
_EVENT_ID_RE = re.compile(r"^\d{1,20}-\d{1,20}$")
# The event id of a record sent when the job has no feed (it expired): resuming from it reads
# the whole feed, should one appear again.
_FEED_START = "0-0"


def _blob_key(kind: int, record: JobRecord) -> str | None:
    """The blob a job's record names for `kind`; a result only once the job completed."""
    if kind == ingest_pb2.BLOB_KIND_INPUT:
        return artifacts.input_key(record.job_id)
    if kind == ingest_pb2.BLOB_KIND_ERROR:
        return artifacts.error_key(record.job_id)
    if record.status is Status.COMPLETED:
        return artifacts.result_key(record.job_id, record.lease_token)
    return None


def _encode_cursor(cursor: str) -> str:
    return base64.urlsafe_b64encode(cursor.encode()).decode() if cursor else ""


def _decode_cursor(token: str) -> str | None:
    """The cursor inside a page token ('' for none), or None if the token is not ours.

    Ours encode a finite, non-negative score (a creation time) as Redis writes it back: digits
    with at most one point. Anything else (`nan`, `inf`, `-1`, `1e9`, padding tricks) is
    refused here rather than reaching the store, where it would fail as a store error (503).
    """
    if not token:
        return ""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
        cursor = raw.decode("ascii")
    except (ValueError, UnicodeError):
        return None
    if _encode_cursor(cursor) != token or not _CURSOR_RE.fullmatch(cursor):
        return None
    return cursor


async def require_tenant(method: str, metadata: dict[str, str]) -> Rejection | None:
    """Refuse a call that names no tenant (fail closed: an empty tenant is nobody, not all).

    The gateway names the API key's tenant (or `anonymous`); a service acting for itself (the
    worker) names INTERNAL_TENANT.
    """
    if metadata.get(TENANT_METADATA_KEY, "") or method == GET_JOBS_METHOD:
        return None  # GetJobs: each of its reads names its tenant (refused there without one)
    return Rejection(ErrorCode.UNAUTHENTICATED, "the call names no tenant")


class UploadSpool:
    """The bytes of uploads in flight on this process, bounded by INGEST_SPOOL_MAX_BYTES.

    Each upload reserves its size before any byte is read: the size its caller announces
    (UPLOAD_SIZE_METADATA_KEY, the gateway's Content-Length) or else MAX_UPLOAD_BYTES. A
    refusal is made at the start, never mid-stream (an abort while the caller still writes
    reaches it as INTERNAL), and what the process holds (temp files, S3 part buffers) never
    outgrows its volume and memory.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.max_bytes:
            return False
        self.used += size
        SPOOL_BYTES.set(self.used)
        return True

    def give_back(self, size: int) -> None:
        self.used -= size
        SPOOL_BYTES.set(self.used)


def _announced_size(context: grpc.aio.ServicerContext, limit: int) -> int:
    """What an upload will hold at most: its announced size, within the upload limit."""
    for key, value in context.invocation_metadata() or ():
        if key == UPLOAD_SIZE_METADATA_KEY and str(value).isdigit():
            return min(int(value), limit)
    return limit


async def _overloaded(context: grpc.aio.ServicerContext) -> None:
    await context.abort(
        grpc_status(ErrorCode.OVERLOADED),
        "Too many uploads are in flight (INGEST_SPOOL_MAX_BYTES); retry shortly.",
        (
            (ERROR_CODE_METADATA_KEY, ErrorCode.OVERLOADED.value),
            (RETRY_AFTER_METADATA_KEY, str(SPOOL_RETRY_AFTER_SECONDS)),
        ),
    )


def store_fault(method: str, exc: BaseException) -> StoreFault | None:
    """The one mapping of ingest's store failures (the interceptor answers with it).

    Redis: `store_unavailable`. The blob store: `blob_upload_failed` when the call stores a blob
    (Upload, PutArtifact: the code clients and the worker know for a failed store), else
    `blob_store_unavailable`.
    """
    if redis_fault(exc):
        return StoreFault(ErrorCode.STORE_UNAVAILABLE, "job store (Redis)")
    if isinstance(exc, BlobStoreError):
        code = (
            ErrorCode.BLOB_UPLOAD_FAILED
            if method in _BLOB_WRITING_METHODS
            else ErrorCode.BLOB_STORE_UNAVAILABLE
        )
        return StoreFault(code, "blob store")
    return None


def _idempotency_key(tenant: str, key: str) -> str:
    return hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):  # type: ignore[misc]
    """Owns the blobs and the job records."""

    def __init__(
        self,
        settings: IngestSettings,
        blobs: BlobStore,
        jobs: JobStore,
        queue: JobQueue,
        rate_limit: TenantRateLimit | None = None,
    ) -> None:
        self._settings = settings
        # GetJobs charges each read itself (the interceptor's admission charges a whole call).
        self._rate_limit = rate_limit
        self._blobs = blobs
        self._jobs = jobs
        self._queue = queue
        self.spool = UploadSpool(settings.ingest_spool_max_bytes)

    async def Upload(
        self,
        request_iterator: AsyncIterator[ingest_pb2.UploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> ingest_pb2.UploadResponse:
        reserved = _announced_size(context, self._settings.max_upload_bytes)
        if not self.spool.take(reserved):
            await _overloaded(context)
        try:
            # Tells the caller it was admitted (rate limit, spool) before it reads its client's
            # body: the gateway waits for this, so a refused upload costs no body.
            await context.send_initial_metadata((ADMITTED_METADATA,))
            return await self._upload(request_iterator, context)
        finally:
            self.spool.give_back(reserved)

    async def _upload(
        self,
        request_iterator: AsyncIterator[ingest_pb2.UploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> ingest_pb2.UploadResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            # The gateway opens the call before reading the body and cancels it when it refuses
            # the request itself (400, 408, 413, 415): nothing was sent, nothing is stored.
            await abort(context, ErrorCode.CANCELLED, "the upload ended before its metadata")
        if first.WhichOneof("payload") != "metadata":
            await abort(context, ErrorCode.BAD_UPLOAD, "metadata must come first")
        meta = first.metadata
        limit = self._settings.max_upload_bytes
        too_large = f"The file is larger than the {limit} byte limit."
        try:  # the gateway checked them; internal callers may not have
            options = parse_options(meta.options_json)
        except InvalidOptions as exc:
            await abort(context, ErrorCode.INVALID_OPTIONS, f"Invalid options: {exc}.")
        job_id = uuid.uuid4().hex
        job_id_var.set(job_id)
        # The bytes go to the store as they arrive (an S3 multipart upload); the blob appears
        # under its key only once the whole file is in and the idempotency check has passed.
        writer = await self._blobs.open_writer(artifacts.input_key(job_id))
        try:
            async for message in request_iterator:
                chunk = message.chunk
                # A refusal drops what was sent before it answers (its status goes out at once).
                if len(chunk) > MAX_CHUNK_BYTES:
                    await writer.abort()
                    await abort(context, ErrorCode.BAD_UPLOAD, "chunk over 1 MiB")
                if writer.size + len(chunk) > limit:
                    await writer.abort()
                    await abort(context, ErrorCode.PAYLOAD_TOO_LARGE, too_large)
                await writer.write(chunk)
            size, sha = writer.size, await writer.sha256()
            tenant = tenant_var.get()
            if not tenant:  # `require_tenant` refuses such a call; never store a tenant-less job
                await abort(context, ErrorCode.UNAUTHENTICATED, "the call names no tenant")
            idem = _idempotency_key(tenant, meta.idempotency_key) if meta.idempotency_key else ""
            if idem:
                existing = await self._queue.find_idempotent(tenant, idem)
                if existing is not None:
                    await writer.abort()
                    return await self._replay(existing, sha, options.to_json(), context)
            blob = await writer.complete()
        except BaseException:
            # Refused, failed, or abandoned (client gone, deadline: CancelledError): drop what
            # was sent. Shielded, so a second cancellation cannot leave the upload behind.
            await asyncio.shield(writer.abort())
            raise
        now = time.time()
        record = JobRecord(
            job_id=job_id,
            status=Status.QUEUED,
            created_at=now,
            timeout_at=now + self._settings.job_timeout_seconds,
            filename=meta.filename[:255],
            size_bytes=size,
            sha256=blob.sha256,
            tenant=tenant,
            content_type=meta.content_type[:127],
            input_key=blob.key,
            request_id=request_id_var.get() or "",
            options_json=options.to_json(),
            traceparent=tracing.current_traceparent(),
        )
        try:
            if idem:
                winner = await self._queue.submit_idempotent(
                    idem, record, self._settings.idempotency_ttl_seconds
                )
                if winner[0] != job_id:  # a concurrent upload with the same key won
                    await self._blobs.delete(blob.key)
                    return await self._replay(winner, sha, options.to_json(), context)
            else:
                await self._queue.submit(record)
        except ReplicationLagging:
            # The job is stored and queued (it may well run) but could vanish in a failover:
            # answered 503 (retryable; the same Idempotency-Key finds this job), blob kept.
            _LOGGER.warning("upload not acknowledged by enough Redis replicas")
            raise
        except RedisError:
            # No job refers to the stored blob: remove it (best effort) and answer UNAVAILABLE.
            with contextlib.suppress(BlobStoreError, OSError):
                await self._blobs.delete(blob.key)
            raise
        _LOGGER.info("job queued", extra={"size_bytes": size})
        return ingest_pb2.UploadResponse(job=record_to_proto(record))

    async def _replay(
        self,
        existing: tuple[str, str],
        sha: str,
        options_json: str,
        context: grpc.aio.ServicerContext,
    ) -> ingest_pb2.UploadResponse:
        job_id, stored_sha = existing
        if stored_sha != sha:
            await abort(
                context,
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                "This Idempotency-Key was used with a different file.",
            )
        record = await self._jobs.get(job_id)
        if record is None:
            await abort(
                context,
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                "This Idempotency-Key names a job that no longer exists; use a new key.",
            )
        if record.options_json != options_json:  # same file, other options: another request
            await abort(
                context,
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                "This Idempotency-Key was used with different options.",
            )
        job_id_var.set(job_id)
        _LOGGER.info("idempotent upload replayed")
        return ingest_pb2.UploadResponse(job=record_to_proto(record))

    async def _existing(self, job_id: str, context: grpc.aio.ServicerContext) -> JobRecord:
        record = None
        if artifacts.JOB_ID_RE.match(job_id):
            record = await self._jobs.get(job_id)
        caller = tenant_var.get()
        # Only the services themselves (INTERNAL_TENANT) see every job; `require_tenant`
        # refused a call without a tenant, and an empty one matches nothing here either.
        if record is not None and caller != INTERNAL_TENANT and record.tenant != caller:
            record = None  # another tenant's job: indistinguishable from a missing one
        if record is None:
            await abort(context, ErrorCode.NOT_FOUND, f"job {job_id!r} not found")
        job_id_var.set(job_id)
        return record

    async def GetJob(
        self, request: ingest_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.GetJobResponse:
        record = await self._existing(request.job_id, context)
        if record.timed_out:
            record = await self._expire(record)
        return ingest_pb2.GetJobResponse(job=record_to_proto(record))

    async def GetJobs(
        self, request: ingest_pb2.GetJobsRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.GetJobsResponse:
        """Each read as GetJob answers it when it finds the tenant's live job, else left to
        GetJob (which then answers it, errors and expiry included), never another's job."""
        reads = request.reads
        # A read GetJob would refuse (no tenant) or not look up (malformed id) is left at once.
        asked = [bool(r.tenant) and bool(artifacts.JOB_ID_RE.match(r.job_id)) for r in reads]
        charged = [False] * len(reads)
        if self._rate_limit is not None and self._rate_limit.enabled:
            limit = self._rate_limit
            refusals = await asyncio.gather(
                *(
                    limit.charge(r.tenant, final=False)
                    for r, a in zip(reads, asked, strict=True)
                    if a
                )
            )
            verdicts = iter(refusals)
            for index, a in enumerate(asked):
                if a:
                    charged[index] = next(verdicts) is None
            asked = charged  # a refused read is left to GetJob, which refuses it in turn
        records = iter(
            await self._jobs.get_many([r.job_id for r, a in zip(reads, asked, strict=True) if a])
        )
        results = []
        for read, a, charge in zip(reads, asked, charged, strict=True):
            record = next(records) if a else None
            if (
                record is None
                or record.timed_out
                or (read.tenant != INTERNAL_TENANT and record.tenant != read.tenant)
            ):
                results.append(ingest_pb2.JobReadResult(charged=charge))
                continue
            # The read's own GetJob span, in the caller's trace.
            tracing.answered_rpc_server_span(GET_JOB_METHOD, read.traceparent, "OK")
            results.append(ingest_pb2.JobReadResult(job=record_to_proto(record), charged=charge))
        return ingest_pb2.GetJobsResponse(results=results)

    async def ListJobs(
        self, request: ingest_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.ListJobsResponse:
        page_size = request.page_size or DEFAULT_PAGE_SIZE
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            await abort(
                context,
                ErrorCode.INVALID_PAGE_SIZE,
                f"page size must be 1-{MAX_PAGE_SIZE}",
            )
        cursor = _decode_cursor(request.page_token)
        if cursor is None:
            await abort(context, ErrorCode.INVALID_PAGE_TOKEN, "bad page token")
        if tenant_var.get() in ("", INTERNAL_TENANT):
            await abort(context, ErrorCode.UNAUTHENTICATED, "a job list is of one tenant")
        status = PROTO_TO_STATUS.get(request.status)
        records, next_cursor = await self._jobs.list_for_tenant(
            tenant_var.get(), status, page_size, cursor
        )
        for index, record in enumerate(records):
            if record.timed_out:
                records[index] = await self._expire(record)
        return ingest_pb2.ListJobsResponse(
            jobs=[record_to_proto(r) for r in records],
            next_page_token=_encode_cursor(next_cursor),
        )

    async def _expire(self, record: JobRecord) -> JobRecord:
        """A job past its timeoutAt that is still active is failed with `timeout`."""
        message = "The job did not finish before its deadline (timeoutAt)."
        now = time.time()
        await self._put(
            artifacts.error_key(record.job_id),
            artifacts.error_document(record.job_id, ErrorCode.TIMEOUT, message, now),
        )
        result = await self._jobs.transition(
            record.job_id,
            ACTIVE,
            Status.FAILED,
            {"error": ErrorCode.TIMEOUT.value, "error_message": message, "finished_at": now},
        )
        if result.applied:
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
                state = result.status.value if result.status else "gone"
                await abort(
                    context,
                    ErrorCode.JOB_NOT_CANCELLABLE,
                    f"The job is already {state} and cannot be cancelled.",
                )
            # A result written just before the cancel won is never served: only a completed
            # record names its result (the blob janitor removes the orphan).
            _LOGGER.info("job cancelled")
            # Acknowledged only once a replica has it (REDIS_WAIT_REPLICAS): else 503, retryable.
            await self._queue.wait_replicated(record.job_id, stream=False)
        fresh = await self._jobs.get(record.job_id)
        return ingest_pb2.CancelJobResponse(job=record_to_proto(fresh or record))

    async def Download(
        self, request: ingest_pb2.DownloadRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingest_pb2.DownloadResponse]:
        if request.kind not in _BLOB_KINDS:
            await abort(context, ErrorCode.BAD_KIND, "unknown blob kind")
        record = await self._existing(request.job_id, context)
        key = _blob_key(request.kind, record)
        if key is None:
            await abort(context, ErrorCode.NOT_FOUND, "the job has no such blob")
        # An input is checked against the sha256 taken as it was uploaded: a blob changed, cut
        # short or damaged in the store since fails its reader at the end (DATA_LOSS) instead
        # of being analysed. The chunks go out as they are read; the verdict is the status.
        expected = record.sha256 if request.kind == ingest_pb2.BLOB_KIND_INPUT else ""
        digest = hashlib.sha256()
        try:
            async for chunk in self._blobs.read_chunks(key):
                if expected:
                    digest.update(chunk)
                yield ingest_pb2.DownloadResponse(chunk=chunk)
        except BlobNotFound:
            await abort(context, ErrorCode.NOT_FOUND, "the job has no such blob")
        if expected and digest.hexdigest() != expected:
            _LOGGER.error("stored input does not match its upload's sha256")
            await abort(
                context,
                ErrorCode.BLOB_DOWNLOAD_FAILED,
                "The stored upload is damaged: its bytes are no longer those uploaded "
                "(their sha256 differs). Upload the file again.",
                status=grpc.StatusCode.DATA_LOSS,
            )

    async def PutArtifact(
        self, request: ingest_pb2.PutArtifactRequest, context: grpc.aio.ServicerContext
    ) -> ingest_pb2.PutArtifactResponse:
        if request.kind not in (ingest_pb2.BLOB_KIND_RESULT, ingest_pb2.BLOB_KIND_ERROR):
            await abort(context, ErrorCode.BAD_KIND, "artifacts: result or error")
        record = await self._existing(request.job_id, context)
        is_result = request.kind == ingest_pb2.BLOB_KIND_RESULT
        if is_result and not self._holds(record, request.lease_token):
            await abort(
                context,
                ErrorCode.LEASE_LOST,
                "The job is not processing under this lease; the result is not stored.",
            )
        key = (
            artifacts.result_key(record.job_id, request.lease_token)
            if is_result
            else artifacts.error_key(record.job_id)
        )
        blob = await self._put(key, request.content)
        if is_result:
            after = await self._jobs.get(record.job_id)
            if after is None or not self._holds(after, request.lease_token):
                # Lost a race with cancel or a lease takeover: this delivery's own blob goes,
                # never the winner's (each delivery writes under its own name).
                await self._blobs.delete(key)
                await abort(
                    context,
                    ErrorCode.LEASE_LOST,
                    "The job left processing while its result was stored; it was removed.",
                )
        return ingest_pb2.PutArtifactResponse(
            blob={"key": blob.key, "size_bytes": blob.size_bytes, "sha256": blob.sha256}
        )

    async def WatchJob(
        self, request: ingest_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingest_pb2.WatchJobResponse]:
        """The job's record on each change, until terminal; heartbeats while nothing changes.

        The changes come from the job's feed, appended by the very scripts that change the job.
        A caller gone (or its deadline) cancels this generator, which frees the watch.
        """
        record = await self._existing(request.job_id, context)
        job_id = record.job_id
        heartbeat = max(MIN_HEARTBEAT_MS, request.heartbeat_ms or DEFAULT_HEARTBEAT_MS) / 1000
        resume = request.last_event_id if _EVENT_ID_RE.match(request.last_event_id) else ""
        JOB_WATCHES.inc()
        try:
            if record.timed_out:
                await self._expire(record)  # its transition is a change like any other
            current, latest = await self._jobs.snapshot(job_id)
            if current is None:
                await abort(context, ErrorCode.NOT_FOUND, f"job {job_id!r} not found")
            after = resume
            if not resume or not latest:
                # A new watch, or a resume from a feed that expired: the record as it is now.
                after = latest or _FEED_START
                yield _event(after, current)
                if current.status.terminal:
                    return
            elif current.status.terminal and latest == resume:
                return  # the caller has seen the last change already
            loop = asyncio.get_running_loop()
            quiet_since = loop.time()
            while True:
                until_heartbeat = quiet_since + heartbeat - loop.time()
                wait = min(WATCH_BLOCK_MS, max(1, int(until_heartbeat * 1000)))
                changes = await self._jobs.changes(job_id, after, wait)
                for change in changes:
                    after = change.event_id
                    yield _event(change.event_id, change.record)
                    if change.record.status.terminal:
                        return
                if changes:
                    quiet_since = loop.time()
                    continue
                if loop.time() - quiet_since < heartbeat:
                    continue
                now = await self._jobs.get(job_id)
                if now is None:
                    await abort(context, ErrorCode.NOT_FOUND, f"job {job_id!r} is gone")
                if now.timed_out:
                    await self._expire(now)
                yield ingest_pb2.WatchJobResponse(heartbeat=ingest_pb2.Heartbeat())
                quiet_since = loop.time()
        finally:
            JOB_WATCHES.dec()

    @staticmethod
    def _holds(record: JobRecord, lease_token: str) -> bool:
        return (
            record.status is Status.PROCESSING
            and bool(lease_token)
            and record.lease_token == lease_token
        )

    async def _put(self, key: str, content: bytes) -> StoredBlob:
        return await self._blobs.put_stream(key, io.BytesIO(content))


def _event(event_id: str, record: JobRecord) -> ingest_pb2.WatchJobResponse:
    return ingest_pb2.WatchJobResponse(
        event=ingest_pb2.JobEvent(event_id=event_id, job=record_to_proto(record))
    )
