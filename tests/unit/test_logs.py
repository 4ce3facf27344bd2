"""The JSON log formatter: one object per line, ids attached, secrets redacted."""

from __future__ import annotations

import json
import logging

from datapilot_runtime.context import job_id_var, request_id_var
from datapilot_runtime.logs import JsonFormatter, register_environment_secrets


def _format(message: str, *args: object) -> dict[str, object]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, args, None)
    parsed: dict[str, object] = json.loads(JsonFormatter("svc").format(record))
    return parsed


def test_line_is_json_with_service_and_ids() -> None:
    token_r = request_id_var.set("req-1")
    token_j = job_id_var.set("job-1")
    try:
        entry = _format("hello %s", "world")
    finally:
        request_id_var.reset(token_r)
        job_id_var.reset(token_j)
    assert entry["message"] == "hello world"
    assert entry["service"] == "svc" and entry["severity"] == "INFO"
    assert entry["request_id"] == "req-1" and entry["job_id"] == "job-1"


def test_secrets_are_redacted() -> None:
    for leak in (
        "Authorization: Bearer abc.def.ghi",
        "api_key=sk-or-v1-0123456789abcdef",
        'OPENROUTER_API_KEY="sk-or-v1-0123456789abcdef"',
        "token: hunter2",
    ):
        message = str(_format(leak)["message"])
        assert "abc.def.ghi" not in message
        assert "0123456789abcdef" not in message
        assert "hunter2" not in message
        assert "[REDACTED]" in message


def test_words_after_a_variable_name_stay_readable() -> None:
    for harmless in (
        "no OPENROUTER_API_KEY: answers come from the deterministic fallback",
        "INTERNAL_AUTH_TOKEN is not set; services accept any caller",
        "set DATAPILOT_API_KEYS to require a key",
        "the token bucket is empty",
    ):
        assert _format(harmless)["message"] == harmless


def test_json_and_header_pairs_are_redacted() -> None:
    for leak, secret in (
        ('{"api_key": "abcdef123456"}', "abcdef123456"),
        ("{'password': 'pw-0000'}", "pw-0000"),
        ("S3_SECRET_KEY = s3cr3t-value", "s3cr3t-value"),
        ("x-api-key: 0123456789abcdef", "0123456789abcdef"),
    ):
        message = str(_format(leak)["message"])
        assert secret not in message and "[REDACTED]" in message, message


def test_the_process_secrets_are_redacted_wherever_they_appear() -> None:
    register_environment_secrets(
        {
            "OPENROUTER_API_KEY": "or-value-without-a-prefix",
            "DATAPILOT_API_KEYS": "acme:acme-key-value,beta:sha256:" + "0" * 64,
            "REDIS_URL": "redis://:redis-pass-value@redis:6379/0",
            "S3_SECRET_KEY": "s3-secret-value",
            "LOG_LEVEL": "INFO",
        }
    )
    for secret in (
        "or-value-without-a-prefix",
        "acme-key-value",
        "redis-pass-value",
        "s3-secret-value",
    ):
        entry = _format("the upstream said %s and more", secret)
        assert secret not in str(entry["message"]) and "[REDACTED]" in str(entry["message"])
        extra = logging.LogRecord("t", logging.INFO, __file__, 1, "x", (), None)
        extra.detail = f"<{secret}>"
        assert secret not in JsonFormatter("svc").format(extra)
    assert _format("log level INFO")["message"] == "log level INFO"  # not a secret's name
