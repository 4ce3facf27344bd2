"""POST /api/upload: streams the multipart file into IngestService.Upload, never buffering it."""

from __future__ import annotations

import asyncio
import logging

import grpc
from datapilot.common.v1 import common_pb2
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from starlette.requests import ClientDisconnect, Request

from gateway.content_sniff import SNIFF_BYTES, check_allowed
from gateway.multipart_stream import MultipartFileReader, UploadTooLarge
from gateway.problems import ProblemError

_LOGGER = logging.getLogger(__name__)
UPLOAD_CHUNK_BYTES = 512 * 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024


async def _send(call: grpc.aio.StreamUnaryCall, message: ingest_pb2.UploadRequest) -> None:
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
    pending = bytearray()
    try:
        while not reader.started and not reader.ended:
            data = await anext(body, None)
            if data is None:
                break
            pending += b"".join(reader.feed(data))
        if not reader.started:
            raise ProblemError(400, "missing_file", "The multipart field 'file' is required.")
        while len(pending) < SNIFF_BYTES and not reader.finished:
            data = await anext(body, None)
            if data is None:
                break
            pending += b"".join(reader.feed(data))
        check_allowed(bytes(pending[:SNIFF_BYTES]))
        call = ingest.Upload(timeout=deadline)
        try:
            await _send(
                call,
                ingest_pb2.UploadRequest(
                    metadata=ingest_pb2.UploadMetadata(
                        filename=reader.filename,
                        content_type=reader.content_type,
                        idempotency_key=idempotency_key,
                    )
                ),
            )
            while True:
                while len(pending) >= UPLOAD_CHUNK_BYTES:
                    await _send(
                        call, ingest_pb2.UploadRequest(chunk=bytes(pending[:UPLOAD_CHUNK_BYTES]))
                    )
                    del pending[:UPLOAD_CHUNK_BYTES]
                if reader.finished:
                    break
                data = await anext(body, None)
                if data is None:
                    raise ProblemError(
                        400, "truncated_upload", "The upload ended before the file did."
                    )
                pending += b"".join(reader.feed(data))
            if pending:
                await _send(call, ingest_pb2.UploadRequest(chunk=bytes(pending)))
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
