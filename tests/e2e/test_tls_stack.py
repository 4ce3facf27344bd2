"""The whole system with TLS on every gRPC hop (mutual), Redis over rediss://, reflection off.

Real processes: each service presents a certificate of a CA the test makes and requires one from
its callers; Redis listens on TLS only. A job still goes upload -> worker -> LLM -> result. The
same stack checks that the rate limit is charged when an upload starts, not after its body.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from datapilot_runtime.context import INTERNAL_TOKEN_METADATA_KEY
from datapilot_runtime.grpc_host import channel_credentials
from datapilot_runtime.settings import GrpcTransportSettings
from devstack.stack import Stack, StackConfig
from tests.support.tls import ThrowawayCa, start_tls_redis

TOKEN = "tls-stack-internal-token"
KEY_A, KEY_B = "key-tls-a-0123456789", "key-tls-b-0123456789"
PER_MINUTE = 20
CSV = b"region,units\nNorth,3\nSouth,5\nEast,4\n"


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, ThrowawayCa]]:
    run = tmp_path_factory.mktemp("tls-stack")
    ca = ThrowawayCa(run / "ca")
    redis = start_tls_redis(ca, run / "redis")
    files = ca.issue("datapilot")
    env = {
        **files.grpc_env(),
        "REDIS_TLS_CA_FILE": str(ca.ca_file),
        "GRPC_REFLECTION": "false",
        "INTERNAL_AUTH_TOKEN": TOKEN,
        "DATAPILOT_API_KEYS": f"a:{KEY_A},b:{KEY_B}",
        "RATE_LIMIT_PER_MINUTE": str(PER_MINUTE),
        "UPLOAD_MIN_RATE_GRACE_SECONDS": "30",  # the held uploads below stay open
        "RETRY_INITIAL_DELAY": "0.05",
    }
    stack = Stack(StackConfig(run_dir=run, redis_url=redis.url, env=env))
    try:
        stack.start()
        yield stack, ca
    finally:
        stack.stop()
        redis.stop()


def _client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_a_job_completes_over_tls_hops(tls_stack: tuple[Stack, ThrowawayCa]) -> None:
    stack, _ = tls_stack
    with _client(stack, KEY_A) as http:
        reply = http.post("/api/upload", files={"file": ("t.csv", CSV, "text/csv")})
        assert reply.status_code == 202, reply.text
        job_id = reply.json()["jobId"]
        deadline = time.monotonic() + 60
        status = "queued"
        while status not in ("completed", "failed", "cancelled"):
            assert time.monotonic() < deadline, status
            time.sleep(0.5)  # few polls: they count toward the tenant's rate limit
            status = http.get("/api/job-status", params={"jobId": job_id}).json()["status"]
        assert status == "completed"
        result = http.get(f"/api/jobs/{job_id}/result")
        assert result.status_code == 200 and result.json()["kpis"]["dataset"]["rows"] == 3


def _health(address: str, credentials: grpc.ChannelCredentials | None) -> bool:
    channel = (
        grpc.insecure_channel(address)
        if credentials is None
        else grpc.secure_channel(address, credentials)
    )
    with channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.RpcError:
            return False
    return True


def test_every_service_refuses_plaintext_and_certless_callers(
    tls_stack: tuple[Stack, ThrowawayCa],
) -> None:
    stack, ca = tls_stack
    with_cert = channel_credentials(ca.issue("tester").transport())
    without_cert = channel_credentials(GrpcTransportSettings(grpc_tls_ca_file=str(ca.ca_file)))
    for name in ("ingest", "llm", "analysis", "worker-1"):
        address = stack.addresses[name]
        assert _health(address, with_cert), name
        assert not _health(address, without_cert), name
        assert not _health(address, None), name


def test_reflection_is_off_when_grpc_reflection_is_false(
    tls_stack: tuple[Stack, ThrowawayCa],
) -> None:
    stack, ca = tls_stack
    credentials = channel_credentials(ca.issue("tester").transport())
    assert credentials is not None
    with grpc.secure_channel(stack.addresses["ingest"], credentials) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            metadata=((INTERNAL_TOKEN_METADATA_KEY, TOKEN),),
            timeout=5,
        )
        with pytest.raises(grpc.RpcError) as refused:
            list(replies)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_an_upload_is_charged_when_it_starts(tls_stack: tuple[Stack, ThrowawayCa]) -> None:
    """Uploads that sent their headers and nothing else already used the tenant's tokens."""
    stack, _ = tls_stack
    host, _, port = stack.gateway_url.removeprefix("http://").rpartition(":")
    head = (
        "POST /api/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + KEY_B + "\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    held = []
    try:
        for _ in range(PER_MINUTE):
            sock = socket.create_connection((host, int(port)), timeout=30)
            sock.sendall(head)
            held.append(sock)
        time.sleep(1)  # each has reached ingest (the charge is its first call)
        with _client(stack, KEY_B) as http:
            refused = http.get("/api/jobs")
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
    finally:
        for sock in held:
            sock.close()
