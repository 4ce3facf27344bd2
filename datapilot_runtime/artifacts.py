"""The documents a job leaves behind: `error.json` (and the keys of every job blob)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime

from datapilot_runtime.error_codes import ErrorCode
from datapilot_runtime.jobs.status import Status

JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def input_key(job_id: str) -> str:
    return f"jobs/{job_id}/input"


def result_key(job_id: str, lease_token: str) -> str:
    """Where the delivery holding `lease_token` writes its result.json.

    One name per delivery: a stale writer can neither overwrite nor delete the winner's result.
    The completed record's lease token (fixed by the fenced transition that completed it) names
    the one that is served; the public resultUrl stays /api/jobs/{id}/result.
    """
    delivery = hashlib.sha256(lease_token.encode()).hexdigest()[:32]
    return f"jobs/{job_id}/results/{delivery}.json"


def error_key(job_id: str) -> str:
    return f"jobs/{job_id}/error.json"


def iso_utc(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds and a `Z`."""
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def error_document(job_id: str, code: ErrorCode, message: str, timestamp: float) -> bytes:
    """`error.json = {jobId, status, error, message, timestamp}` (README, Jobs)."""
    document = {
        "jobId": job_id,
        "status": Status.FAILED.value,
        "error": code.value,
        "message": message,
        "timestamp": iso_utc(timestamp),
    }
    return json.dumps(document, indent=2).encode()
