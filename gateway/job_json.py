"""The REST shape of a job: camelCase fields, ISO 8601 UTC times, nulls when unset."""

from __future__ import annotations

import time
from typing import Any

from datapilot.common.v1 import common_pb2
from pydantic import BaseModel, Field

from datapilot_runtime.jobs.status import STATUS_NAMES, Status, status_name

STATUS_BY_NAME = {status.value: status.proto for status in Status}
# The `status` query filter: one of the state names.
STATUS_PATTERN = f"^({'|'.join(STATUS_NAMES)})$"


class JobOut(BaseModel):
    """A job as REST clients see it (GET /api/job-status)."""

    jobId: str = Field(examples=["0f8c2d3e4b5a69788796a5b4c3d2e1f0"])
    status: str = Field(examples=["completed"], description="|".join(STATUS_NAMES))
    progress: int = Field(ge=0, le=100, examples=[100])
    createdAt: str | None = Field(examples=["2026-11-28T14:00:00.000Z"])
    startedAt: str | None
    finishedAt: str | None
    timeoutAt: str | None
    resultUrl: str | None = Field(examples=["/api/jobs/0f8c2d3e4b5a69788796a5b4c3d2e1f0/result"])
    error: str | None = Field(examples=[None], description="Stable error code when failed")
    errorMessage: str | None
    attempt: int
    filename: str
    sizeBytes: int


def _iso(job: common_pb2.Job, name: str) -> str | None:
    if not job.HasField(name):
        return None
    stamp = getattr(job, name)
    # What Timestamp.ToDatetime().isoformat(timespec="milliseconds") gives, without building a
    # datetime: four of these per poll were a visible share of the gateway's time.
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp.seconds))
    return f"{whole}.{stamp.nanos // 1_000_000:03d}Z"


def job_to_json(job: common_pb2.Job) -> dict[str, Any]:
    """Serialise a job message for REST clients."""
    return {
        "jobId": job.job_id,
        "status": status_name(job.status),
        "progress": job.progress,
        "createdAt": _iso(job, "created_at"),
        "startedAt": _iso(job, "started_at"),
        "finishedAt": _iso(job, "finished_at"),
        "timeoutAt": _iso(job, "timeout_at"),
        "resultUrl": job.result_url or None,
        "error": job.error or None,
        "errorMessage": job.error_message or None,
        "attempt": job.attempt,
        "filename": job.filename,
        "sizeBytes": job.size_bytes,
    }
