"""Settings of llm_svc, read from the environment at start."""

from __future__ import annotations

from pydantic import Field, SecretStr

from datapilot_runtime.backoff import BackoffPolicy
from datapilot_runtime.settings import RedisSettings, RetrySettings, ServiceSettings


class LlmSettings(ServiceSettings, RedisSettings, RetrySettings):
    """The LLM variables of .env.example; no OPENROUTER_API_KEY means fallback insights only."""

    grpc_listen_addr: str = "127.0.0.1:50053"
    openrouter_api_key: SecretStr = SecretStr("")
    llm_model: str = "deepseek/deepseek-r1"
    llm_base_url: str = "https://openrouter.ai/api/v1"
    llm_retry_attempts: int = Field(default=2, ge=1)
    llm_request_timeout_seconds: float = Field(default=60, gt=0)
    # An attempt is only started when at least this much time is left before the deadline.
    llm_min_attempt_seconds: float = Field(default=0.5, ge=0)
    llm_http_referer: str = ""
    llm_x_title: str = "DataPilot"
    # Ask for `response_format: {"type": "json_object"}` (dropped by itself if refused).
    llm_json_mode: bool = True
    llm_max_connections: int = Field(default=50, ge=1)
    llm_circuit_threshold: int = Field(default=5, ge=1)
    llm_circuit_window: float = Field(default=300, gt=0)
    llm_circuit_cooldown: float = Field(default=600, gt=0)
    # true: the breaker state lives in Redis and every replica opens and closes together.
    llm_circuit_shared: bool = False
    # Identical requests (report, model, prompt version) are answered from Redis; 0 = off.
    llm_cache_ttl_seconds: int = Field(default=86400, ge=0)
    # Prefix of every Redis key llm_svc writes (breaker state, cache).
    llm_redis_prefix: str = Field(default="datapilot:llm", min_length=1)
    # Bound on each Redis call on the request path (breaker, cache).
    llm_redis_timeout_seconds: float = Field(default=0.5, gt=0)
    # Findings in an answer (the top candidates), before up to 3 outlier / data-quality notes.
    insights_max: int = Field(default=8, ge=1, le=50)
    metrics_port: int = Field(default=9103, ge=0, le=65535)

    def llm_backoff(self) -> BackoffPolicy:
        return self.backoff(self.llm_retry_attempts)

    def probe_lease_seconds(self) -> float:
        """How long a half-open probe may hold the breaker before another call may probe."""
        return self.llm_request_timeout_seconds + 5.0
