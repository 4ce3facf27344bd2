"""Downloads a job's input blob from ingest_svc into a local temp file (bounded, streamed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc


class InputTooLarge(Exception):
    """The stored input is larger than the upload limit."""


@contextlib.asynccontextmanager
async def fetched_input(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    job_id: str,
    *,
    rpc_timeout: float | None,
    max_bytes: int,
    work_dir: str = "",
) -> AsyncIterator[Path]:
    """The job's input as a temp file, removed on exit; gRPC errors propagate."""
    fd, name = tempfile.mkstemp(prefix=f"dp-{job_id}-", dir=work_dir or None)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            total = 0
            call = ingest.Download(
                ingest_pb2.DownloadRequest(job_id=job_id, kind=ingest_pb2.BLOB_KIND_INPUT),
                timeout=rpc_timeout,
            )
            try:
                async for message in call:
                    total += len(message.chunk)
                    if total > max_bytes:
                        raise InputTooLarge(f"input is larger than {max_bytes} bytes")
                    out.write(message.chunk)
            finally:
                call.cancel()
        yield path
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
