"""Starting, waiting for and stopping the real processes of a local stack."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

_LOGGER = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
_PR_SET_PDEATHSIG = 1
# Resolved once here: the child runs between fork and exec, where looking a symbol up is unsafe.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent(parent: int) -> None:
    """In the child before exec: SIGKILL it when the thread that forked it dies.

    Each child leads its own session (so a terminal's Ctrl-C reaches only the runner, which stops
    them in order); without this, a runner killed outright would leave every service running.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the runner died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ManagedProcess:
    """A child process of the stack, with its log file (or inherited stdout)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start it, from a thread that outlives the child (see `_die_with_parent`)."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        # util-linux's setpriv sets the parent-death signal and execs the command: no Python runs
        # between fork and exec, where a lock held by another thread of this (threaded) process
        # can deadlock the child before it ever execs. Without setpriv, prctl in a preexec_fn.
        wrapper = shutil.which("setpriv")
        argv = [wrapper, "--pdeathsig", "KILL", "--", *self.argv] if wrapper else self.argv
        preexec = None if wrapper else functools.partial(_die_with_parent, os.getpid())
        self.process = subprocess.Popen(
            argv,
            env=self.env,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            start_new_session=True,
            preexec_fn=preexec,
        )
        _LOGGER.info("started %s (pid %d)", self.name, self.process.pid)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; returns the exit code."""
        if self.process is None:
            return None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _LOGGER.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode


def python_process(
    name: str, module_args: list[str], env: dict[str, str], log: Path | None
) -> ManagedProcess:
    """A `python -m ...` child with the project's interpreter."""
    return ManagedProcess(name, [sys.executable, "-m", *module_args], env, log)


def redis_process(port: int, data_dir: Path, log: Path | None) -> ManagedProcess:
    """A private redis-server (AOF on) on 127.0.0.1:`port` keeping its data in `data_dir`."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed: install it (Debian/Ubuntu: `apt-get install "
            "redis-server`, macOS: `brew install redis`) or set REDIS_URL to a running Redis."
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--protected-mode",
        "yes",
    ]
    return ManagedProcess("redis", argv, dict(os.environ), log)


def wait_tcp(host: str, port: int, timeout: float, process: ManagedProcess | None = None) -> None:
    """Wait until something accepts connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited during start-up")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def wait_grpc_serving(
    address: str,
    timeout: float,
    process: ManagedProcess | None = None,
    credentials: grpc.ChannelCredentials | None = None,
) -> None:
    """Wait until the gRPC health service at `address` answers SERVING (over TLS with
    `credentials`)."""
    deadline = time.monotonic() + timeout
    channel = (
        grpc.insecure_channel(address)
        if credentials is None
        else grpc.secure_channel(address, credentials)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process is not None and not process.alive():
                raise RuntimeError(f"{process.name} exited during start-up")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.1)
    raise TimeoutError(f"{address} not SERVING after {timeout}s")


def wait_http_ok(url: str, timeout: float, process: ManagedProcess | None = None) -> None:
    """Wait until GET `url` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited during start-up")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def descendant_pids(pid: int) -> list[int]:
    """Pids of every live (non-zombie) process below `pid`, nearest first."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found: list[int] = []
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found += sorted(frontier)
    return found
