"""A real Redis Cluster for tests: 3 masters and 3 replicas (redis-server --cluster-enabled)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from devstack.processes import ManagedProcess, wait_tcp

# The cluster bus listens on port + 10000, so a node's port must stay below 65536 - 10000.
MAX_NODE_PORT = 55535
# Node ports are drawn from here: the bus ports (+10000) stay below the kernel's ephemeral
# range (32768 and up), where any outgoing connection may take a port between check and bind.
NODE_PORTS = range(11000, 22000)
START_ATTEMPTS = 3
MASTERS = 3
# Short, so a killed master's replica is promoted within a few seconds.
NODE_TIMEOUT_MS = 2000
START_TIMEOUT_SECONDS = 60.0


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _node_ports(count: int) -> list[int]:
    """Free ports (at most MAX_NODE_PORT) whose bus port (+10000) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.choice(NODE_PORTS)
        assert port <= MAX_NODE_PORT
        if port not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
    return ports


@dataclass
class RedisClusterNodes:
    """The running nodes; `url` is one seed node (any node will do)."""

    processes: dict[int, ManagedProcess] = field(default_factory=dict)

    @property
    def ports(self) -> list[int]:
        return sorted(self.processes)

    @property
    def url(self) -> str:
        alive = [port for port, process in self.processes.items() if process.alive()]
        return f"redis://127.0.0.1:{alive[0]}/0"

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True)

    def masters(self) -> list[int]:
        """Ports of the live nodes that are masters now."""
        found = []
        for port, process in self.processes.items():
            if not process.alive():
                continue
            with self.client(port) as node:
                info = node.info("replication")
            if info.get("role") == "master":
                found.append(port)
        return sorted(found)

    def master_of(self, key: str) -> int:
        """The port of the master serving `key`'s slot now."""
        for port in self.masters():
            with self.client(port) as node:
                slot = int(node.execute_command("CLUSTER", "KEYSLOT", key))
                owner = node.execute_command("CLUSTER", "NODES")
            for line in str(owner).splitlines():
                parts = line.split()
                if "myself" in parts[2] and "master" in parts[2]:
                    for span in parts[8:]:
                        low, _, high = span.partition("-")
                        if low.isdigit() and int(low) <= slot <= int(high or low):
                            return port
        raise LookupError(f"no master serves {key!r}")

    def replica_of(self, master: int) -> int:
        """The port of the (first) replica of the master on `master`."""
        with self.client(master) as node:
            info = node.info("replication")
        replica = info.get("slave0")
        if not isinstance(replica, dict):
            raise LookupError(f"the master on {master} has no replica")
        return int(replica["port"])

    def wait_healthy(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Until every live node says cluster_state:ok and every master has a synced replica."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._healthy():
                return
            time.sleep(0.2)
        raise TimeoutError("the redis cluster did not become healthy")

    def _healthy(self) -> bool:
        try:
            for port, process in self.processes.items():
                if not process.alive():
                    continue
                with self.client(port) as node:
                    if "cluster_state:ok" not in str(node.execute_command("CLUSTER", "INFO")):
                        return False
                    info = node.info("replication")
                    if info.get("role") == "master" and int(info.get("connected_slaves", 0)) < 1:
                        return False
                    if info.get("role") == "slave" and info.get("master_link_status") != "up":
                        return False
        except redis.RedisError:
            return False
        return len(self.masters()) == MASTERS

    def wait_serving(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Until every live node says cluster_state:ok with all masters up (after a failover)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                states = []
                for port, process in self.processes.items():
                    if process.alive():
                        with self.client(port) as node:
                            states.append(str(node.execute_command("CLUSTER", "INFO")))
                if all("cluster_state:ok" in s for s in states) and len(self.masters()) == MASTERS:
                    return
            except redis.RedisError:
                pass
            time.sleep(0.2)
        raise TimeoutError("the redis cluster did not serve every slot again")

    def flush(self) -> None:
        for port in self.masters():
            with self.client(port) as node:
                node.flushall()

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def restart(self, port: int) -> None:
        """Start a stopped node again with its data and nodes.conf (it rejoins as a replica)."""
        process = self.processes[port]
        process.start()
        wait_tcp("127.0.0.1", port, 30, process)


def _node(port: int, run_dir: Path) -> ManagedProcess:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    data = run_dir / str(port)
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data),
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(data / "nodes.conf"),
        "--cluster-node-timeout",
        str(NODE_TIMEOUT_MS),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--protected-mode",
        "yes",
    ]
    return ManagedProcess(f"redis-cluster-{port}", argv, {"PATH": "/usr/bin:/bin"}, data / "log")


def start_redis_cluster(run_dir: Path) -> RedisClusterNodes:
    """Six nodes on free ports, joined by `redis-cli --cluster create` with a replica each.

    Another process may take a port between the check and the bind: then it starts again on
    other ports (a few times).
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return _start_once(run_dir / f"attempt-{attempt}")
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError):
            if attempt == START_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _start_once(run_dir: Path) -> RedisClusterNodes:
    cli = shutil.which("redis-cli")
    if cli is None:
        raise RuntimeError("redis-cli is not installed")
    nodes = RedisClusterNodes()
    try:
        for port in _node_ports(2 * MASTERS):
            nodes.processes[port] = process = _node(port, run_dir)
            process.start()
        for port, process in nodes.processes.items():
            wait_tcp("127.0.0.1", port, 30, process)
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in nodes.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_SECONDS,
        )
        nodes.wait_healthy()
    except BaseException:
        nodes.stop()
        raise
    return nodes
