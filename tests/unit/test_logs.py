"""The JSON log formatter: one object per line, ids attached, secrets redacted."""

from __future__ import annotations

import json
import logging

from datapilot_runtime.context import job_id_var, request_id_var
from datapilot_runtime.logs import JsonFormatter


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
