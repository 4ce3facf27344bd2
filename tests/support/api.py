"""Small REST helpers for end-to-end tests: upload, poll until terminal."""

from __future__ import annotations

import time
from typing import Any

import httpx

TERMINAL = {"completed", "failed", "cancelled"}


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
