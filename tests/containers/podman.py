"""Podman from the container tests: inspect, exec, the image's own health client, hardening."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "containers.sh"
CONTAINERS_CONF = ROOT / "deploy" / "local" / "containers.conf"
IMAGE = "localhost/datapilot:dev"
REDIS_IMAGE = "localhost/datapilot-redis:bookworm"
MOTO_IMAGE = "localhost/datapilot-moto:dev"
ENABLED = os.environ.get("CONTAINER_TESTS") == "1"
# `make test` skips these: they start containers and take minutes (run by `make container-test`).
skip_unless_enabled = pytest.mark.skipif(
    not ENABLED, reason="container tests run with `make container-test` (CONTAINER_TESTS=1)"
)

# The image's own gRPC health client (as compose.yaml's healthchecks): exit 0 when SERVING.
_HEALTH = (
    "import grpc, sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; "
    "sys.exit(g.HealthStub(grpc.insecure_channel('127.0.0.1:{port}'))"
    ".Check(h.HealthCheckRequest(service='{service}'), timeout=2).status != 1)"
)
_HTTP = (
    "import sys, urllib.request; "
    "sys.exit(urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=2).status != 200)"
)


def podman_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), **(extra or {})}


def podman(*args: str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=podman_env(),
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class Hardening:
    """What `podman inspect` and the process's own /proc say about one container."""

    name: str
    user: str
    read_only_root: bool
    tmp_is_tmpfs: bool
    effective_caps: tuple[str, ...]
    no_new_privileges: bool
    proc_uid: str
    proc_cap_eff: str
    proc_no_new_privs: str

    def problems(self, uid: str = "10001") -> list[str]:
        found = []
        if self.user.split(":")[0] != uid or self.proc_uid != uid:
            found.append(f"user {self.user} / uid {self.proc_uid}, expected {uid}")
        if not self.read_only_root:
            found.append("root filesystem is writable")
        if not self.tmp_is_tmpfs:
            found.append("/tmp is not a tmpfs")
        if self.effective_caps or int(self.proc_cap_eff, 16) != 0:
            found.append(f"capabilities {self.effective_caps} / CapEff {self.proc_cap_eff}")
        if not self.no_new_privileges or self.proc_no_new_privs != "1":
            found.append("new privileges are allowed")
        return [f"{self.name}: {problem}" for problem in found]


def _proc_status(container: str) -> dict[str, str]:
    text = podman("exec", container, "cat", "/proc/1/status")
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def hardening(container: str) -> Hardening:
    [info] = json.loads(podman("inspect", "--type", "container", container))
    config, host = info["Config"], info["HostConfig"]
    mounts = [m for m in info.get("Mounts", []) if m.get("Destination") == "/tmp"]
    tmpfs = "/tmp" in (host.get("Tmpfs") or {}) or any(m.get("Type") == "tmpfs" for m in mounts)
    status = _proc_status(container)
    security = [str(opt) for opt in host.get("SecurityOpt") or []]
    return Hardening(
        name=container,
        user=str(config.get("User", "")),
        read_only_root=bool(host.get("ReadonlyRootfs")),
        tmp_is_tmpfs=tmpfs,
        effective_caps=tuple(info.get("EffectiveCaps") or ()),
        no_new_privileges=any(opt.startswith("no-new-privileges") for opt in security),
        proc_uid=status["Uid"].split()[0],
        proc_cap_eff=status["CapEff"],
        proc_no_new_privs=status["NoNewPrivs"],
    )


def grpc_serving(container: str, port: int, service: str = "") -> bool:
    """The image's health client inside `container`: is 127.0.0.1:port SERVING?"""
    code = _HEALTH.format(port=port, service=service)
    result = subprocess.run(
        ["podman", "exec", container, "python", "-c", code],
        capture_output=True,
        timeout=30,
        env=podman_env(),
        check=False,
    )
    return result.returncode == 0


def http_ok(container: str, port: int, path: str) -> bool:
    code = _HTTP.format(port=port, path=path)
    result = subprocess.run(
        ["podman", "exec", container, "python", "-c", code],
        capture_output=True,
        timeout=30,
        env=podman_env(),
        check=False,
    )
    return result.returncode == 0


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.5)


def logs(container: str) -> str:
    result = subprocess.run(
        ["podman", "logs", container],
        capture_output=True,
        text=True,
        timeout=60,
        env=podman_env(),
        check=False,
    )
    return result.stdout + result.stderr
