"""Settings of llm_svc, read from the environment at start."""

from __future__ import annotations

from pydantic import Field, SecretStr

from datapilot_runtime.backoff import BackoffPolicy
from datapilot_runtime.settings import CommonSettings


class LlmSettings(CommonSettings):
    """The seed's LLM variables; no OPENROUTER_API_KEY means fallback insights only."""

    grpc_listen_addr: str = "127.0.0.1:50053"
    openrouter_api_key: SecretStr = SecretStr("")
    llm_model: str = "deepseek/deepseek-r1"
    llm_base_url: str = "https://openrouter.ai/api/v1"
    llm_retry_attempts: int = Field(default=2, ge=1)
    llm_request_timeout_seconds: float = Field(default=60, gt=0)
    llm_http_referer: str = ""
    llm_x_title: str = "DataPilot"
    llm_circuit_threshold: int = Field(default=5, ge=1)
    llm_circuit_window: float = Field(default=300, gt=0)
    llm_circuit_cooldown: float = Field(default=600, gt=0)

    def llm_backoff(self) -> BackoffPolicy:
        return BackoffPolicy(
            attempts=self.llm_retry_attempts,
            initial_delay=self.retry_initial_delay,
            factor=self.retry_factor,
            max_delay=self.retry_max_delay,
        )
