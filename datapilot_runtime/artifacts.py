"""The documents a job leaves behind: `error.json` (and the keys of every job blob)."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from datapilot_runtime.error_codes import ErrorCode
from datapilot_runtime.jobs.status import Status

JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# Every blob of a job lives under JOBS_PREFIX + its id + "/" (the janitor lists this prefix).
JOBS_PREFIX = "jobs/"


def input_key(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}/input"


def result_key(job_id: str, lease_token: str) -> str:
    """Where the delivery holding `lease_token` writes its result.json.

    One name per delivery: a stale writer can neither overwrite nor delete the winner's result.
    The completed record's lease token (fixed by the fenced transition that completed it) names
    the one that is served; the public resultUrl stays /api/jobs/{id}/result.
    """
    delivery = hashlib.sha256(lease_token.encode()).hexdigest()[:32]
    return f"{JOBS_PREFIX}{job_id}/results/{delivery}.json"


def error_key(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}/error.json"


class BlobRole(enum.Enum):
    """What a job blob is: the uploaded file, a delivery's result.json, or error.json."""

    INPUT = "input"
    RESULT = "result"
    ERROR = "error"


@dataclass(frozen=True)
class JobBlob:
    """A key of the job layout above, read back: whose blob it is and which."""

    job_id: str
    role: BlobRole


# The inverse of input_key / result_key / error_key (tests check the round trip).
_JOB_BLOB_RE = re.compile(
    "^"
    + re.escape(JOBS_PREFIX)
    + r"([0-9a-f]{32})/(?:(input)|(error\.json)|results/[0-9a-f]{32}\.json)$"
)


def job_blob(key: str) -> JobBlob | None:
    """The job and role a blob key names, or None for a key outside the job layout."""
    match = _JOB_BLOB_RE.match(key)
    if match is None:
        return None
    if match.group(2):
        role = BlobRole.INPUT
    elif match.group(3):
        role = BlobRole.ERROR
    else:
        role = BlobRole.RESULT
    return JobBlob(match.group(1), role)


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
