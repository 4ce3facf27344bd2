"""Settings of analysis_svc: the Analyze server (`serve`) and the job worker, read at start."""

from __future__ import annotations

from pydantic import Field

from datapilot_runtime.backoff import BackoffPolicy
from datapilot_runtime.settings import (
    DEFAULT_MAX_UPLOAD_BYTES,
    JobStoreSettings,
    RetrySettings,
    ServiceSettings,
)


class _AnalysisBase(ServiceSettings):
    """What both roles read: the input source and the analysis child's bounds."""

    ingest_addr: str = "127.0.0.1:50051"
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, gt=0)
    simulated_slow_processing_seconds: float = Field(default=0, ge=0)
    analysis_work_dir: str = ""
    analysis_max_memory_mb: int = Field(default=1024, ge=64)
    # CPU seconds (every thread) one analysis may use; children are reused: counted per job.
    analysis_max_cpu_seconds: float = Field(default=60, gt=0)
    # Analysis children alive at once in this process; a job waits for a free one.
    analysis_max_children: int = Field(default=4, ge=1, le=64)


class AnalysisSettings(_AnalysisBase):
    """`python -m analysis_svc serve`: where the Analyze server listens and exports metrics."""

    grpc_listen_addr: str = "127.0.0.1:50052"
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    # Analyze calls running or waiting for a child; one more is refused `overloaded` (503).
    analyze_max_inflight: int = Field(default=8, ge=1, le=1024)


class WorkerSettings(_AnalysisBase, JobStoreSettings, RetrySettings):
    """`python -m analysis_svc worker`: the job store, llm_svc, and the worker's knobs."""

    worker_grpc_listen_addr: str = "127.0.0.1:50054"
    worker_metrics_port: int = Field(default=9104, ge=0, le=65535)
    llm_addr: str = "127.0.0.1:50053"
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    worker_shutdown_grace_seconds: float = Field(default=30, ge=0)
    job_max_attempts: int = Field(default=3, ge=1)
    job_lease_seconds: float = Field(default=10, gt=0)

    def outage_backoff(self) -> BackoffPolicy:
        """Backoff between retries of a job while a dependency is down."""
        return self.backoff(attempts=1_000_000)  # bounded by the job's deadline, not a count
