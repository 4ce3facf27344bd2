"""The job blob layout read back: every key the artifact functions build names its job and role."""

from __future__ import annotations

import uuid

import pytest

from datapilot_runtime import artifacts
from datapilot_runtime.artifacts import BlobRole, JobBlob


def test_every_job_key_reads_back() -> None:
    job_id = uuid.uuid4().hex
    assert artifacts.job_blob(artifacts.input_key(job_id)) == JobBlob(job_id, BlobRole.INPUT)
    assert artifacts.job_blob(artifacts.error_key(job_id)) == JobBlob(job_id, BlobRole.ERROR)
    result = artifacts.result_key(job_id, f"worker-1/{uuid.uuid4().hex}")
    assert artifacts.job_blob(result) == JobBlob(job_id, BlobRole.RESULT)
    assert result.startswith(artifacts.JOBS_PREFIX)


@pytest.mark.parametrize(
    "key",
    [
        "jobs/not-a-job/input",
        f"jobs/{'a' * 32}/input.bak",
        f"jobs/{'a' * 32}/results/short.json",
        f"jobs/{'a' * 32}/other",
        f"elsewhere/{'a' * 32}/input",
        f"jobs/{'A' * 32}/input",
    ],
)
def test_keys_outside_the_layout_name_no_job(key: str) -> None:
    assert artifacts.job_blob(key) is None
