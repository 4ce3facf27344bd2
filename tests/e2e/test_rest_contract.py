"""REST edge cases: size limit, unknown jobs, problem+json bodies, health, request ids."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from devstack.stack import Stack
from tests.support.api import upload, wait_terminal

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def _assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["requestId"] == response.headers["x-request-id"]
    assert body["title"] and body["detail"]


def test_upload_of_limit_plus_one_byte_is_413(client: httpx.Client) -> None:
    content = b"a" * (MAX_UPLOAD_BYTES + 1)
    response = client.post("/api/upload", files={"file": ("big.csv", content)})
    _assert_problem(response, 413, "payload_too_large")


def test_streamed_upload_without_length_stops_at_the_limit(client: httpx.Client) -> None:
    boundary = "dpboundary"
    sent = {"bytes": 0}

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="huge.csv"\r\n\r\n'
        ).encode()
        block = b"x" * (1024 * 1024)
        for _ in range(60):  # 60 MiB offered; the gateway must stop reading after ~20
            sent["bytes"] += len(block)
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        response = client.post(
            "/api/upload",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    except httpx.TransportError:
        pytest.fail("the gateway should answer 413, not drop the connection")
    _assert_problem(response, 413, "payload_too_large")


def test_exactly_the_limit_is_accepted(client: httpx.Client) -> None:
    content = b"n\n" + b"1\n" * ((MAX_UPLOAD_BYTES - 2) // 2)
    assert len(content) == MAX_UPLOAD_BYTES
    job = upload(client, "limit.csv", content)
    assert job["sizeBytes"] == MAX_UPLOAD_BYTES


def test_unknown_job_is_404_everywhere(client: httpx.Client) -> None:
    unknown = "0" * 32
    _assert_problem(client.get("/api/job-status", params={"jobId": unknown}), 404, "not_found")
    _assert_problem(client.get("/api/job-status", params={"jobId": "../etc"}), 404, "not_found")
    _assert_problem(client.post("/api/cancel", params={"jobId": unknown}), 404, "not_found")
    _assert_problem(client.get(f"/api/jobs/{unknown}/result"), 404, "not_found")
    _assert_problem(client.get(f"/api/jobs/{unknown}"), 404, "not_found")


def test_missing_job_id_is_400(client: httpx.Client) -> None:
    _assert_problem(client.get("/api/job-status"), 400, "invalid_request")


def test_upload_without_file_field_or_multipart(client: httpx.Client) -> None:
    _assert_problem(
        client.post("/api/upload", files={"other": ("a.csv", b"a\n1\n")}), 400, "missing_file"
    )
    _assert_problem(
        client.post("/api/upload", content=b"a,b\n1,2\n", headers={"content-type": "text/csv"}),
        415,
        "unsupported_media_type",
    )


def test_health_endpoints(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_request_id_is_echoed(client: httpx.Client) -> None:
    response = client.get(
        "/api/job-status", params={"jobId": "f" * 32}, headers={"X-Request-Id": "abc-123"}
    )
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["requestId"] == "abc-123"


def test_cancel_of_completed_job_is_409(client: httpx.Client) -> None:
    job = upload(client, "tiny.csv", b"a,b\n1,2\n3,4\n")
    assert wait_terminal(client, job["jobId"])["status"] == "completed"
    _assert_problem(
        client.post("/api/cancel", params={"jobId": job["jobId"]}), 409, "job_not_cancellable"
    )


def test_queued_job_can_be_cancelled_and_stays_cancelled(idle_stack: Stack) -> None:
    with httpx.Client(base_url=idle_stack.gateway_url, timeout=30) as client:
        job = upload(client, "tiny.csv", b"a,b\n1,2\n")
        first = client.post("/api/cancel", params={"jobId": job["jobId"]})
        assert first.status_code == 200
        assert first.json()["status"] == "cancelled"
        assert first.json()["finishedAt"]
        again = client.post("/api/cancel", params={"jobId": job["jobId"]})
        assert again.status_code == 200
        assert again.json()["status"] == "cancelled"
        status = client.get("/api/job-status", params={"jobId": job["jobId"]}).json()
        assert status["status"] == "cancelled"


def test_job_status_times_out_a_stuck_job(idle_stack: Stack) -> None:
    with httpx.Client(base_url=idle_stack.gateway_url, timeout=30) as client:
        job = upload(client, "tiny.csv", b"a,b\n1,2\n")
        done = wait_terminal(client, job["jobId"], timeout=10)
        assert done["status"] == "failed"
        assert done["error"] == "timeout"
        error = client.get(f"/api/jobs/{job['jobId']}/error").json()
        assert error["error"] == "timeout"


def test_idempotency_key_replays_the_same_job(client: httpx.Client) -> None:
    key = {"Idempotency-Key": f"k-{time.time_ns()}"}
    files = {"file": ("same.csv", b"a,b\n1,2\n")}
    first = client.post("/api/upload", files=files, headers=key)
    second = client.post("/api/upload", files=files, headers=key)
    assert first.status_code == second.status_code == 202
    assert first.json()["jobId"] == second.json()["jobId"]
    other = client.post("/api/upload", files={"file": ("same.csv", b"a,b\n9,9\n")}, headers=key)
    _assert_problem(other, 422, "idempotency_key_reused")
    fresh = client.post(
        "/api/upload", files=files, headers={"Idempotency-Key": key["Idempotency-Key"] + "x"}
    )
    assert fresh.json()["jobId"] != first.json()["jobId"]


def test_accepted_upload_points_at_its_status(client: httpx.Client) -> None:
    response = client.post("/api/upload", files={"file": ("a.csv", b"a\n1\n")})
    assert response.status_code == 202
    job_id = response.json()["jobId"]
    assert response.headers["location"] == f"/api/job-status?jobId={job_id}"
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20,
        b"%PDF-1.7\n\x00\x01\x02binary",
        b"\x7fELF\x02\x01",
    ],
    ids=["png", "pdf", "elf"],
)
def test_binary_uploads_are_refused_by_content_with_415(
    client: httpx.Client, content: bytes
) -> None:
    response = client.post("/api/upload", files={"file": ("looks-fine.csv", content)})
    _assert_problem(response, 415, "unsupported_file_type")
