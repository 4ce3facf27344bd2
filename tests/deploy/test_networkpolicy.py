"""NetworkPolicies allow exactly the calls the code makes, in every overlay."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import WORKLOAD_KINDS, Obj, of_kind, render
from tests.deploy.netpol import Endpoint, allowed_edges

TCP, UDP = "TCP", "UDP"
DNS = {(53, UDP), (53, TCP)}
OUTSIDE_NS = {"kubernetes.io/metadata.name": "ingress-nginx"}

# The calls the code makes (README / DESIGN), besides DNS, which every pod gets.
CALLS = {
    ("outside", "gateway", 8080),
    ("gateway", "ingest", 50051),
    ("gateway", "analysis", 50052),
    ("analysis", "ingest", 50051),
    ("worker", "ingest", 50051),
    ("worker", "llm", 50053),
    ("prometheus", "gateway", 8080),
    ("prometheus", "ingest", 9101),
    ("prometheus", "analysis", 9102),
    ("prometheus", "llm", 9103),
    ("prometheus", "worker", 9104),
    ("llm", "internet", 443),
}
STORES = {
    "dev": {
        ("ingest", "redis", 6379),
        ("worker", "redis", 6379),
        ("llm", "redis", 6379),
        ("ingest", "minio", 9000),
    },
    "prod": {
        ("ingest", "redis-external", 6379),
        ("worker", "redis-external", 6379),
        ("llm", "redis-external", 6379),
        # S3's regional endpoint is a public address: the "internet" rule of ingest.
        ("ingest", "internet", 443),
    },
}


def _endpoints(objects: list[Obj]) -> list[Endpoint]:
    namespace = next(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace")
    ns_labels = {"kubernetes.io/metadata.name": namespace}
    endpoints = []
    for workload in [o for o in objects if o["kind"] in WORKLOAD_KINDS]:
        template = workload["spec"]["template"]
        ports = tuple(
            (int(p["containerPort"]), p.get("protocol", TCP))
            for c in template["spec"]["containers"]
            for p in c.get("ports", [])
        )
        endpoints.append(
            Endpoint(
                name=template["metadata"]["labels"]["app.kubernetes.io/name"],
                namespace=namespace,
                labels=template["metadata"]["labels"],
                namespace_labels=ns_labels,
                ports=ports,
            )
        )
    web = ((443, TCP), (80, TCP))
    endpoints += [
        Endpoint(
            "kube-dns",
            "kube-system",
            {"k8s-app": "kube-dns"},
            {"kubernetes.io/metadata.name": "kube-system"},
            ports=tuple(DNS),
        ),
        Endpoint(
            "prometheus",
            "monitoring",
            {"app.kubernetes.io/name": "prometheus"},
            {"kubernetes.io/metadata.name": "monitoring"},
        ),
        # Another pod in another namespace (an ingress controller) and a client on the internet.
        Endpoint(
            "outside", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}, OUTSIDE_NS
        ),
        Endpoint("outside-ip", ip="198.51.100.7"),
        Endpoint("internet", ip="203.0.113.10", ports=web),
        # Private addresses: the prod Redis subnet, and something else in the VPC.
        Endpoint("redis-external", ip="10.20.0.10", ports=((6379, TCP), *web)),
        Endpoint("vpc-other", ip="10.99.0.5", ports=((6379, TCP), *web)),
        Endpoint("metadata-api", ip="169.254.169.254", ports=web),
        # A pod of another application in the same namespace must not reach DataPilot.
        Endpoint("stranger", namespace, {"app.kubernetes.io/name": "stranger"}, ns_labels),
    ]
    return endpoints


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_network_policies_allow_exactly_the_calls(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    endpoints = _endpoints(objects)
    pods = [
        e.name for e in endpoints if e.namespace == endpoints[0].namespace and e.name != "stranger"
    ]
    edges = allowed_edges(of_kind(objects, "NetworkPolicy"), endpoints)

    expected = {(s, d, p, TCP) for s, d, p in CALLS | STORES[overlay]}
    # The gateway is the edge: anything outside the namespace may reach its port 8080.
    ours = {e.name for e in endpoints if e.namespace == endpoints[0].namespace}
    expected |= {(e.name, "gateway", 8080, TCP) for e in endpoints if e.name not in ours}
    expected |= {
        (pod, "kube-dns", port, proto) for pod in [*pods, "stranger"] for port, proto in DNS
    }
    # Endpoints outside the namespace are not isolated here: their own traffic is not ours to
    # judge (e.g. the internet "reaching" the DNS service). Keep only edges touching our pods.
    edges = {e for e in edges if e[0] in ours or e[1] in ours}

    assert sorted(edges - expected) == [], "allowed but not a call the code makes"
    assert sorted(expected - edges) == [], "a call the code makes is blocked"


def test_everything_is_denied_by_default() -> None:
    for overlay in ("dev", "prod"):
        policies = of_kind(render(f"overlays/{overlay}"), "NetworkPolicy")
        deny = [p for p in policies if p["metadata"]["name"] == "default-deny-all"]
        assert deny and deny[0]["spec"]["podSelector"] == {}
        assert set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_evaluator_notices_a_missing_policy() -> None:
    """A check of the checker: dropping the worker's policy cuts its calls."""
    objects = render("overlays/dev")
    policies = [p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["name"] != "worker"]
    edges = allowed_edges(policies, _endpoints(objects))
    assert ("worker", "ingest", 50051, TCP) not in edges
    assert ("gateway", "ingest", 50051, TCP) in edges
