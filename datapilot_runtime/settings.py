"""Settings more than one process reads; each process's class combines them with its own."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from datapilot_runtime.backoff import BackoffPolicy

MIB = 1024 * 1024
# MAX_UPLOAD_BYTES: the gateway, ingest_svc and analysis_svc each declare it with this default.
DEFAULT_MAX_UPLOAD_BYTES = 20 * MIB
_CONFIG = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)


class GrpcTlsSettings(BaseSettings):
    """Optional TLS on the gRPC hops (mutual with a CA); every process reads it.

    Servers: TLS when GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE are set; with GRPC_TLS_CA_FILE
    too, clients must present a certificate that CA signed (mutual TLS). Clients: TLS when
    GRPC_TLS_CA_FILE is set (it verifies the server), presenting the cert and key when set.
    """

    model_config = _CONFIG

    grpc_tls_cert_file: str = ""
    grpc_tls_key_file: str = ""
    grpc_tls_ca_file: str = ""

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> GrpcTlsSettings:
        if bool(self.grpc_tls_cert_file) != bool(self.grpc_tls_key_file):
            raise ValueError("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE are set together")
        return self


class GrpcTransportSettings(GrpcTlsSettings):
    """A gRPC server's transport: TLS, and reflection (grpcurl, Postman), which asks for the
    internal token when one is set."""

    grpc_reflection: bool = True


class CommonSettings(GrpcTlsSettings):
    """Environment variables read by every DataPilot process (names and defaults: .env.example)."""

    model_config = _CONFIG

    log_level: str = Field(default="INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR)$")
    grpc_shutdown_grace_seconds: float = Field(default=10, ge=0)
    # When set, every gRPC call between services must carry this token (health checks excepted).
    internal_auth_token: SecretStr = SecretStr("")


class ServiceSettings(CommonSettings, GrpcTransportSettings):
    """Read by every gRPC service process (all but the gateway, which serves /metrics itself)."""

    # Where the process's Prometheus exporter listens; each process has its own port variable.
    metrics_host: str = "127.0.0.1"


class RetrySettings(BaseSettings):
    """The backoff formula's knobs: ingest_svc (blob store), llm_svc (LLM), the worker (outages)."""

    model_config = _CONFIG

    retry_initial_delay: float = Field(default=0.5, ge=0)
    retry_factor: float = Field(default=2.0, ge=1)
    retry_max_delay: float = Field(default=10, ge=0)

    def backoff(self, attempts: int) -> BackoffPolicy:
        """The retry policy with these knobs and `attempts` tries."""
        return BackoffPolicy(
            attempts=attempts,
            initial_delay=self.retry_initial_delay,
            factor=self.retry_factor,
            max_delay=self.retry_max_delay,
        )


class RedisSettings(BaseSettings):
    """Where Redis is: ingest_svc and the worker (jobs), llm_svc (shared breaker, cache)."""

    model_config = _CONFIG

    redis_url: str = "redis://127.0.0.1:6379/0"
    # REDIS_URL is then one seed node of a Redis Cluster.
    redis_cluster: bool = False
    # With a rediss:// URL: the CA that signed Redis's certificate ('' = the system's CAs).
    redis_tls_ca_file: str = ""


class JobStoreSettings(RedisSettings):
    """The job store: ingest_svc and the worker."""

    job_record_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    # The job stream is split in this many streams (each its own cluster slot); ingest_svc and
    # every worker must agree on it.
    job_stream_shards: int = Field(default=1, ge=1, le=1024)
