"""POST /api/upload: streams the multipart file into IngestService.Upload, never buffering it.

An `options` field (JSON analysis options, checked here) must come before `file`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from datapilot.common.v1 import common_pb2
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from starlette.requests import ClientDisconnect, Request

from datapilot_runtime.context import ADMITTED_METADATA, UPLOAD_SIZE_METADATA_KEY
from datapilot_runtime.error_codes import ErrorCode
from datapilot_runtime.report.insights import OVERRIDE_ROLES
from datapilot_runtime.report.options import (
    MAX_OPTIONS_BYTES,
    NO_OPTIONS,
    AnalysisOptions,
    InvalidOptions,
    parse_options,
)
from gateway.content_sniff import SNIFF_BYTES, check_allowed
from gateway.multipart_stream import MultipartFileReader, UploadTooLarge
from gateway.problems import ProblemError

_LOGGER = logging.getLogger(__name__)
# Half of what ingest_svc takes (its MAX_CHUNK_BYTES): 1 MiB messages cost no less CPU here and
# left ingest_svc's peak memory during a 20 MiB upload about 10 MiB higher.
UPLOAD_CHUNK_BYTES = 512 * 1024
# UploadRequest's `chunk` field as it goes on the wire: its key (field number, length-delimited).
_CHUNK_KEY = bytes([ingest_pb2.UploadRequest.DESCRIPTOR.fields_by_name["chunk"].number << 3 | 2])
# Boundaries and part headers, plus room for the largest `options` field beside the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024 + MAX_OPTIONS_BYTES
# The multipart form of POST /api/upload, for the OpenAPI document.
UPLOAD_FORM_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "options": {
            "type": "string",
            "maxLength": MAX_OPTIONS_BYTES,
            "description": (
                'JSON analysis options, before `file`: {"roles": {"<column>": "<role>"}} with '
                f"roles {', '.join(sorted(OVERRIDE_ROLES))}. Invalid options are a 400 "
                "`invalid_options`."
            ),
        },
        "file": {"type": "string", "format": "binary"},
    },
}


def _options_of(reader: MultipartFileReader) -> AnalysisOptions:
    if not reader.options_seen:
        return NO_OPTIONS
    try:
        return parse_options(bytes(reader.options))
    except InvalidOptions as exc:
        raise ProblemError(400, ErrorCode.INVALID_OPTIONS, f"Invalid options: {exc}.") from exc


async def _refuse_late_options(reader: MultipartFileReader, body: _Body) -> None:
    """Read what follows the file (its closing boundary, at most a small tail) for `options`.

    Options after the file would otherwise be dropped in silence: the job has already started
    upstream with the options it had. The tail is bounded, so trailing junk costs little.
    """
    tail = 0
    while not reader.options_after_file and not reader.ended and tail <= MULTIPART_OVERHEAD_BYTES:
        data = await body.next()
        if data is None:
            break
        tail += len(data)
        reader.feed(data)
    if reader.options_after_file:
        raise ProblemError(
            400,
            ErrorCode.INVALID_OPTIONS,
            "Invalid options: send the 'options' field before 'file'.",
        )


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def serialize_upload_request(message: ingest_pb2.UploadRequest | bytes) -> bytes:
    """The request serializer of Upload: a message, or a chunk message already in wire form."""
    return message if isinstance(message, bytes) else message.SerializeToString()


class ChunkMessages:
    """The file bytes not yet relayed, cut into Upload chunk messages in their wire form.

    Built with one join of the pieces the multipart parser gave: constructing an UploadRequest
    and serialising it copies each megabyte twice more, most of the gateway's cost per upload.
    """

    def __init__(self) -> None:
        self._pieces: list[bytes | memoryview] = []
        self.size = 0

    def add(self, pieces: Sequence[bytes | memoryview]) -> None:
        self._pieces += pieces
        self.size += sum(len(piece) for piece in pieces)

    def head(self, count: int) -> bytes:
        """The first `count` bytes (the content sniff's)."""
        return b"".join(self._pieces)[:count]

    def take(self, count: int) -> bytes:
        """The serialised UploadRequest of the next min(count, size) bytes, which it removes."""
        count = min(count, self.size)
        out: list[bytes | memoryview] = [_CHUNK_KEY, _varint(count)]
        needed = count
        while needed:
            piece = self._pieces[0]
            if len(piece) <= needed:
                out.append(self._pieces.pop(0))
                needed -= len(piece)
            else:  # split without copying: views on the piece
                view = memoryview(piece)
                out.append(view[:needed])
                self._pieces[0] = view[needed:]
                needed = 0
        self.size -= count
        return b"".join(out)


async def _send(call: grpc.aio.StreamUnaryCall, message: ingest_pb2.UploadRequest | bytes) -> None:
    """Write one message; if the call already ended (deadline, an abort), raise its status."""
    try:
        await call.write(message)
    except asyncio.InvalidStateError:
        await call  # raises the AioRpcError that ended it (DEADLINE_EXCEEDED -> 504)
        raise


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        413, "payload_too_large", f"The file is larger than the {limit} byte limit."
    )


class _Body:
    """The request body as it arrives, cut when it is too slow or too large.

    408 once the body has taken longer than the upload deadline, or once its average rate since
    the start has fallen below the minimum (after a grace for the first bytes); 413 past `cap`
    bytes whatever their framing (chunked bodies have no Content-Length to check up front).
    """

    def __init__(self, request: Request, cap: int, policy: BodyPolicy) -> None:
        self._chunks = request.stream().__aiter__()
        self._cap = cap
        self._policy = policy
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        self.received = 0

    def _due(self) -> tuple[float, str]:
        """When the next chunk must have arrived, and what is broken if it has not."""
        policy = self._policy
        by_deadline = self._started + policy.deadline_seconds
        if policy.min_bytes_per_second <= 0:
            return by_deadline, "deadline"
        by_rate = self._started + max(
            policy.grace_seconds, (self.received + 1) / policy.min_bytes_per_second
        )
        return (by_rate, "rate") if by_rate < by_deadline else (by_deadline, "deadline")

    async def next(self) -> bytes | None:
        """The next chunk, or None at the end of the body."""
        due, reason = self._due()
        try:
            async with asyncio.timeout_at(due):
                data = await anext(self._chunks, None)
        except TimeoutError:
            raise _too_slow(self._policy, reason) from None
        if data is not None:
            self.received += len(data)
            if self.received > self._cap:
                raise ProblemError(
                    413, "payload_too_large", f"The request body is over {self._cap} bytes."
                )
        return data


@dataclass(frozen=True)
class BodyPolicy:
    """How long an upload's body may take (UPLOAD_DEADLINE_SECONDS) and how slow it may be."""

    deadline_seconds: float
    min_bytes_per_second: float
    grace_seconds: float


def _too_slow(policy: BodyPolicy, reason: str) -> ProblemError:
    if reason == "rate":
        detail = (
            f"The upload arrived slower than {policy.min_bytes_per_second:g} bytes a second "
            "(UPLOAD_MIN_BYTES_PER_SECOND)."
        )
    else:
        detail = (
            f"The upload did not arrive within {policy.deadline_seconds:g} s "
            "(UPLOAD_DEADLINE_SECONDS)."
        )
    return ProblemError(408, ErrorCode.REQUEST_TIMEOUT, detail)


async def _admitted(call: grpc.aio.StreamUnaryCall) -> None:
    """Wait until ingest_svc has admitted the call (rate limit, spool); raise its refusal."""
    metadata = await call.initial_metadata()  # ingest sends it once the call is admitted
    if ADMITTED_METADATA not in tuple(metadata or ()):
        # Refused (rate limit, spool, auth): its status follows. Writing into the ended call
        # would race it, and grpc reports a lost race as INTERNAL.
        await call  # raises the AioRpcError (429, 503, 401)
        raise ProblemError(503, ErrorCode.UNAVAILABLE, "The upload was not admitted; retry.")


async def stream_upload(
    request: Request,
    ingest: ingest_pb2_grpc.IngestServiceStub,
    limit: int,
    deadline: float,
    policy: BodyPolicy,
) -> common_pb2.Job:
    """Relay the `file` field to ingest_svc chunk by chunk; stop reading at the limit.

    The upstream call opens first, before any of the body is read: it carries the request's
    rate-limit charge, so a refused request costs no body and a slow one is charged at once.
    """
    declared = request.headers.get("content-length", "")
    size = min(int(declared), limit) if declared.isdigit() else limit  # chunked: at most limit
    call = ingest.Upload(timeout=deadline, metadata=((UPLOAD_SIZE_METADATA_KEY, str(size)),))
    try:
        await _admitted(call)
        job = await _relay(request, call, limit, policy)
    except BaseException:
        call.cancel()
        raise
    return job


async def _relay(
    request: Request, call: grpc.aio.StreamUnaryCall, limit: int, policy: BodyPolicy
) -> common_pb2.Job:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD_BYTES:
        raise _too_large(limit)
    idempotency_key = request.headers.get("idempotency-key", "")
    if len(idempotency_key) > 255 or not idempotency_key.isprintable():
        raise ProblemError(400, "bad_idempotency_key", "Idempotency-Key: 1-255 printable chars.")
    reader = MultipartFileReader(request.headers.get("content-type", ""), limit)
    body = _Body(request, limit + MULTIPART_OVERHEAD_BYTES, policy)
    pending = ChunkMessages()
    try:
        while not reader.started and not reader.ended:
            data = await body.next()
            if data is None:
                break
            pending.add(reader.feed(data))
        if not reader.started:
            raise ProblemError(400, "missing_file", "The multipart field 'file' is required.")
        while pending.size < SNIFF_BYTES and not reader.finished:
            data = await body.next()
            if data is None:
                break
            pending.add(reader.feed(data))
        check_allowed(pending.head(SNIFF_BYTES))
        options = _options_of(reader)
        await _send(
            call,
            ingest_pb2.UploadRequest(
                metadata=ingest_pb2.UploadMetadata(
                    filename=reader.filename,
                    content_type=reader.content_type,
                    idempotency_key=idempotency_key,
                    options_json=options.to_json(),
                )
            ),
        )
        while True:
            while pending.size >= UPLOAD_CHUNK_BYTES:
                await _send(call, pending.take(UPLOAD_CHUNK_BYTES))
            if reader.finished:
                break
            data = await body.next()
            if data is None:
                raise ProblemError(400, "truncated_upload", "The upload ended before the file did.")
            pending.add(reader.feed(data))
        if pending.size:
            await _send(call, pending.take(pending.size))
        await _refuse_late_options(reader, body)
        await call.done_writing()
        response: ingest_pb2.UploadResponse = await call
    except UploadTooLarge as exc:
        raise _too_large(limit) from exc
    except ClientDisconnect:
        _LOGGER.info("client disconnected during upload; upstream call cancelled")
        raise ProblemError(499, "client_closed_request", "The client closed the request.") from None
    return response.job
