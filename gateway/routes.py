"""The REST routes: the seed's upload / job-status / cancel, results, and health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import grpc
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.job_json import JobOut, job_to_json
from gateway.problems import ProblemError, problem_response
from gateway.settings import GatewaySettings
from gateway.upload import stream_upload

router = APIRouter()
JobIdQuery = Annotated[str, Query(min_length=1, max_length=64, description="The job id")]
_PROBLEM = {"content": {"application/problem+json": {}}, "description": "Problem (RFC 9457)"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _PROBLEM,
    404: _PROBLEM,
    409: _PROBLEM,
    503: _PROBLEM,
    504: _PROBLEM,
}


def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def _ingest(request: Request) -> ingest_pb2_grpc.IngestServiceStub:
    stub: ingest_pb2_grpc.IngestServiceStub = request.app.state.ingest
    return stub


@router.post(
    "/api/upload",
    status_code=202,
    response_model=JobOut,
    responses={**_ERRORS, 413: _PROBLEM, 415: _PROBLEM, 422: _PROBLEM},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def upload(request: Request) -> JSONResponse:
    """Upload a CSV or XLSX file (multipart field `file`, at most MAX_UPLOAD_BYTES); 202 + job.

    With an `Idempotency-Key` header, repeating the same upload returns the same job for 24 h;
    the same key with a different file is 422.
    """
    settings = _settings(request)
    job = await stream_upload(
        request, _ingest(request), settings.max_upload_bytes, settings.upload_deadline_seconds
    )
    body = job_to_json(job)
    status_url = f"/api/job-status?jobId={job.job_id}"
    return JSONResponse(body, status_code=202, headers={"Location": status_url, "Retry-After": "1"})


@router.get("/api/job-status", response_model=JobOut, responses=_ERRORS)
async def job_status(request: Request, jobId: JobIdQuery) -> dict[str, Any]:
    """The job record; a job past its timeoutAt is reported (and marked) failed / timeout."""
    response = await _ingest(request).GetJob(
        ingest_pb2.GetJobRequest(job_id=jobId), timeout=_settings(request).read_deadline_seconds
    )
    return job_to_json(response.job)


@router.get("/api/jobs/{jobId}", response_model=JobOut, responses=_ERRORS)
async def get_job(request: Request, jobId: str) -> dict[str, Any]:
    """The job record (same as /api/job-status)."""
    return await job_status(request, jobId)


@router.post("/api/cancel", response_model=JobOut, responses=_ERRORS)
async def cancel(request: Request, jobId: JobIdQuery) -> dict[str, Any]:
    """Cancel a queued or processing job; 409 if it already completed or failed."""
    response = await _ingest(request).CancelJob(
        ingest_pb2.CancelJobRequest(job_id=jobId), timeout=_settings(request).read_deadline_seconds
    )
    return job_to_json(response.job)


async def _artifact(
    request: Request, job_id: str, kind: ingest_pb2.BlobKind, wanted: str
) -> StreamingResponse:
    ingest = _ingest(request)
    deadline = _settings(request).read_deadline_seconds
    job = (await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job_id), timeout=deadline)).job
    status = job_to_json(job)["status"]
    if status != wanted:
        raise ProblemError(
            409,
            "not_" + wanted,
            f"The job is {status}; its {'result' if wanted == 'completed' else 'error'} "
            "is not available.",
        )
    call = ingest.Download(ingest_pb2.DownloadRequest(job_id=job_id, kind=kind), timeout=deadline)
    iterator = call.__aiter__()
    try:
        first = await anext(iterator, None)
    except BaseException:
        call.cancel()
        raise

    async def chunks() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield first.chunk
            async for message in iterator:
                yield message.chunk
        finally:
            call.cancel()

    return StreamingResponse(chunks(), media_type="application/json")


@router.get(
    "/api/jobs/{jobId}/result",
    responses={200: {"content": {"application/json": {}}, "description": "result.json"}, **_ERRORS},
)
async def job_result(request: Request, jobId: str) -> StreamingResponse:
    """Stream a completed job's result.json; 409 while it is not completed."""
    return await _artifact(request, jobId, ingest_pb2.BLOB_KIND_RESULT, "completed")


@router.get(
    "/api/jobs/{jobId}/error",
    responses={200: {"content": {"application/json": {}}, "description": "error.json"}, **_ERRORS},
)
async def job_error(request: Request, jobId: str) -> StreamingResponse:
    """Stream a failed job's error.json; 409 unless it failed."""
    return await _artifact(request, jobId, ingest_pb2.BLOB_KIND_ERROR, "failed")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: _PROBLEM})
async def readyz(request: Request) -> Any:
    """Readiness: ingest_svc answers SERVING to a gRPC health check."""
    health = health_pb2_grpc.HealthStub(request.app.state.ingest_channel)
    try:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    except grpc.aio.AioRpcError:
        return problem_response(503, "not_ready", "ingest_svc is not reachable.")
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return problem_response(503, "not_ready", "ingest_svc is not serving.")
    return {"status": "ready"}
