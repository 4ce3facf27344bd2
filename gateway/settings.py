"""Settings of the gateway, read from the environment at start."""

from __future__ import annotations

from pydantic import Field, SecretStr

from datapilot_runtime.settings import DEFAULT_MAX_UPLOAD_BYTES, CommonSettings


class GatewaySettings(CommonSettings):
    """Where to listen, the upstream services, keys, and per-route deadlines."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8080, ge=0, le=65535)
    ingest_addr: str = "127.0.0.1:50051"
    analysis_addr: str = "127.0.0.1:50052"
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, gt=0)
    # `tenant:key` or `tenant:sha256:<hex>`, comma-separated; empty: anonymous access.
    datapilot_api_keys: SecretStr = SecretStr("")
    # Anonymous access on a non-loopback address must be asked for explicitly.
    datapilot_allow_anonymous: bool = False
    upload_deadline_seconds: float = Field(default=120, gt=0)
    # A body slower than this on average (after the grace) is cut with a 408; 0 turns it off.
    upload_min_bytes_per_second: float = Field(default=10240, ge=0)
    upload_min_rate_grace_seconds: float = Field(default=5, gt=0)
    read_deadline_seconds: float = Field(default=10, gt=0)
    analyze_deadline_seconds: float = Field(default=120, gt=0)
    # Live job events (GET /api/jobs/{jobId}/events): a comment every this many seconds keeps
    # an idle stream open; at most this many open streams per tenant (per gateway process).
    events_heartbeat_seconds: float = Field(default=15, gt=0, le=300)
    events_max_streams_per_tenant: int = Field(default=20, ge=1)
