"""Settings of the gateway, read from the environment at start."""

from __future__ import annotations

from pydantic import Field

from datapilot_runtime.settings import CommonSettings


class GatewaySettings(CommonSettings):
    """Where to listen, the upstream services, and per-route deadlines."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8080, ge=0, le=65535)
    ingest_addr: str = "127.0.0.1:50051"
    upload_deadline_seconds: float = Field(default=120, gt=0)
    read_deadline_seconds: float = Field(default=10, gt=0)
    client_max_wait_seconds: float = Field(default=600, gt=0)
