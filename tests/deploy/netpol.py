"""A small evaluator of Kubernetes NetworkPolicies: which (source, destination, port) may talk."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from tests.deploy.manifests import Obj, labels_match


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace + labels) or an address outside the cluster (ip only)."""

    name: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    namespace_labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    ip: str | None = None
    ports: tuple[tuple[int, str], ...] = ()  # (port, protocol) it listens on

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None


def _peer_matches(peer: Obj, other: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        if other.is_pod or other.ip is None:
            # Pod IPs are not modelled: the manifests never use ipBlock for pods.
            return False
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
    if not other.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not labels_match(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or labels_match(peer["podSelector"], other.labels)


def _port_matches(rule_ports: list[Obj] | None, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != protocol:
            continue
        if "port" not in rule_port:
            return True
        start = int(rule_port["port"])  # named ports are not used in our policies
        if start <= port <= int(rule_port.get("endPort", start)):
            return True
    return False


def _allowed(
    policies: list[Obj], pod: Endpoint, other: Endpoint, port: int, protocol: str, direction: str
) -> bool:
    """Whether the policies selecting `pod` let `other` in (Ingress) or let `pod` out to it."""
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and labels_match(p["spec"]["podSelector"], pod.labels)
        and direction in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True  # not isolated in this direction
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            peer_ok = not peers or any(
                _peer_matches(peer, other, policy["metadata"]["namespace"]) for peer in peers
            )
            if peer_ok and _port_matches(rule.get("ports"), port, protocol):
                return True
    return False


def allowed_edges(policies: list[Obj], endpoints: list[Endpoint]) -> set[tuple[str, str, int, str]]:
    """Every (source, destination, port, protocol) the policies allow, over the listen ports.

    Traffic passes when the source's egress and the destination's ingress both allow it;
    endpoints outside the namespace (DNS, Prometheus, the internet) are not isolated themselves.
    """
    edges: set[tuple[str, str, int, str]] = set()
    for source in endpoints:
        for destination in endpoints:
            if source == destination:
                continue
            for port, protocol in destination.ports:
                out_ok = not source.is_pod or _allowed(
                    policies, source, destination, port, protocol, "Egress"
                )
                in_ok = not destination.is_pod or _allowed(
                    policies, destination, source, port, protocol, "Ingress"
                )
                if out_ok and in_ok:
                    edges.add((source.name, destination.name, port, protocol))
    return edges
