"""The whole system as real processes: Redis (unless given), the services, worker and gateway."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from datapilot_runtime.grpc_host import channel_credentials
from datapilot_runtime.settings import GrpcTlsSettings
from devstack.processes import (
    ManagedProcess,
    free_port,
    python_process,
    redis_process,
    wait_grpc_serving,
    wait_http_ok,
    wait_tcp,
)

_LOGGER = logging.getLogger(__name__)
START_TIMEOUT_SECONDS = 60.0
SUPERVISE_INTERVAL_SECONDS = 0.1
RESTART_BASE_DELAY_SECONDS = 0.25
RESTART_MAX_DELAY_SECONDS = 30.0
STABLE_AFTER_SECONDS = 60.0


@dataclass
class RestartState:
    """Restart bookkeeping of one process: consecutive restarts and the next due time."""

    count: int = 0
    due_at: float | None = None
    started_at: float = 0.0


@dataclass
class StackConfig:
    """What to start and where; ports of 0 are chosen free at start."""

    run_dir: Path
    redis_url: str = ""
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    logs_to_files: bool = True
    workers: int = 1


@dataclass
class Stack:
    """A started system; `stop()` stops every process it started (gateway first)."""

    config: StackConfig
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    redis_url: str = ""
    gateway_url: str = ""
    addresses: dict[str, str] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, RestartState] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)
    _restarting: threading.Lock = field(default_factory=threading.Lock)
    _supervisor: threading.Thread | None = None

    def _log(self, name: str) -> Path | None:
        return self.config.run_dir / "logs" / f"{name}.log" if self.config.logs_to_files else None

    def base_env(self) -> dict[str, str]:
        env = {**os.environ, **self.config.env}
        env["REDIS_URL"] = self.redis_url
        env["INGEST_ADDR"] = self.addresses["ingest"]
        env["LLM_ADDR"] = self.addresses["llm"]
        env["ANALYSIS_ADDR"] = self.addresses["analysis"]
        env.setdefault("BLOB_FS_ROOT", str(self.config.run_dir / "blobs"))
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def start(self) -> Stack:
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        self.redis_url = self.config.redis_url
        if not self.redis_url:
            port = free_port()
            redis = redis_process(port, self.config.run_dir / "redis", self._log("redis"))
            self.processes["redis"] = redis
            redis.start()
            wait_tcp("127.0.0.1", port, START_TIMEOUT_SECONDS, redis)
            self.redis_url = f"redis://127.0.0.1:{port}/0"
        workers = [f"worker-{n}" for n in range(1, self.config.workers + 1)]
        for name in ("ingest", "llm", "analysis", *workers):
            self.addresses[name] = f"127.0.0.1:{free_port()}"
            self.metrics_ports[name] = free_port()
        env = self.base_env()
        services = (
            ("ingest", ["ingest_svc"]),
            ("llm", ["llm_svc"]),
            ("analysis", ["analysis_svc", "serve"]),
        )
        specs = [
            (
                name,
                module,
                {
                    "GRPC_LISTEN_ADDR": self.addresses[name],
                    "METRICS_PORT": str(self.metrics_ports[name]),
                },
            )
            for name, module in services
        ]
        specs += [
            (
                name,
                ["analysis_svc", "worker"],
                {
                    "WORKER_GRPC_LISTEN_ADDR": self.addresses[name],
                    "WORKER_METRICS_PORT": str(self.metrics_ports[name]),
                },
            )
            for name in workers
        ]
        for name, args, extra in specs:
            process = python_process(name, args, {**env, **extra}, self._log(name))
            self.processes[name] = process
            process.start()
        # The services speak TLS when the environment says so: the health checks do too.
        credentials = channel_credentials(
            GrpcTlsSettings(
                grpc_tls_cert_file=env.get("GRPC_TLS_CERT_FILE", ""),
                grpc_tls_key_file=env.get("GRPC_TLS_KEY_FILE", ""),
                grpc_tls_ca_file=env.get("GRPC_TLS_CA_FILE", ""),
            )
        )
        for name, _args, _extra in specs:
            wait_grpc_serving(
                self.addresses[name], START_TIMEOUT_SECONDS, self.processes[name], credentials
            )
        port = self.config.gateway_port or free_port()
        gateway = python_process(
            "gateway",
            ["gateway"],
            {**env, "GATEWAY_HOST": self.config.gateway_host, "GATEWAY_PORT": str(port)},
            self._log("gateway"),
        )
        self.processes["gateway"] = gateway
        gateway.start()
        self.gateway_url = f"http://{self.config.gateway_host}:{port}"
        wait_http_ok(self.gateway_url + "/readyz", START_TIMEOUT_SECONDS, gateway)
        return self

    def supervise(self) -> None:
        """Restart any process that dies, with exponential backoff (like a supervisor)."""
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.wait(SUPERVISE_INTERVAL_SECONDS):
            with self._restarting:
                if not self._stopping.is_set():
                    self._restart_dead(time.monotonic())
        # A child's parent-death signal fires when the thread that forked it ends, so this thread
        # lives until `stop()` has stopped the processes it restarted.
        self._released.wait()

    def _restart_dead(self, now: float) -> None:
        for name, process in list(self.processes.items()):
            state = self.restarts.setdefault(name, RestartState(started_at=now))
            if process.alive():
                if state.count and now - state.started_at > STABLE_AFTER_SECONDS:
                    state.count = 0
                continue
            if state.due_at is None:
                code = process.process.returncode if process.process else None
                delay = min(RESTART_MAX_DELAY_SECONDS, RESTART_BASE_DELAY_SECONDS * 2**state.count)
                state.count += 1
                state.due_at = now + delay
                _LOGGER.warning(
                    "%s exited (code %s); restarting in %.2fs (restart %d)",
                    name,
                    code,
                    delay,
                    state.count,
                )
            elif now >= state.due_at:
                process.start()
                state.due_at = None
                state.started_at = now

    def stop(self) -> dict[str, int | None]:
        """SIGTERM each process, in reverse start order; returns their exit codes."""
        self._stopping.set()
        with self._restarting:  # no restart is under way, and none will start
            codes: dict[str, int | None] = {}
            for name in reversed(list(self.processes)):
                codes[name] = self.processes[name].stop()
        self._released.set()
        if self._supervisor is not None:
            self._supervisor.join()
        return codes

    def dead(self) -> list[str]:
        """Names of started processes that are no longer running."""
        return [name for name, p in self.processes.items() if p.process and not p.alive()]
