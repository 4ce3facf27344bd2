"""`/analyze` through a real stack: charged to the rate limit, bounded per analysis_svc process,
and final refusals (a bound of the input) are 422 without Retry-After (issue 15)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from devstack.stack import Stack, StackConfig
from tests.corpus.hostile import hostile_files
from tests.support.api import checked_client, wait_terminal

SALES = (Path(__file__).resolve().parents[1] / "data" / "sales.csv").read_bytes()
GROUPS = next(item for item in hostile_files() if item.name == "parquet-many-row-groups")


def _upload(client: httpx.Client, name: str, content: bytes) -> str:
    response = client.post("/api/upload", files={"file": (name, content)})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


def test_analyze_is_admitted_charged_and_refused_finally(tmp_path: Path) -> None:
    env = {
        "BLOB_BACKEND": "fs",
        "RATE_LIMIT_PER_MINUTE": "4",  # a token back every 15 s: the test takes less
        "ANALYZE_MAX_INFLIGHT": "1",
        # Analyses wait this long in their child first: the first call holds the only slot.
        "SIMULATED_SLOW_PROCESSING_SECONDS": "2",
        "WORKER_CONCURRENCY": "1",
    }
    stack = Stack(StackConfig(run_dir=tmp_path, env=env, workers=0))
    try:
        stack.start()
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
            sales = _upload(client, "sales.csv", SALES)  # token 1
            groups = _upload(client, GROUPS.filename, GROUPS.content)  # token 2
            first: list[httpx.Response] = []
            holder = threading.Thread(
                target=lambda: first.append(client.post(f"/api/jobs/{sales}/analyze"))
            )
            holder.start()  # token 3
            time.sleep(0.7)  # it has reached analysis_svc and waits in its child
            busy = client.post(f"/api/jobs/{sales}/analyze")
            holder.join()
            assert busy.status_code == 503, busy.text
            assert busy.json()["code"] == "overloaded"
            assert int(busy.headers["retry-after"]) >= 1
            assert first[0].status_code == 200
            assert first[0].json()["dataset"]["rows"] == 120

            refused = client.post(f"/api/jobs/{groups}/analyze")  # token 4
            assert refused.status_code == 422, refused.text
            assert refused.json()["code"] == "analysis_limit_exceeded"
            assert "row groups" in refused.json()["detail"]
            assert "retry-after" not in refused.headers

            limited = client.post(f"/api/jobs/{sales}/analyze")
            assert limited.status_code == 429, limited.text
            assert limited.json()["code"] == "rate_limited"
            assert int(limited.headers["retry-after"]) >= 1
    finally:
        stack.stop()


def _busy_csv(rows: int = 500_000) -> bytes:
    """A plain, valid table that takes the engine a few tenths of a second of CPU."""
    lines = ["day,region,product,units,revenue"]
    lines += [
        f"2024-{n % 12 + 1:02d}-{n % 28 + 1:02d},r{n % 7},p{n % 113},{n % 50},{n * 0.37:.2f}"
        for n in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def test_a_job_over_its_cpu_bound_fails_and_the_worker_goes_on(tmp_path: Path) -> None:
    env = {"BLOB_BACKEND": "fs", "RATE_LIMIT_PER_MINUTE": "0", "ANALYSIS_MAX_CPU_SECONDS": "0.15"}
    stack = Stack(StackConfig(run_dir=tmp_path, env=env))
    try:
        stack.start()
        with checked_client(stack.gateway_url, timeout=60) as client:
            busy = _upload(client, "busy.csv", _busy_csv())
            job = wait_terminal(client, busy, 120)
            assert (job["status"], job["error"]) == ("failed", "analysis_limit_exceeded")
            assert "ANALYSIS_MAX_CPU_SECONDS" in job["errorMessage"]
            assert "0.15 s" in job["errorMessage"]
            error = client.get(f"/api/jobs/{busy}/error").json()
            assert error["error"] == "analysis_limit_exceeded"
            normal = wait_terminal(client, _upload(client, "sales.csv", SALES), 60)
            assert normal["status"] == "completed"
        assert not stack.dead()
    finally:
        stack.stop()
