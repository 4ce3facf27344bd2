"""Small REST helpers for end-to-end tests: upload, poll until terminal, check result.json.

Every `result.json` a test downloads through a client made with `checked_client` (the `client`
fixture is one) is validated against the published schema, docs/result.schema.json.
"""

from __future__ import annotations

import functools
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from datapilot_runtime.context import INTERNAL_TENANT, TENANT_METADATA_KEY

TERMINAL = {"completed", "failed", "cancelled"}
# gRPC metadata of a test calling a service directly as an internal caller (every tenant's jobs):
# a call that names no tenant is refused.
INTERNAL_CALLER = ((TENANT_METADATA_KEY, INTERNAL_TENANT),)
RESULT_SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "result.schema.json"
_RESULT_PATH = re.compile(r"^/api/jobs/[^/]+/result$")


@functools.cache
def _result_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(RESULT_SCHEMA_PATH.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator: jsonschema.protocols.Validator = validator_class(schema)
    return validator


def check_result(document: Any) -> None:
    """Fail (AssertionError, every violation listed) unless `document` matches the schema."""
    errors = sorted(_result_validator().iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "result.json does not match docs/result.schema.json:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
        for e in errors[:20]
    )


def _check_result_response(response: httpx.Response) -> None:
    if response.status_code == 200 and _RESULT_PATH.match(response.request.url.path):
        response.read()
        check_result(response.json())


def checked_client(base_url: str, **kwargs: Any) -> httpx.Client:
    """An httpx client that validates every result.json it downloads."""
    return httpx.Client(
        base_url=base_url, event_hooks={"response": [_check_result_response]}, **kwargs
    )


def upload(client: httpx.Client, filename: str, content: bytes) -> dict[str, Any]:
    response = client.post("/api/upload", files={"file": (filename, content)})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_terminal(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/api/job-status", params={"jobId": job_id})
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout}s"
        time.sleep(0.05)
