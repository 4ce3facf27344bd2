"""A small synchronous client of the DataPilot REST API (httpx)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

UPLOAD_CHUNK_BYTES = 256 * 1024
# An event stream silent for this long (heartbeats come every 15 s) counts as broken.
EVENTS_READ_TIMEOUT_SECONDS = 45.0


@dataclass
class ApiError(Exception):
    """A problem answer (or a transport failure) from the API."""

    status: int
    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.detail} ({self.code}, HTTP {self.status})" if self.status else self.detail


class DataPilotClient:
    """Calls the gateway; raises ApiError with the problem's code and detail."""

    def __init__(self, url: str, api_key: str = "", timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach the API: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                raise ApiError(response.status_code, body.get("code", "error"), body["detail"])
            except (ValueError, KeyError, AttributeError):
                raise ApiError(response.status_code, "error", response.text[:200]) from None
        return response

    def upload(
        self,
        path: Path,
        on_progress: Callable[[int], None] | None = None,
        options_json: str = "",
    ) -> tuple[dict[str, Any], float]:
        """Upload a file (streamed) with optional options JSON; returns the job and Retry-After."""
        boundary = os.urandom(16).hex()
        while boundary in options_json:  # the options part must not contain its delimiter
            boundary = os.urandom(16).hex()
        safe_name = path.name.replace('"', "").replace("\r", "").replace("\n", "")
        options_part = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="options"\r\n'
            f"Content-Type: application/json\r\n\r\n{options_json}\r\n"
            if options_json
            else ""
        )
        head = (
            f'{options_part}--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{safe_name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body() -> Iterator[bytes]:
            yield head
            with path.open("rb") as source:
                while chunk := source.read(UPLOAD_CHUNK_BYTES):
                    yield chunk
                    if on_progress is not None:
                        on_progress(len(chunk))
            yield tail

        size = path.stat().st_size + len(head) + len(tail)
        response = self._send(
            "POST",
            "/api/upload",
            content=body(),
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(size),
            },
        )
        job: dict[str, Any] = response.json()
        return job, float(response.headers.get("Retry-After", "1") or 1)

    def events(self, job_id: str) -> Iterator[dict[str, Any] | None]:
        """The job's live events (its record on each change; None for a heartbeat) until the
        server ends the stream; raises ApiError if it cannot be opened or breaks."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=EVENTS_READ_TIMEOUT_SECONDS)
        try:
            with self._http.stream(
                "GET", f"/api/jobs/{job_id}/events", timeout=timeout
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise ApiError(response.status_code, "events_unavailable", response.text[:200])
                data = ""
                for line in response.iter_lines():
                    if line.startswith(":"):
                        yield None
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif not line and data:
                        job: dict[str, Any] = json.loads(data)
                        data = ""
                        yield job
        except (httpx.HTTPError, ValueError) as exc:
            raise ApiError(0, "events_broken", f"the event stream broke: {exc}") from exc

    def status(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._send("GET", "/api/job-status", params={"jobId": job_id}).json()
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self._send("POST", "/api/cancel", params={"jobId": job_id}).json()
        return job

    def result(self, job_id: str) -> dict[str, Any]:
        document: dict[str, Any] = self._send("GET", f"/api/jobs/{job_id}/result").json()
        return document

    def error(self, job_id: str) -> dict[str, Any]:
        document: dict[str, Any] = self._send("GET", f"/api/jobs/{job_id}/error").json()
        return document

    def jobs(self, status: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        page: dict[str, Any] = self._send("GET", "/api/jobs", params=params).json()
        return page
