"""Issue 15's manifests: the optional mutual-TLS component, reflection off in prod, /tmp sized
from the ingest spool."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import (
    K8S,
    Obj,
    env_values,
    pod_spec,
    port_of,
    processes,
    quantity_bytes,
    render,
    renderer,
)

GRPC_SERVERS = ("ingest", "analysis", "llm", "worker")
MOUNT = "/etc/datapilot/tls"


@pytest.fixture(scope="module")
def with_tls(tmp_path_factory: pytest.TempPathFactory) -> list[Obj]:
    """overlays/dev with components/grpc-tls, as an overlay that opts in would render it."""
    folder = tmp_path_factory.mktemp("tls-overlay")
    k8s = os.path.relpath(K8S, folder)
    (folder / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {k8s}/overlays/dev\ncomponents:\n  - {k8s}/components/grpc-tls\n"
    )
    result = subprocess.run(
        [*renderer(), str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_every_process_mounts_the_certificate_and_uses_it(with_tls: list[Obj]) -> None:
    found = processes(with_tls)
    assert set(found) == {"gateway", *GRPC_SERVERS}
    for process, (workload, container) in found.items():
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        assert volumes["grpc-tls"]["secret"]["secretName"] == "datapilot-grpc-tls", process
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["grpc-tls"]["mountPath"] == MOUNT and mounts["grpc-tls"]["readOnly"]
        env = env_values(with_tls, container)
        assert env["GRPC_TLS_CERT_FILE"] == f"{MOUNT}/tls.crt", process
        assert env["GRPC_TLS_KEY_FILE"] == f"{MOUNT}/tls.key", process
        assert env["GRPC_TLS_CA_FILE"] == f"{MOUNT}/ca.crt", process  # mutual: servers verify


def test_tls_probes_go_through_the_tls_probe_on_the_listen_port(with_tls: list[Obj]) -> None:
    for process, (_workload, container) in processes(with_tls).items():
        if process not in GRPC_SERVERS:
            continue
        env = env_values(with_tls, container)
        listen = env.get("WORKER_GRPC_LISTEN_ADDR") or env["GRPC_LISTEN_ADDR"]
        assert listen is not None
        port = str(port_of(listen))
        for probe, service in (("readinessProbe", ["readiness"]), ("livenessProbe", [])):
            command: list[Any] = container[probe]["exec"]["command"]
            assert command == ["python", "-m", "datapilot_runtime.grpc_probe", port, *service]
            assert "grpc" not in container[probe], f"{process}: a plaintext gRPC probe is left"


def test_base_is_plaintext_and_reflects_prod_does_not() -> None:
    for overlay, reflection in (("dev", "true"), ("prod", "false")):
        objects = render(f"overlays/{overlay}")
        for process, (_workload, container) in processes(objects).items():
            env = env_values(objects, container)
            assert env["GRPC_TLS_CERT_FILE"] == "" and env["GRPC_TLS_CA_FILE"] == "", process
            if process in GRPC_SERVERS:
                assert env["GRPC_REFLECTION"] == reflection, (overlay, process)


def test_the_ingest_tmp_volume_holds_its_spool() -> None:
    objects = render("overlays/prod")
    workload, container = processes(objects)["ingest"]
    env = env_values(objects, container)
    spool = int(env["INGEST_SPOOL_MAX_BYTES"] or 0)
    upload = int(env["MAX_UPLOAD_BYTES"] or 0)
    assert spool >= 4 * upload, "the spool admits at least four largest uploads at once"
    tmp = {v["name"]: v for v in pod_spec(workload)["volumes"]}["tmp"]
    assert quantity_bytes(tmp["emptyDir"]["sizeLimit"]) >= spool + 32 * 1024 * 1024
