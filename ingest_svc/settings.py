"""Settings of ingest_svc (and of its blob store), read from the environment at start."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from datapilot_runtime.backoff import BackoffPolicy
from datapilot_runtime.settings import (
    DEFAULT_MAX_UPLOAD_BYTES,
    JobStoreSettings,
    RetrySettings,
    ServiceSettings,
)


class BlobSettings(BaseSettings):
    """Which blob store to use: the local filesystem (default) or S3/MinIO."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    blob_backend: str = Field(default="", pattern=r"^(|fs|s3)$")
    blob_fs_root: str = ".run/blobs"
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "datapilot"
    s3_region: str = "us-east-1"
    s3_secure: bool = False
    # The bucket's AbortIncompleteMultipartUpload rule, set at start if it has no lifecycle
    # rules (0 = never touch the bucket's lifecycle).
    s3_abort_incomplete_uploads_days: int = Field(default=1, ge=0)

    def backend(self) -> str:
        """`fs` or `s3`; an unset BLOB_BACKEND means S3 when S3_ENDPOINT is set."""
        if self.blob_backend:
            return self.blob_backend
        return "s3" if self.s3_endpoint else "fs"


class IngestSettings(ServiceSettings, JobStoreSettings, RetrySettings, BlobSettings):
    """The job store, the blob store and its retries, limits, where to listen."""

    metrics_port: int = Field(default=9101, ge=0, le=65535)
    grpc_listen_addr: str = "127.0.0.1:50051"
    job_timeout_seconds: float = Field(default=600, gt=0)
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, gt=0)
    blob_retry_attempts: int = Field(default=3, ge=1)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    rate_limit_per_minute: int = Field(default=600, ge=0)
    # The blob janitor (ingest_svc/blob_janitor.py): one pass per interval across all ingest
    # pods (0 = off); a blob younger than the minimum age is never deleted, so it must be longer
    # than any upload takes (its blob is stored before its record, and S3 dates a multipart
    # object by when its upload began); at most a batch per pass.
    blob_janitor_interval_seconds: float = Field(default=300, ge=0)
    blob_janitor_min_age_seconds: float = Field(default=3600, ge=600)
    blob_janitor_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # Replicas that must acknowledge an upload's (and a cancel's) writes before it is answered;
    # -1: 1 on a cluster (REDIS_CLUSTER), 0 standalone.
    redis_wait_replicas: int = Field(default=-1, ge=-1)

    # Bytes of uploads in flight at once (ten 20 MiB uploads); past it uploads get 503
    # `overloaded`. The k8s manifest sizes the /tmp emptyDir from it.
    ingest_spool_max_bytes: int = Field(default=200 * 1024 * 1024, gt=0)

    def wait_replicas(self) -> int:
        """REDIS_WAIT_REPLICAS, or its default for the kind of Redis."""
        if self.redis_wait_replicas >= 0:
            return self.redis_wait_replicas
        return 1 if self.redis_cluster else 0

    def blob_backoff(self) -> BackoffPolicy:
        """The retry policy of blob-store operations."""
        return self.backoff(self.blob_retry_attempts)
