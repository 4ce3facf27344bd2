"""Settings of analysis_svc (the Analyze server and the job worker), read at start."""

from __future__ import annotations

from pydantic import Field

from datapilot_runtime.backoff import BackoffPolicy
from datapilot_runtime.settings import CommonSettings


class AnalysisSettings(CommonSettings):
    """Where to listen, the upstream services, and the worker's knobs."""

    metrics_port: int = Field(default=9102, ge=0, le=65535)
    grpc_listen_addr: str = "127.0.0.1:50052"
    worker_grpc_listen_addr: str = "127.0.0.1:50054"
    worker_metrics_port: int = Field(default=9104, ge=0, le=65535)
    ingest_addr: str = "127.0.0.1:50051"
    llm_addr: str = "127.0.0.1:50053"
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    worker_shutdown_grace_seconds: float = Field(default=30, ge=0)
    simulated_slow_processing_seconds: float = Field(default=0, ge=0)
    analysis_work_dir: str = ""
    analysis_max_memory_mb: int = Field(default=1024, ge=64)
    job_max_attempts: int = Field(default=3, ge=1)
    job_lease_seconds: float = Field(default=10, gt=0)

    def outage_backoff(self) -> BackoffPolicy:
        """Backoff between retries of a job while a dependency is down (runtime backoff formula)."""
        return BackoffPolicy(
            attempts=1_000_000,  # bounded by the job's deadline, not by a count
            initial_delay=self.retry_initial_delay,
            factor=self.retry_factor,
            max_delay=self.retry_max_delay,
        )
