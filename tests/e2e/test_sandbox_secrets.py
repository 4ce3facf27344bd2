"""Under a real worker, the analysis forkserver and its children hold no secret and no descriptor
of the worker's: read from /proc while a child sits idle in the worker's pool."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.processes import descendant_pids
from devstack.stack import Stack, StackConfig
from tests.support.api import checked_client, upload, wait_terminal

SALES = Path(__file__).resolve().parents[1] / "data" / "sales.csv"
SECRETS = {
    "INTERNAL_AUTH_TOKEN": "internal-token-that-must-not-leak",
    "OPENROUTER_API_KEY": "sk-or-key-that-must-not-leak",
    "S3_SECRET_KEY": "s3-secret-that-must-not-leak",
    "DATAPILOT_API_KEYS": "acme:api-key-that-must-not-leak",
}


@pytest.fixture(scope="module")
def secret_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        **SECRETS,
        "BLOB_BACKEND": "fs",
        "RATE_LIMIT_PER_MINUTE": "0",
        "LLM_BASE_URL": "http://127.0.0.1:9/v1",  # nothing listens: insights fall back at once
        "LLM_RETRY_ATTEMPTS": "1",
    }
    stack = Stack(StackConfig(run_dir=tmp_path_factory.mktemp("secret-stack"), env=env))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _links(pid: int) -> dict[int, str]:
    links = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed between the listing and the read
            links[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
    return links


def test_forkserver_and_children_hold_no_secret_nor_worker_descriptor(
    secret_stack: Stack,
) -> None:
    with checked_client(secret_stack.gateway_url, timeout=30) as http:
        http.headers["Authorization"] = "Bearer api-key-that-must-not-leak"
        job = upload(http, "sales.csv", SALES.read_bytes())
        assert wait_terminal(http, job["jobId"])["status"] == "completed"
    worker = secret_stack.processes["worker-1"].pid
    below = descendant_pids(worker)
    children = [pid for pid in below if _parent(pid) != worker]  # the forkserver's children
    forkservers = {_parent(pid) for pid in children}
    assert children and forkservers, f"no idle analysis child below the worker: {below}"
    for pid in [*forkservers, *children]:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in environ, f"{name}'s value reached process {pid}"
            assert f"{name}=".encode() not in environ, f"{name} reached process {pid}"
        assert b"REDIS_URL=" not in environ
        assert b"PATH=" in environ
    assert SECRETS["INTERNAL_AUTH_TOKEN"].encode() in Path(f"/proc/{worker}/environ").read_bytes()
    worker_files = set(_links(worker).values())
    for child in children:
        links = _links(child)
        sockets = [target for target in links.values() if target.startswith("socket:")]
        assert len(sockets) == 1, f"the pipe to the worker is a child's only socket: {links}"
        beyond = {fd: t for fd, t in links.items() if fd > 2 and not t.startswith("socket:")}
        allowed = ("pipe:", "anon_inode:", "/dev/null")
        assert all(target.startswith(allowed) for target in beyond.values()), links
        # None of those is shared with the worker (its Redis and gRPC sockets, its log files).
        assert not set(beyond.values()) - {"/dev/null"} & worker_files, links
