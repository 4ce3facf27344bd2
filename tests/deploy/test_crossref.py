"""Cross-references between the manifests and the code: env, ports, probes, grace, selectors."""

from __future__ import annotations

import re

import pytest
from pydantic_settings import BaseSettings

from analysis_svc.settings import AnalysisSettings, WorkerSettings
from datapilot_runtime.grpc_host import READINESS_SERVICE
from datapilot_runtime.jobs.keys import CONSUMER_GROUP, stream_key
from gateway.settings import GatewaySettings
from ingest_svc.settings import IngestSettings
from llm_svc.settings import LlmSettings
from tests.deploy.manifests import (
    OVERLAYS,
    PROCESSES,
    ROOT,
    WORKLOAD_KINDS,
    Obj,
    container_port,
    containers,
    env_entries,
    env_values,
    host_of,
    labels_match,
    named,
    named_port,
    of_kind,
    pod_spec,
    port_of,
    processes,
    quantity_bytes,
    render,
)

SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "ingest": IngestSettings,
    "analysis": AnalysisSettings,
    "llm": LlmSettings,
    "worker": WorkerSettings,
}
GRPC_PROCESSES = ("ingest", "analysis", "llm", "worker")

# Variables the manifests may set before a settings class declares them (work landing in
# parallel). A name a class declares is required anyway, so an entry here only relaxes the
# "given but not read" check for that process; drop it once the class has the field.
DECLARED_AHEAD: dict[str, set[str]] = {
    "DATAPILOT_API_KEYS": {"gateway"},
    "INTERNAL_AUTH_TOKEN": set(PROCESSES),
}
# Fields a class declares that a process deliberately does not get.
NOT_SUPPLIED: dict[str, dict[str, str]] = {
    "gateway": {"REDIS_URL": "the gateway never talks to Redis; its pods get no Redis credentials"},
}
SECRET_NAMES = {
    "OPENROUTER_API_KEY",
    "DATAPILOT_API_KEYS",
    "INTERNAL_AUTH_TOKEN",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "REDIS_URL",  # may carry the Redis password (prod: rediss://:password@host)
}
# The Secret's name, with the content hash a secretGenerator appends (dev).
SECRET_SOURCE = re.compile(r"^secret:datapilot-secrets(-[a-z0-9]{10})?$")
# Where each gRPC process exports metrics: the variable, and the port the manifests expect.
METRICS_PORTS = {
    "ingest": ("METRICS_PORT", 9101),
    "analysis": ("METRICS_PORT", 9102),
    "llm": ("METRICS_PORT", 9103),
    "worker": ("WORKER_METRICS_PORT", 9104),
}
# Memory a Python process with pandas loaded needs beside its analysis children.
PROCESS_OVERHEAD = 256 * 2**20


def settings_env_names(process: str) -> set[str]:
    """The environment variables a process reads: its settings class's fields, upper-cased."""
    return {name.upper() for name in SETTINGS[process].model_fields}


def default_of(process: str, env_name: str) -> object:
    return SETTINGS[process].model_fields[env_name.lower()].default


def value(objects: list[Obj], container: Obj, process: str, env_name: str) -> str:
    """What the process sees for a variable: the manifest's value, else the class default."""
    values = env_values(objects, container)
    found = values.get(env_name)
    return str(default_of(process, env_name)) if found is None else found


def listen_address(objects: list[Obj], container: Obj, process: str) -> str:
    if process == "gateway":
        host = value(objects, container, process, "GATEWAY_HOST")
        return f"{host}:{value(objects, container, process, 'GATEWAY_PORT')}"
    name = "WORKER_GRPC_LISTEN_ADDR" if process == "worker" else "GRPC_LISTEN_ADDR"
    return value(objects, container, process, name)


def default_listen_port(process: str) -> int:
    if process == "gateway":
        return int(str(default_of(process, "GATEWAY_PORT")))
    name = "WORKER_GRPC_LISTEN_ADDR" if process == "worker" else "GRPC_LISTEN_ADDR"
    return port_of(str(default_of(process, name)))


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> list[Obj]:
    return render(f"overlays/{request.param}")


def test_every_process_is_deployed(objects: list[Obj]) -> None:
    assert set(processes(objects)) == set(PROCESSES)


@pytest.mark.parametrize("process", PROCESSES)
def test_env_matches_settings_class(objects: list[Obj], process: str) -> None:
    """Every variable the process reads is set, exactly once, and nothing it doesn't read."""
    _, container = processes(objects)[process]
    entries = env_entries(objects, container)
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"{process}: set more than once: {duplicates}"

    reads = settings_env_names(process)
    skipped = set(NOT_SUPPLIED.get(process, {}))
    ahead = {name for name, who in DECLARED_AHEAD.items() if process in who}
    missing = sorted(reads - skipped - set(names))
    assert not missing, f"{process} reads {missing}: add them to its ConfigMap or the Secret"
    unread = sorted(set(names) - reads - ahead)
    assert not unread, f"{process} is given {unread}, which its settings class does not read"
    assert not skipped & set(names), f"{process} must not get {skipped & set(names)}"


@pytest.mark.parametrize("process", PROCESSES)
def test_secrets_come_from_the_secret(objects: list[Obj], process: str) -> None:
    _, container = processes(objects)[process]
    for entry in env_entries(objects, container):
        if entry.name in SECRET_NAMES:
            assert SECRET_SOURCE.match(entry.source), f"{process}: {entry}"
            assert entry.secret_key == entry.name
        else:
            assert entry.source.startswith("configmap:"), (
                f"{process}: {entry.name} must come from a ConfigMap, not {entry.source}"
            )


def _secret_refs(objects: list[Obj]) -> set[str]:
    keys: set[str] = set()
    for _, container in processes(objects).values():
        keys |= {
            e.secret_key
            for e in env_entries(objects, container)
            if SECRET_SOURCE.match(e.source) and e.secret_key
        }
    return keys


def test_dev_secret_has_every_referenced_key_and_no_other() -> None:
    objects = render("overlays/dev")
    secret = next(
        s
        for s in of_kind(objects, "Secret")
        if s["metadata"]["name"].startswith("datapilot-secrets")
    )
    assert set(secret["data"]) == _secret_refs(objects)
    assert _secret_refs(render("overlays/prod")) == _secret_refs(objects)


def test_prod_documents_every_secret_key() -> None:
    """overlays/prod expects the Secret out of band: its header lists every key."""
    text = (ROOT / "deploy/k8s/overlays/prod/kustomization.yaml").read_text()
    missing = sorted(k for k in _secret_refs(render("overlays/prod")) if k not in text)
    assert not missing, f"overlays/prod/kustomization.yaml does not document {missing}"


def test_every_configmap_is_used(objects: list[Obj]) -> None:
    used = {
        ref["configMapRef"]["name"]
        for workload in objects
        if workload["kind"] in WORKLOAD_KINDS
        for container in containers(workload)
        for ref in container.get("envFrom", [])
    }
    names = {c["metadata"]["name"] for c in of_kind(objects, "ConfigMap")}
    assert names == used


@pytest.mark.parametrize("process", PROCESSES)
def test_probes_and_ports_are_the_listen_ports(objects: list[Obj], process: str) -> None:
    _, container = processes(objects)[process]
    address = listen_address(objects, container, process)
    assert host_of(address) == "0.0.0.0", f"{process} must listen on all interfaces, not {address}"
    port = port_of(address)
    assert port == default_listen_port(process), "the manifests keep the code's default ports"
    port_name = "http" if process == "gateway" else "grpc"
    assert named_port(container, port_name) == port
    for probe_kind in ("readinessProbe", "livenessProbe"):
        probe = container[probe_kind]
        if process == "gateway":
            assert container_port(container, probe["httpGet"]["port"]) == port
            path = "/readyz" if probe_kind == "readinessProbe" else "/healthz"
            assert probe["httpGet"]["path"] == path
        else:
            # Native gRPC probes: grpc.port must be a number, the port the server binds.
            assert probe["grpc"]["port"] == port, f"{process} {probe_kind}"
    if process in METRICS_PORTS:
        variable, expected = METRICS_PORTS[process]
        metrics = int(value(objects, container, process, variable))
        assert metrics == expected == named_port(container, "metrics"), process
        assert value(objects, container, process, "METRICS_HOST") == "0.0.0.0", process


def test_grpc_liveness_is_process_only(objects: list[Obj]) -> None:
    """Readiness asks the "readiness" service (dependencies); liveness the overall status."""
    for process in GRPC_PROCESSES:
        _, container = processes(objects)[process]
        assert container["readinessProbe"]["grpc"].get("service") == READINESS_SERVICE
        assert container["livenessProbe"]["grpc"].get("service", "") == ""


def _prestop_seconds(container: Obj) -> int:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop.get("exec", {}).get("command", [])
    if command[:1] == ["sleep"]:
        return int(command[1])
    return 0


@pytest.mark.parametrize("process", PROCESSES)
def test_termination_grace_exceeds_drain_and_prestop(objects: list[Obj], process: str) -> None:
    workload, container = processes(objects)[process]
    pre_stop = _prestop_seconds(container)
    assert pre_stop > 0, f"{process}: a preStop delay lets endpoints drop the pod first"
    drain = float(value(objects, container, process, "GRPC_SHUTDOWN_GRACE_SECONDS"))
    if process == "worker":
        # Jobs drain first, then the health server stops with its own grace.
        drain += float(value(objects, container, process, "WORKER_SHUTDOWN_GRACE_SECONDS"))
    grace = int(pod_spec(workload)["terminationGracePeriodSeconds"])
    assert grace > drain + pre_stop, f"{process}: {grace} s <= drain {drain} + preStop {pre_stop}"


def test_memory_limits_fit_the_analysis_children(objects: list[Obj]) -> None:
    for process in ("worker", "analysis"):
        _, container = processes(objects)[process]
        child = int(value(objects, container, process, "ANALYSIS_MAX_MEMORY_MB")) * 2**20
        # ANALYSIS_MAX_CHILDREN bounds the live children (a job waits for a free one).
        children = int(value(objects, container, process, "ANALYSIS_MAX_CHILDREN"))
        if process == "worker":  # ... and the worker's jobs at once should not wait for one
            assert int(value(objects, container, process, "WORKER_CONCURRENCY")) <= children
        limit = quantity_bytes(container["resources"]["limits"]["memory"])
        assert limit >= children * child + PROCESS_OVERHEAD, f"{process}: limit {limit} too small"


def test_workloads_are_hardened(objects: list[Obj]) -> None:
    for workload in [o for o in objects if o["kind"] in WORKLOAD_KINDS]:
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in containers(workload):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert not security["capabilities"].get("add"), name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name} {kind}"


def test_one_image_runs_every_process(objects: list[Obj]) -> None:
    images = {container["image"] for _, container in processes(objects).values()}
    assert len(images) == 1, images
    (image,) = images
    assert re.search(r":[\w.-]+(@sha256:[0-9a-f]{64})?$", image) and not image.endswith(":latest")


def test_service_selectors_match_workloads(objects: list[Obj]) -> None:
    workloads = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
    for service in of_kind(objects, "Service"):
        selector = {"matchLabels": service["spec"]["selector"]}
        matched = [
            w
            for w in workloads
            if labels_match(selector, w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matched) == 1, (
            f"Service {service['metadata']['name']} matches {len(matched)} workloads"
        )
        (workload,) = matched
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert any(container_port(c, target) for c in containers(workload)), (
                f"Service {service['metadata']['name']}: no container port {target}"
            )


def test_pdbs_and_autoscalers_target_workloads(objects: list[Obj]) -> None:
    workloads = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        matched = [
            w
            for w in workloads
            if labels_match(pdb["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matched) == 1, f"PDB {pdb['metadata']['name']}"
    scaled = [*of_kind(objects, "HorizontalPodAutoscaler"), *of_kind(objects, "ScaledObject")]
    for scaler in scaled:
        target = named(objects, "Deployment", scaler["spec"]["scaleTargetRef"]["name"])
        # An autoscaled Deployment leaves `replicas` to its autoscaler (no fight on apply).
        assert "replicas" not in target["spec"], f"{target['metadata']['name']} is autoscaled"
    covered = {
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for pdb in of_kind(objects, "PodDisruptionBudget")
    }
    assert set(PROCESSES) <= covered


def test_grpc_clients_use_headless_services(objects: list[Obj]) -> None:
    """The gRPC client addresses are dns:/// names of headless Services on the servers' ports."""
    servers = processes(objects)
    clients = (
        ("gateway", ["INGEST_ADDR", "ANALYSIS_ADDR"]),
        ("analysis", ["INGEST_ADDR"]),  # `serve` calls no llm_svc
        ("worker", ["INGEST_ADDR", "LLM_ADDR"]),
    )
    for process, variables in clients:
        _, container = servers[process]
        for variable in variables:
            address = value(objects, container, process, variable)
            assert address.startswith("dns:///"), f"{process} {variable}={address}"
            target = variable.removesuffix("_ADDR").lower()
            service = named(objects, "Service", host_of(address))
            assert service["spec"].get("clusterIP") == "None", f"{host_of(address)} is not headless"
            assert service["spec"]["selector"]["app.kubernetes.io/name"] == target
            _, server = servers[target]
            assert port_of(address) == port_of(listen_address(objects, server, target))


def test_keda_follows_the_job_stream() -> None:
    objects = render("overlays/prod")
    scaled = named(objects, "ScaledObject", "worker")
    _, worker = processes(objects)["worker"]
    concurrency = value(objects, worker, "worker", "WORKER_CONCURRENCY")
    shards = int(value(objects, worker, "worker", "JOB_STREAM_SHARDS"))
    ingest = processes(objects)["ingest"][1]
    assert int(value(objects, ingest, "ingest", "JOB_STREAM_SHARDS")) == shards
    triggers = {t["name"]: t for t in scaled["spec"]["triggers"]}
    # One pair of triggers per stream shard, each aiming at its share of a worker's slots.
    assert set(triggers) == {
        f"{kind}-{n}" for kind in ("pending", "backlog") for n in range(shards)
    }
    target = str(max(1, int(concurrency) // shards))
    for name, trigger in triggers.items():
        assert trigger["type"] == "redis-streams"
        assert trigger["metadata"]["stream"] == stream_key(int(name.rsplit("-", 1)[1]))
        assert trigger["authenticationRef"]["name"] == "datapilot-keda-redis"
    for n in range(shards):
        pending, backlog = triggers[f"pending-{n}"], triggers[f"backlog-{n}"]
        assert pending["metadata"]["consumerGroup"] == CONSUMER_GROUP
        assert pending["metadata"]["pendingEntriesCount"] == target
        # Without a consumer group KEDA measures XLEN (queued + in flight: done entries go).
        assert "consumerGroup" not in backlog["metadata"]
        assert backlog["metadata"]["streamLength"] == target
    assert scaled["spec"]["minReplicaCount"] >= 1, "a worker must always reclaim and cancel"
    named(objects, "TriggerAuthentication", "datapilot-keda-redis")


def test_keda_component_targets_dev_redis() -> None:
    """The component's default address is the Redis Service of overlays/dev."""
    text = (ROOT / "deploy/k8s/components/keda/scaledobject.yaml").read_text()
    redis = named(render("overlays/dev"), "Service", "redis")
    assert f"address: {redis['metadata']['name']}:{redis['spec']['ports'][0]['port']}" in text


def _metric_names_in_code() -> set[str]:
    names: set[str] = set()
    for package in ("datapilot_runtime", "gateway", "ingest_svc", "analysis_svc", "llm_svc"):
        for source in (ROOT / package).rglob("*.py"):
            names |= set(re.findall(r"[\"'](datapilot_[a-z0-9_]+)[\"']", source.read_text()))
    exposed = set(names)
    for name in names:
        exposed |= {
            f"{name}_total",
            f"{name}_bucket",
            f"{name}_sum",
            f"{name}_count",
            f"{name}_created",
        }
    return exposed


def test_alerts_use_metrics_the_code_exports() -> None:
    rule = named(render("overlays/prod"), "PrometheusRule", "datapilot")
    alerts = {
        r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r
    }
    for required in (
        "DataPilotLlmCircuitOpen",
        "DataPilotJobFailureRateHigh",
        "DataPilotQueueLag",
        "DataPilotNoWorkerConsuming",
    ):
        assert required in alerts
    known = _metric_names_in_code()
    for alert, expr in alerts.items():
        used = set(re.findall(r"\b(datapilot_[a-z0-9_]+)", expr))
        assert used <= known, f"{alert} uses metrics no code exports: {sorted(used - known)}"
        assert expr.count("(") == expr.count(")"), f"{alert}: unbalanced parentheses"


def test_scraped_ports_are_declared() -> None:
    """The PodMonitor's ports exist by name on the processes (metrics, or the gateway's http).

    Only overlays/prod has a PodMonitor (it needs the Prometheus operator); dev has none.
    """
    objects = render("overlays/prod")
    monitors = of_kind(objects, "PodMonitor")
    assert len(monitors) == 1, "overlays/prod scrapes the processes with one PodMonitor"
    for monitor in monitors:
        ports = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
        for process, (_, container) in processes(objects).items():
            names = {p["name"] for p in container["ports"]}
            assert names & ports, f"{process} exposes none of {ports}"
