"""deploy/compose.yaml in containers (`make container-up`): uploads, a SIGTERM, hardening."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pandas as pd
import pytest

from devstack.processes import free_port
from tests.containers.podman import (
    ROOT,
    SCRIPT,
    hardening,
    logs,
    podman,
    podman_env,
    skip_unless_enabled,
    wait_until,
)
from tests.support.api import checked_client, upload, wait_terminal

pytestmark = [skip_unless_enabled, pytest.mark.timeout(600)]

# Not `datapilot-ct`: a stack a person started with `make container-up` is left alone.
PROJECT = "datapilot-cttest"
# Every job sleeps this long inside the worker, longer than the drain grace: a SIGTERM'd
# worker must hand its job back rather than finish it.
SLOW_SECONDS = 8
GRACE_SECONDS = 1
DATAPILOT_CONTAINERS = ("ingest_1", "llm_1", "analysis_1", "worker_1", "worker_2", "gateway_1")


@dataclass(frozen=True)
class ComposeStack:
    url: str
    api_key: str

    def container(self, suffix: str) -> str:
        return f"{PROJECT}_{suffix}"


def _script(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), command],
        capture_output=True,
        text=True,
        timeout=420,
        env=podman_env(env),
        cwd=ROOT,
        check=False,
    )


def _project_objects() -> list[str]:
    label = f"label=io.podman.compose.project={PROJECT}"
    found = podman("ps", "-aq", "--filter", label).split()
    found += podman("volume", "ls", "-q", "--filter", label).split()
    found += [n for n in podman("network", "ls", "--format", "{{.Name}}").split() if PROJECT in n]
    return found


@pytest.fixture(scope="module")
def compose_stack() -> Iterator[ComposeStack]:
    key = secrets.token_hex(16)
    port = free_port()
    env = {
        "CT_PROJECT": PROJECT,
        "GATEWAY_PORT": str(port),
        "DATAPILOT_API_KEYS": f"ct:{key}",
        "SIMULATED_SLOW_PROCESSING_SECONDS": str(SLOW_SECONDS),
        "WORKER_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
    }
    _script("down", env)
    up = _script("up", env)
    try:
        assert up.returncode == 0, up.stderr
        url = f"http://127.0.0.1:{port}"
        assert url in up.stdout, up.stdout
        # A key from the environment is never echoed.
        assert key not in up.stdout + up.stderr
        yield ComposeStack(url, key)
    finally:
        down = _script("down", env)
        assert down.returncode == 0, down.stderr
        assert _project_objects() == []


@pytest.fixture(scope="module")
def client(compose_stack: ComposeStack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {compose_stack.api_key}"}
    with checked_client(compose_stack.url, headers=headers, timeout=30) as api:
        yield api


def _xlsx() -> bytes:
    frame = pd.DataFrame({"city": ["Oslo", "Bergen", "Oslo", "Tromsø"], "visitors": [12, 8, 9, 3]})
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False, engine="openpyxl")
    return buffer.getvalue()


def test_without_a_key_the_gateway_refuses(compose_stack: ComposeStack) -> None:
    response = httpx.post(f"{compose_stack.url}/api/upload", files={"file": ("a.csv", b"a\n1\n")})
    assert response.status_code == 401, response.text


def test_csv_and_xlsx_complete_through_the_published_port(client: httpx.Client) -> None:
    csv = (ROOT / "tests" / "data" / "sales.csv").read_bytes()
    jobs = [upload(client, "sales.csv", csv), upload(client, "visitors.xlsx", _xlsx())]
    for job, file_format in zip(jobs, ("csv", "xlsx"), strict=True):
        done = wait_terminal(client, job["jobId"], timeout=120)
        assert done["status"] == "completed", done
        result = client.get(done["resultUrl"])
        assert result.status_code == 200, result.text
        assert result.json()["kpis"]["dataset"]["format"] == file_format


def _holder(stack: ComposeStack, job_id: str) -> str | None:
    """The worker container whose log says it is processing `job_id`."""
    for suffix in ("worker_1", "worker_2"):
        for line in logs(stack.container(suffix)).splitlines():
            if job_id in line and "job processing" in line:
                return stack.container(suffix)
    return None


def test_sigterm_hands_a_running_job_to_the_other_worker(
    compose_stack: ComposeStack, client: httpx.Client
) -> None:
    csv = (ROOT / "tests" / "data" / "sales.csv").read_bytes()
    job_id = upload(client, "handback.csv", csv)["jobId"]
    holder: list[str] = []

    def claimed() -> bool:
        name = _holder(compose_stack, job_id)
        holder.extend([name] if name else [])
        return bool(holder)

    wait_until(claimed, 60, "a worker to start the job")
    victim = holder[0]
    podman("kill", "--signal", "TERM", victim)
    done = wait_terminal(client, job_id, timeout=120)
    assert done["status"] == "completed", done
    assert done["attempt"] >= 2, done
    victim_log = logs(victim)
    assert "job handed back to the queue" in victim_log
    others = [c for c in ("worker_1", "worker_2") if compose_stack.container(c) != victim]
    other_log = logs(compose_stack.container(others[0]))
    assert any(job_id in line and "job completed" in line for line in other_log.splitlines())


def test_every_container_runs_hardened(compose_stack: ComposeStack) -> None:
    problems = []
    for suffix in DATAPILOT_CONTAINERS:
        problems += hardening(compose_stack.container(suffix)).problems()
    assert problems == []
    gateway = compose_stack.container("gateway_1")
    [info] = json.loads(podman("inspect", "--type", "container", gateway))
    published = info["HostConfig"]["PortBindings"]["8080/tcp"]
    assert [binding["HostIp"] for binding in published] == ["127.0.0.1"]
