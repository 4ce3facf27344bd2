"""Settings every process shares; each service extends them with its own class."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from datapilot_runtime.backoff import BackoffPolicy

MIB = 1024 * 1024


class CommonSettings(BaseSettings):
    """Environment variables read by every DataPilot process (names and defaults: .env.example)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    log_level: str = Field(default="INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR)$")
    redis_url: str = "redis://127.0.0.1:6379/0"
    job_timeout_seconds: float = Field(default=600, gt=0)
    retry_initial_delay: float = Field(default=0.5, ge=0)
    retry_factor: float = Field(default=2.0, ge=1)
    retry_max_delay: float = Field(default=10, ge=0)
    blob_retry_attempts: int = Field(default=3, ge=1)
    grpc_shutdown_grace_seconds: float = Field(default=10, ge=0)
    max_upload_bytes: int = Field(default=20 * MIB, gt=0)
    job_record_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    # When set, every gRPC call between services must carry this token (health checks excepted).
    internal_auth_token: SecretStr = SecretStr("")
    # Prometheus metrics over HTTP; each service sets its own default port, 0 turns it off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)

    def blob_backoff(self) -> BackoffPolicy:
        """The retry policy of blob-store operations."""
        return BackoffPolicy(
            attempts=self.blob_retry_attempts,
            initial_delay=self.retry_initial_delay,
            factor=self.retry_factor,
            max_delay=self.retry_max_delay,
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

    def backend(self) -> str:
        """`fs` or `s3`; an unset BLOB_BACKEND means S3 when S3_ENDPOINT is set."""
        if self.blob_backend:
            return self.blob_backend
        return "s3" if self.s3_endpoint else "fs"
