"""The optional otel component: every DataPilot process gets the OTLP endpoint and may reach it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.deploy.manifests import K8S, Obj, env_entries, of_kind, processes, renderer


def _render_with_component(tmp_path: Path, overlay: str) -> list[Obj]:
    """`overlay` plus components/otel, as an operator's own overlay would add it."""
    here = tmp_path / "with-otel"
    here.mkdir()
    (here / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S / "overlays" / overlay, here)],
                "components": [os.path.relpath(K8S / "components" / "otel", here)],
            }
        )
    )
    result = subprocess.run(
        [*renderer(), str(here)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_every_process_gets_the_otlp_endpoint(tmp_path: Path) -> None:
    objects = _render_with_component(tmp_path, "prod")
    found = processes(objects)
    assert set(found) == {"gateway", "ingest", "analysis", "worker", "llm"}
    for name, (_workload, container) in found.items():
        env = {e.name: e.value for e in env_entries(objects, container)}
        assert (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").startswith("http"), name
        assert env.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc", name
        assert "OTEL_SERVICE_NAME" not in env, f"{name}: each process names itself"


def test_the_collector_is_reachable_through_the_network_policies(tmp_path: Path) -> None:
    objects = _render_with_component(tmp_path, "prod")
    policy = next(
        p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["name"] == "allow-otlp-egress"
    )
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {4317, 4318} <= ports
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for name, (workload, _container) in processes(objects).items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{name} is not selected"
