"""The whole system on a real Redis Cluster (REDIS_CLUSTER=true, three stream shards)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import Stack, StackConfig
from tests.conftest import FAST_RETRY_ENV
from tests.support.api import checked_client, upload, wait_terminal
from tests.support.redis_cluster import RedisClusterNodes

SALES_CSV = Path(__file__).resolve().parents[1] / "data" / "sales.csv"
CLUSTER_ENV = {"REDIS_CLUSTER": "true", "JOB_STREAM_SHARDS": "3", "BLOB_BACKEND": "fs"}


@pytest.fixture(scope="module")
def cluster_stack(run_root: Path, redis_cluster: RedisClusterNodes) -> Iterator[Stack]:
    redis_cluster.flush()
    config = StackConfig(
        run_dir=run_root / "cluster-stack",
        redis_url=redis_cluster.url,  # a seed node: the stack starts no Redis of its own
        env={**FAST_RETRY_ENV, **CLUSTER_ENV},
        workers=2,
    )
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture()
def cluster_client(cluster_stack: Stack) -> Iterator[httpx.Client]:
    with checked_client(cluster_stack.gateway_url, timeout=30) as http:
        yield http


def test_jobs_complete_on_a_redis_cluster(
    cluster_stack: Stack, cluster_client: httpx.Client
) -> None:
    assert "redis" not in cluster_stack.processes
    rows = SALES_CSV.read_bytes().rstrip(b"\n")
    jobs = [
        upload(cluster_client, f"s{n}.csv", rows + f"\n2025-12-31,East,W,{n},{n}.5\n".encode())
        for n in range(6)
    ]
    for job in jobs:
        done = wait_terminal(cluster_client, job["jobId"], timeout=90)
        assert done["status"] == "completed", done
        result = cluster_client.get(f"/api/jobs/{job['jobId']}/result")
        assert result.status_code == 200 and result.json()["jobId"] == job["jobId"]
    listed = cluster_client.get("/api/jobs", params={"limit": 50})
    assert listed.status_code == 200, listed.text
    assert {j["jobId"] for j in jobs} <= {j["jobId"] for j in listed.json()["jobs"]}


def test_an_idempotent_upload_and_a_cancel_on_a_redis_cluster(
    cluster_client: httpx.Client,
) -> None:
    content = SALES_CSV.read_bytes()
    headers = {"Idempotency-Key": "cluster-key-1"}
    files = {"file": ("i.csv", content)}
    first = cluster_client.post("/api/upload", files=files, headers=headers)
    again = cluster_client.post("/api/upload", files=files, headers=headers)
    assert first.status_code == 202 and again.status_code in (200, 202), again.text
    assert again.json()["jobId"] == first.json()["jobId"]
    job_id = first.json()["jobId"]
    cancel = cluster_client.post("/api/cancel", params={"jobId": job_id})
    assert cancel.status_code in (200, 409), cancel.text  # 409: it completed first
    assert wait_terminal(cluster_client, job_id, timeout=90)["status"] in (
        "cancelled",
        "completed",
    )
