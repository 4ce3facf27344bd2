"""Settings of ingest_svc, read from the environment at start."""

from __future__ import annotations

from pydantic import Field

from datapilot_runtime.settings import BlobSettings, CommonSettings


class IngestSettings(CommonSettings, BlobSettings):
    """CommonSettings + the blob store + where to listen."""

    metrics_port: int = Field(default=9101, ge=0, le=65535)
    grpc_listen_addr: str = "127.0.0.1:50051"
    idempotency_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    rate_limit_per_minute: int = Field(default=600, ge=0)
