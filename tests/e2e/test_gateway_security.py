"""Authentication, tenants, internal token, rate limit, deadlines, disconnects, request ids."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from datapilot_runtime.context import INTERNAL_TENANT, TENANT_METADATA_KEY
from devstack.processes import free_port
from devstack.stack import Stack, StackConfig
from tests.support.api import wait_terminal

KEY_A, KEY_B = "key-acme-0123456789", "key-beta-9876543210"
TOKEN = "internal-token-for-tests"
CSV = b"region,units\nNorth,3\nSouth,5\n"


def _start(run_dir: Path, env: dict[str, str]) -> Stack:
    stack = Stack(StackConfig(run_dir=run_dir, env={"RETRY_INITIAL_DELAY": "0.05", **env}))
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two tenants (one key given hashed), an internal token, slow analysis for deadlines."""
    hashed_b = "sha256:" + hashlib.sha256(KEY_B.encode()).hexdigest()
    env = {
        "DATAPILOT_API_KEYS": f"acme:{KEY_A},beta:{hashed_b}",
        "INTERNAL_AUTH_TOKEN": TOKEN,
        "RATE_LIMIT_PER_MINUTE": "0",
        "SIMULATED_SLOW_PROCESSING_SECONDS": "1.5",
    }
    stack = _start(tmp_path_factory.mktemp("secure"), env)
    yield stack
    stack.stop()


def _client(stack: Stack, key: str | None = None, header: str = "bearer") -> httpx.Client:
    headers = {}
    if key is not None:
        headers = {"Authorization": f"Bearer {key}"} if header == "bearer" else {"X-API-Key": key}
    return httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=30)


def _upload(client: httpx.Client, **headers: str) -> dict[str, str]:
    response = client.post("/api/upload", files={"file": ("t.csv", CSV)}, headers=headers)
    assert response.status_code == 202, response.text
    job: dict[str, str] = response.json()
    return job


ENDPOINTS = [
    ("GET", "/api/job-status?jobId={job}"),
    ("GET", "/api/jobs/{job}"),
    ("GET", "/api/jobs/{job}/result"),
    ("GET", "/api/jobs/{job}/error"),
    ("POST", "/api/cancel?jobId={job}"),
    ("POST", "/api/jobs/{job}/analyze"),
    ("GET", "/api/jobs"),
]


@pytest.mark.parametrize(("method", "path"), [*ENDPOINTS, ("POST", "/api/upload")])
@pytest.mark.parametrize("key", [None, "wrong-key"], ids=["missing", "wrong"])
def test_missing_or_wrong_key_is_401(
    secure_stack: Stack, method: str, path: str, key: str | None
) -> None:
    with _client(secure_stack, key) as client:
        response = client.request(method, path.format(job="0" * 32))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_valid_key_either_header(secure_stack: Stack, header: str) -> None:
    with _client(secure_stack, KEY_A, header) as client:
        job = _upload(client)
        assert client.get("/api/job-status", params={"jobId": job["jobId"]}).status_code == 200


def test_other_tenants_jobs_do_not_exist_for_you(secure_stack: Stack) -> None:
    with _client(secure_stack, KEY_A) as acme, _client(secure_stack, KEY_B) as beta:
        job = _upload(acme)["jobId"]
        for method, path in ENDPOINTS[:-1]:
            response = beta.request(method, path.format(job=job))
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["code"] == "not_found"
        listed = beta.get("/api/jobs").json()["jobs"]
        assert job not in {j["jobId"] for j in listed}
        assert job in {j["jobId"] for j in acme.get("/api/jobs").json()["jobs"]}
        assert wait_terminal(acme, job, timeout=30)["status"] == "completed"
        assert acme.get(f"/api/jobs/{job}/result").status_code == 200
        assert beta.get(f"/api/jobs/{job}/result").status_code == 404


def test_job_list_is_newest_first_paginated_and_filtered(secure_stack: Stack) -> None:
    with _client(secure_stack, KEY_B) as beta:
        ids = [_upload(beta)["jobId"] for _ in range(3)]
        beta.post("/api/cancel", params={"jobId": ids[1]})
        first = beta.get("/api/jobs", params={"limit": 2}).json()
        assert [j["jobId"] for j in first["jobs"]] == [ids[2], ids[1]]
        assert first["nextCursor"]
        second = beta.get("/api/jobs", params={"limit": 2, "cursor": first["nextCursor"]}).json()
        assert second["jobs"][0]["jobId"] == ids[0]
        cancelled = beta.get("/api/jobs", params={"status": "cancelled"}).json()["jobs"]
        assert [j["jobId"] for j in cancelled] == [ids[1]]
        bad = beta.get("/api/jobs", params={"cursor": "!!not-a-cursor"})
        assert bad.status_code == 400


def test_services_require_the_internal_token(secure_stack: Stack) -> None:
    with grpc.insecure_channel(secure_stack.addresses["ingest"]) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetJob(ingest_pb2.GetJobRequest(job_id="0" * 32), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:  # the token, but no tenant: fail closed
            stub.GetJob(
                ingest_pb2.GetJobRequest(job_id="0" * 32),
                timeout=5,
                metadata=(("x-dp-internal-token", TOKEN),),
            )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            stub.GetJob(
                ingest_pb2.GetJobRequest(job_id="0" * 32),
                timeout=5,
                metadata=(("x-dp-internal-token", TOKEN), (TENANT_METADATA_KEY, INTERNAL_TENANT)),
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_deadline_header_gives_504_promptly(secure_stack: Stack) -> None:
    with _client(secure_stack, KEY_A) as client:
        job = _upload(client)["jobId"]
        for headers in ({"Grpc-Timeout": "100m"}, {"Request-Timeout": "0.1"}):
            # The analysis takes longer than 100 ms: only the propagated deadline ends it so.
            response = client.post(f"/api/jobs/{job}/analyze", headers=headers)
            assert response.status_code == 504, response.text
            assert response.json()["code"] == "deadline_exceeded"
        assert (
            client.post(f"/api/jobs/{job}/analyze", headers={"Grpc-Timeout": "soon"}).status_code
            == 400
        )


def _log_lines(stack: Stack, name: str) -> str:
    return (stack.config.run_dir / "logs" / f"{name}.log").read_text(errors="replace")


def test_client_disconnect_cancels_the_upstream_call(secure_stack: Stack) -> None:
    request_id = f"disconnect-{uuid.uuid4().hex}"
    with _client(secure_stack, KEY_A) as client:
        job = _upload(client)["jobId"]
        with pytest.raises(httpx.ReadTimeout):
            client.post(
                f"/api/jobs/{job}/analyze",
                headers={"X-Request-Id": request_id},
                timeout=httpx.Timeout(30, read=0.4),
            )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [
            line for line in _log_lines(secure_stack, "analysis").splitlines() if request_id in line
        ]
        if any('"grpc_code": "CANCELLED"' in line for line in lines):
            break
        time.sleep(0.1)
    else:
        pytest.fail("analysis_svc never saw the call cancelled")


def test_request_id_reaches_every_service_log(secure_stack: Stack) -> None:
    request_id = f"e2e-{uuid.uuid4().hex}"
    with _client(secure_stack, KEY_A) as client:
        response = client.post(
            "/api/upload", files={"file": ("t.csv", CSV)}, headers={"X-Request-Id": request_id}
        )
        assert response.headers["x-request-id"] == request_id
        assert wait_terminal(client, response.json()["jobId"], timeout=30)["status"] == "completed"
    for name in ("gateway", "ingest", "worker-1", "llm"):
        assert request_id in _log_lines(secure_stack, name), f"{name} logs lack the request id"


def test_keys_never_reach_the_logs(secure_stack: Stack) -> None:
    for name in ("gateway", "ingest", "worker-1", "llm", "analysis"):
        text = _log_lines(secure_stack, name)
        assert KEY_A not in text and KEY_B not in text and TOKEN not in text


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    stack = _start(tmp_path, {"RATE_LIMIT_PER_MINUTE": "5"})
    try:
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
            statuses = [
                client.get("/api/job-status", params={"jobId": "0" * 32}).status_code
                for _ in range(5)
            ]
            assert statuses == [404] * 5
            limited = client.get("/api/job-status", params={"jobId": "0" * 32})
            assert limited.status_code == 429
            assert limited.json()["code"] == "rate_limited"
            assert int(limited.headers["retry-after"]) >= 1
            assert client.get("/healthz").status_code == 200  # health is never limited
    finally:
        stack.stop()


@pytest.mark.parametrize(
    ("extra", "expect_start"),
    [
        ({}, False),
        ({"DATAPILOT_ALLOW_ANONYMOUS": "true"}, True),
        ({"DATAPILOT_API_KEYS": "a:k"}, True),
    ],
    ids=["refused", "allowed-explicitly", "with-keys"],
)
def test_anonymous_gateway_refuses_non_loopback_bind(
    extra: dict[str, str], expect_start: bool
) -> None:
    env = {**os.environ, "GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": str(free_port()), **extra}
    env.pop("DATAPILOT_API_KEYS", None) if "DATAPILOT_API_KEYS" not in extra else None
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
    output = process.stdout.read().decode() if process.stdout else ""
    if expect_start:
        assert code is None, output
    else:
        assert code == 2
        assert "DATAPILOT_ALLOW_ANONYMOUS" in output
