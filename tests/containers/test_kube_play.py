"""The rendered base's Deployments under `podman kube play`: securityContext, volumes, SERVING.

What podman 4.3 does not emulate is filled in, and only that: Services become `hostAliases`
to the pods' addresses (the pods start in dependency order), the Secret the base names is a
podman secret (podman 4.3 reads only a flat JSON map of base64 values), each Deployment runs one
replica, `containerPort`s are dropped (podman would publish them on the host's ports) and each
emptyDir gets a name of its own (podman maps an emptyDir to one named volume shared by every pod
that names it alike). Probes are not run by podman: the image's own health client asks instead.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.containers.podman import (
    MOTO_IMAGE,
    REDIS_IMAGE,
    ROOT,
    Hardening,
    grpc_serving,
    hardening,
    http_ok,
    logs,
    podman,
    skip_unless_enabled,
    wait_until,
)
from tests.deploy.manifests import container_port, of_kind, render

pytestmark = [skip_unless_enabled, pytest.mark.timeout(600)]

Obj = dict[str, Any]
PREFIX = "datapilot-kube"
NETWORK = f"{PREFIX}-net"
SECRET = "datapilot-secrets"
# Each wave's dependencies are up before it starts (Services are names of earlier pods).
WAVES = (("ingest", "llm"), ("analysis", "worker"), ("gateway",))
SECRET_VALUES = {
    "REDIS_URL": "redis://redis:6379/0",
    "OPENROUTER_API_KEY": "",
    "DATAPILOT_API_KEYS": "kube:kube-test-key",
    "INTERNAL_AUTH_TOKEN": "kube-internal-token",
    "S3_ACCESS_KEY": "test",
    "S3_SECRET_KEY": "test",
}
FIGURES = ROOT / "bench-results" / "container-startup.json"


def _secret_keys(objects: list[Obj]) -> set[str]:
    keys = set()
    for deployment in of_kind(objects, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == SECRET, ref
                    keys.add(ref["key"])
    return keys


def _playable(deployment: Obj, aliases: dict[str, str]) -> Obj:
    """The Deployment with what podman does not emulate filled in (see the module docstring)."""
    played = copy.deepcopy(deployment)
    name = played["metadata"]["name"]
    played["spec"]["replicas"] = 1
    spec = played["spec"]["template"]["spec"]
    if aliases:
        spec["hostAliases"] = [{"ip": ip, "hostnames": [host]} for host, ip in aliases.items()]
    for volume in spec.get("volumes", []):
        if "emptyDir" in volume:
            renamed = f"{PREFIX}-{name}-{volume['name']}"
            for container in spec["containers"]:
                for mount in container.get("volumeMounts", []):
                    if mount["name"] == volume["name"]:
                        mount["name"] = renamed
            volume["name"] = renamed
    for container in spec["containers"]:
        container.pop("ports", None)
    return played


def _ip(pod: str) -> str:
    found = json.loads(podman("pod", "inspect", pod))
    # podman 4.3 prints one object for one pod; later releases print a list.
    infra = (found[0] if isinstance(found, list) else found)["InfraContainerID"]
    [container] = json.loads(podman("inspect", "--type", "container", infra))
    networks = container["NetworkSettings"]["Networks"]
    ip: str = networks[NETWORK]["IPAddress"]
    return ip


def _started_at(container: str) -> float:
    [info] = json.loads(podman("inspect", "--type", "container", container))
    # RFC 3339 with nanoseconds ("...:14.42573038Z"): microseconds are enough.
    head, _, fraction = info["State"]["StartedAt"].rstrip("Z").partition(".")
    parsed = datetime.fromisoformat(f"{head}.{fraction[:6].ljust(6, '0')}+00:00")
    return parsed.timestamp()


# The line each process logs once it serves (GrpcHost.start; uvicorn for the gateway).
_SERVING_LINES = (" listening on ", "Uvicorn running on ")


def _logged_serving_at(container: str) -> float | None:
    """When the process's own log says it serves (its JSON log timestamp), if it says so."""
    for line in logs(container).splitlines():
        if line.startswith("{") and any(marker in line for marker in _SERVING_LINES):
            stamp = str(json.loads(line)["timestamp"])
            return datetime.fromisoformat(stamp).timestamp()
    return None


def _cleanup() -> None:
    for pod in podman("pod", "ps", "-q", "--filter", f"label={PREFIX}=1").split():
        podman("pod", "rm", "-f", pod, check=False)
    for pod in podman("pod", "ps", "--format", "{{.Name}}").split():
        if pod.split("-pod-")[0] in {p for wave in WAVES for p in wave}:
            podman("pod", "rm", "-f", pod, check=False)
    podman("rm", "-f", f"{PREFIX}-redis", f"{PREFIX}-s3", check=False)
    for volume in podman("volume", "ls", "-q").split():
        if volume.startswith(f"{PREFIX}-"):
            podman("volume", "rm", "-f", volume, check=False)
    podman("secret", "rm", SECRET, check=False)
    podman("network", "rm", "-f", NETWORK, check=False)


def _hardened_store(name: str, alias: str, image: str, user: str, *command: str) -> None:
    podman(
        "run", "-d", "--name", name, "--network", NETWORK, "--network-alias", alias,
        "--user", user, "--read-only", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--tmpfs", "/tmp:mode=1777",
        image, *command,
    )  # fmt: skip


class KubePlay:
    """The pods of the base, started wave by wave; times from container start to SERVING."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.objects = render("base")
        self.deployments = {d["metadata"]["name"]: d for d in of_kind(self.objects, "Deployment")}
        # Service name -> pod address (Redis and S3 are network aliases of their containers).
        self.aliases: dict[str, str] = {}
        # container start -> first SERVING answer of the health client (polled: an upper bound)
        self.serving_seconds: dict[str, float] = {}
        # container start -> the process's "serving" log line
        self.logged_seconds: dict[str, float] = {}

    def container(self, name: str) -> str:
        return f"{name}-pod-0-{name}"

    def main_container(self, name: str) -> Obj:
        container: Obj = self.deployments[name]["spec"]["template"]["spec"]["containers"][0]
        return container

    def serving(self, name: str, service: str = "") -> bool:
        container = self.main_container(name)
        if name == "gateway":
            port = container_port(container, "http")
            return http_ok(self.container(name), port, "/readyz" if service else "/healthz")
        port = container_port(container, container["livenessProbe"]["grpc"]["port"])
        return grpc_serving(self.container(name), port, service)

    def start_wave(self, names: tuple[str, ...]) -> None:
        documents = [
            *of_kind(self.objects, "ConfigMap"),
            *[_playable(self.deployments[name], self.aliases) for name in names],
        ]
        path = self.workdir / f"{'-'.join(names)}.yaml"
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        podman("kube", "play", "--network", NETWORK, str(path), timeout=300)
        for name in names:
            started = _started_at(self.container(name))
            wait_until(functools.partial(self.serving, name), 120, f"{name} SERVING")
            # An upper bound: the health client's own start (`podman exec python`) is in it.
            self.serving_seconds[name] = round(time.time() - started, 1)
            logged = _logged_serving_at(self.container(name))
            if logged is not None:
                self.logged_seconds[name] = round(logged - started, 2)
            self.aliases[name] = _ip(f"{name}-pod-0")


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubePlay]:
    _cleanup()
    play = KubePlay(tmp_path_factory.mktemp("kube"))
    keys = _secret_keys(play.objects)
    assert keys <= set(SECRET_VALUES), keys - set(SECRET_VALUES)
    secret = play.workdir / "secret.json"
    secret.write_text(
        json.dumps({k: base64.b64encode(SECRET_VALUES[k].encode()).decode() for k in keys})
    )
    try:
        podman("network", "create", "--label", f"{PREFIX}=1", NETWORK)
        podman("secret", "create", SECRET, str(secret))
        redis = ("redis-server", "--dir", "/tmp")
        _hardened_store(f"{PREFIX}-redis", "redis", REDIS_IMAGE, "999:999", *redis)
        _hardened_store(f"{PREFIX}-s3", "minio", MOTO_IMAGE, "10001:10001")
        for wave in WAVES:
            play.start_wave(wave)
        FIGURES.parent.mkdir(exist_ok=True)
        figures = {
            "start_to_serving_polled_seconds": play.serving_seconds,
            "start_to_serving_logged_seconds": play.logged_seconds,
        }
        FIGURES.write_text(json.dumps(figures, indent=2))
        yield play
    finally:
        _cleanup()


@pytest.mark.parametrize("name", [p for wave in WAVES for p in wave])
def test_the_pod_runs_under_its_security_context(kube: KubePlay, name: str) -> None:
    found: Hardening = hardening(kube.container(name))
    context = kube.main_container(name)["securityContext"]
    assert context["readOnlyRootFilesystem"] and context["capabilities"]["drop"] == ["ALL"]
    # /tmp is the pod's emptyDir here (a volume), not a tmpfs: everything else must hold.
    problems = [p for p in found.problems() if "/tmp is not a tmpfs" not in p]
    assert problems == []
    podman("exec", kube.container(name), "touch", "/tmp/writable")


@pytest.mark.parametrize("name", [p for wave in WAVES for p in wave])
def test_the_pod_is_ready_with_its_dependencies(kube: KubePlay, name: str) -> None:
    # `readiness` (gRPC) and /readyz (gateway) depend on what the process talks to, all present.
    wait_until(lambda: kube.serving(name, "readiness"), 60, f"{name} ready")
