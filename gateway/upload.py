"""POST /api/upload: streams the multipart file into IngestService.Upload, never buffering it.

An `options` field (JSON analysis options, checked here) must come before `file`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
from datapilot.common.v1 import common_pb2
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from starlette.requests import ClientDisconnect, Request

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


async def _refuse_late_options(reader: MultipartFileReader, body: AsyncIterator[bytes]) -> None:
    """Read what follows the file (its closing boundary, at most a small tail) for `options`.

    Options after the file would otherwise be dropped in silence: the job has already started
    upstream with the options it had. The tail is bounded, so trailing junk costs little.
    """
    tail = 0
    while not reader.options_after_file and not reader.ended and tail <= MULTIPART_OVERHEAD_BYTES:
        data = await anext(body, None)
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

    def add(self, pieces: list[bytes]) -> None:
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


async def stream_upload(
    request: Request,
    ingest: ingest_pb2_grpc.IngestServiceStub,
    limit: int,
    deadline: float,
) -> common_pb2.Job:
    """Relay the `file` field to ingest_svc chunk by chunk; stop reading at the limit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD_BYTES:
        raise _too_large(limit)
    idempotency_key = request.headers.get("idempotency-key", "")
    if len(idempotency_key) > 255 or not idempotency_key.isprintable():
        raise ProblemError(400, "bad_idempotency_key", "Idempotency-Key: 1-255 printable chars.")
    reader = MultipartFileReader(request.headers.get("content-type", ""), limit)
    body = request.stream().__aiter__()
    pending = ChunkMessages()
    try:
        while not reader.started and not reader.ended:
            data = await anext(body, None)
            if data is None:
                break
            pending.add(reader.feed(data))
        if not reader.started:
            raise ProblemError(400, "missing_file", "The multipart field 'file' is required.")
        while pending.size < SNIFF_BYTES and not reader.finished:
            data = await anext(body, None)
            if data is None:
                break
            pending.add(reader.feed(data))
        check_allowed(pending.head(SNIFF_BYTES))
        options = _options_of(reader)
        call = ingest.Upload(timeout=deadline)
        try:
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
                data = await anext(body, None)
                if data is None:
                    raise ProblemError(
                        400, "truncated_upload", "The upload ended before the file did."
                    )
                pending.add(reader.feed(data))
            if pending.size:
                await _send(call, pending.take(pending.size))
            await _refuse_late_options(reader, body)
            await call.done_writing()
            response: ingest_pb2.UploadResponse = await call
        except BaseException:
            call.cancel()
            raise
    except UploadTooLarge as exc:
        raise _too_large(limit) from exc
    except ClientDisconnect:
        _LOGGER.info("client disconnected during upload; upstream call cancelled")
        raise ProblemError(499, "client_closed_request", "The client closed the request.") from None
    return response.job
