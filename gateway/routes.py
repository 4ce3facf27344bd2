"""The REST routes of the README's API table: upload, job-status, cancel, jobs, results, health."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import grpc
from datapilot.analysis.v1 import analysis_pb2
from datapilot.common.v1 import common_pb2
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from datapilot_runtime.grpc_host import upstream_serving
from gateway.deadlines import IdleDeadlineStream, deadline
from gateway.deps import AnalysisStubDep, IngestStubDep, ReadDeadlineDep, SettingsDep, UpstreamsDep
from gateway.job_json import STATUS_BY_NAME, STATUS_PATTERN, JobOut, job_to_json
from gateway.json_response import FastJSONResponse as JSONResponse
from gateway.problems import ProblemError, problem_response
from gateway.upload import UPLOAD_FORM_SCHEMA, BodyPolicy, stream_upload

router = APIRouter()
JobIdQuery = Annotated[
    str, Query(min_length=1, max_length=64, description="The job id (32 hex characters)")
]
JobIdPath = Annotated[str, Path(max_length=64, description="The job id (32 hex characters)")]
# Problem statuses each route can answer, documented in the OpenAPI document.
_COMMON = [400, 401, 429, 503, 504]
ERROR_STATUSES: dict[str, list[int]] = {
    "POST /api/upload": [*_COMMON, 408, 413, 415, 422],
    "GET /api/job-status": [*_COMMON, 404],
    "POST /api/cancel": [*_COMMON, 404, 409],
    "GET /api/jobs": _COMMON,
    "GET /api/jobs/{jobId}": [*_COMMON, 404],
    "GET /api/jobs/{jobId}/result": [*_COMMON, 404, 409],
    "GET /api/jobs/{jobId}/error": [*_COMMON, 404, 409],
    "POST /api/jobs/{jobId}/analyze": [*_COMMON, 404, 413, 422],
    "GET /readyz": [503],
}
_JSON_DOCUMENT = {"content": {"application/json": {"schema": {"type": "object"}}}}


class JobPage(BaseModel):
    """A page of the caller's jobs, newest first."""

    jobs: list[JobOut]
    nextCursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


@router.post(
    "/api/upload",
    status_code=202,
    response_model=JobOut,
    responses={202: {"headers": {"Location": {"schema": {"type": "string"}}}}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": UPLOAD_FORM_SCHEMA}},
        },
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
                "description": "Repeat an upload safely: same key and file, same job (24 h).",
            }
        ],
    },
)
async def upload(request: Request, settings: SettingsDep, ingest: IngestStubDep) -> JSONResponse:
    """Upload a CSV, XLSX, JSON or Parquet file (multipart field `file`); 202 with the job.

    At most MAX_UPLOAD_BYTES (20 MiB). With an `Idempotency-Key` header, repeating the same
    upload returns the same job for 24 h; the same key with a different file is 422.
    Poll the `Location` URL, waiting `Retry-After` seconds first.
    """
    job = await stream_upload(
        request,
        ingest,
        settings.max_upload_bytes,
        deadline(request, settings.upload_deadline_seconds),
        BodyPolicy(
            settings.upload_deadline_seconds,
            settings.upload_min_bytes_per_second,
            settings.upload_min_rate_grace_seconds,
        ),
    )
    status_url = f"/api/job-status?jobId={job.job_id}"
    return JSONResponse(
        job_to_json(job), status_code=202, headers={"Location": status_url, "Retry-After": "1"}
    )


async def _get_job(
    ingest: ingest_pb2_grpc.IngestServiceStub, job_id: str, rpc_timeout: float
) -> common_pb2.Job:
    reply = await ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job_id), timeout=rpc_timeout)
    job: common_pb2.Job = reply.job
    return job


@router.get("/api/job-status", response_model=JobOut)
async def job_status(
    jobId: JobIdQuery, ingest: IngestStubDep, rpc_timeout: ReadDeadlineDep
) -> JSONResponse:
    """The job record; a job past its timeoutAt is reported (and marked) failed / timeout."""
    job = await _get_job(ingest, jobId, rpc_timeout)
    return JSONResponse(job_to_json(job))  # documented by response_model, not re-validated


@router.get("/api/jobs", response_model=JobPage)
async def list_jobs(
    ingest: IngestStubDep,
    rpc_timeout: ReadDeadlineDep,
    status: Annotated[
        str | None,
        Query(pattern=STATUS_PATTERN, description="Filter"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="From nextCursor")] = None,
) -> dict[str, Any]:
    """The caller's own jobs, newest first, a page at a time."""
    response = await ingest.ListJobs(
        ingest_pb2.ListJobsRequest(
            page_size=limit,
            page_token=cursor or "",
            status=STATUS_BY_NAME[status] if status else common_pb2.JOB_STATUS_UNSPECIFIED,
        ),
        timeout=rpc_timeout,
    )
    return {
        "jobs": [job_to_json(job) for job in response.jobs],
        "nextCursor": response.next_page_token or None,
    }


@router.get("/api/jobs/{jobId}", response_model=JobOut)
async def get_job(
    jobId: JobIdPath, ingest: IngestStubDep, rpc_timeout: ReadDeadlineDep
) -> JSONResponse:
    """The job record (same as /api/job-status)."""
    return JSONResponse(job_to_json(await _get_job(ingest, jobId, rpc_timeout)))


@router.post("/api/cancel", response_model=JobOut)
async def cancel(
    jobId: JobIdQuery, ingest: IngestStubDep, rpc_timeout: ReadDeadlineDep
) -> dict[str, Any]:
    """Cancel a queued or processing job (again: 200); 409 if it already completed or failed."""
    response = await ingest.CancelJob(
        ingest_pb2.CancelJobRequest(job_id=jobId), timeout=rpc_timeout
    )
    return job_to_json(response.job)


async def _artifact(
    ingest: ingest_pb2_grpc.IngestServiceStub,
    rpc_timeout: float,
    job_id: str,
    kind: ingest_pb2.BlobKind,
    wanted: str,
) -> StreamingResponse:
    job = await _get_job(ingest, job_id, rpc_timeout)
    status = job_to_json(job)["status"]
    if status != wanted:
        what = "result" if wanted == "completed" else "error"
        raise ProblemError(409, f"not_{wanted}", f"The job is {status}; it has no {what} document.")
    # No total deadline on the stream: IdleDeadlineStream bounds each chunk instead, so a slow
    # client that keeps reading gets the whole document (READ_DEADLINE_SECONDS of idleness).
    call = ingest.Download(ingest_pb2.DownloadRequest(job_id=job_id, kind=kind))
    iterator = call.__aiter__()
    try:
        async with asyncio.timeout(rpc_timeout):
            first = await anext(iterator, None)
    except TimeoutError:
        call.cancel()
        raise ProblemError(
            504, "deadline_exceeded", "The request did not finish before its deadline."
        ) from None
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

    return IdleDeadlineStream(chunks(), rpc_timeout, media_type="application/json")


@router.get("/api/jobs/{jobId}/result", responses={200: _JSON_DOCUMENT})
async def job_result(
    jobId: JobIdPath, ingest: IngestStubDep, rpc_timeout: ReadDeadlineDep
) -> StreamingResponse:
    """Stream a completed job's result.json; 409 while it is not completed."""
    return await _artifact(ingest, rpc_timeout, jobId, ingest_pb2.BLOB_KIND_RESULT, "completed")


@router.get("/api/jobs/{jobId}/error", responses={200: _JSON_DOCUMENT})
async def job_error(
    jobId: JobIdPath, ingest: IngestStubDep, rpc_timeout: ReadDeadlineDep
) -> StreamingResponse:
    """Stream a failed job's error.json; 409 unless it failed."""
    return await _artifact(ingest, rpc_timeout, jobId, ingest_pb2.BLOB_KIND_ERROR, "failed")


@router.post("/api/jobs/{jobId}/analyze", responses={200: _JSON_DOCUMENT})
async def analyze(
    request: Request, jobId: JobIdPath, analysis: AnalysisStubDep, settings: SettingsDep
) -> Response:
    """Recompute the KPI report of a job's stored upload now, synchronously (no insights).

    For callers that want the figures without waiting for the job. Honors `Grpc-Timeout` /
    `Request-Timeout`; a client that disconnects cancels the analysis.
    """
    # No pre-check needed: analysis_svc reads the input through ingest_svc with the caller's
    # tenant, so another tenant's job is NOT_FOUND there.
    reply = await analysis.Analyze(
        analysis_pb2.AnalyzeRequest(job_id=jobId),
        timeout=deadline(request, settings.analyze_deadline_seconds),
    )
    return Response(reply.kpi_report_json, media_type="application/json")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(upstreams: UpstreamsDep) -> Any:
    """Readiness: ingest_svc answers SERVING to a gRPC health check.

    analysis_svc is not required: uploads and job status do not need it, and while it is down
    only `/analyze` answers 503.
    """
    try:
        await upstream_serving(upstreams.ingest_channel)
    except grpc.aio.AioRpcError:
        return problem_response(503, "not_ready", "ingest_svc is not reachable.")
    except ConnectionError:
        return problem_response(503, "not_ready", "ingest_svc is not serving.")
    return {"status": "ready"}


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus metrics of the gateway process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
