"""The one JSON log formatter of every DataPilot process, with secret redaction."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from datapilot_runtime.context import job_id_var, request_id_var
from datapilot_runtime.tracing import current_ids

# A secret's name, with up to four prefixes (OPENROUTER_API_KEY, s3-secret-key); bounded so that
# a long dashed word cannot make the search quadratic.
_SECRET_NAME = (
    r"(?:[a-z0-9]{1,32}[_-]){0,4}"
    r"(?:api[_-]?keys?|token|secret(?:[_-]key)?|password|passwd|authorization|access[_-]key)"
)
_VALUE = r"[^\s\"',;&}]+"
_REDACTIONS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    # key=value, key = "value" (a variable's name followed by an explanation is left alone).
    re.compile(rf"(?i)(\b{_SECRET_NAME}\s*=\s*[\"']?){_VALUE}"),
    # "key": value and 'key': 'value' (JSON, Python reprs).
    re.compile(rf"(?i)([\"']{_SECRET_NAME}[\"']\s*:\s*[\"']?){_VALUE}"),
    # key: value unquoted (a header, YAML) only when the value looks like a credential (it has
    # a digit, or is long): "no OPENROUTER_API_KEY: answers come from ..." stays readable.
    re.compile(rf"(?i)(\b{_SECRET_NAME}:\s*)(?=[^\s\"',;&}}]*[0-9]|[^\s\"',;&}}]{{20}}){_VALUE}"),
    re.compile(r"(sk-[A-Za-z0-9_-]{8})[A-Za-z0-9_-]+"),
)
# Values of the process's own secrets, redacted wherever they appear (whatever surrounds them).
_SECRET_VALUES: set[str] = set()
_MIN_SECRET_CHARS = 6
_SECRET_ENV_NAME = re.compile(rf"(?i)^{_SECRET_NAME}$")


def register_secret(value: str) -> None:
    """Redact `value` from every log line from now on (too short a value would hit words)."""
    if len(value) >= _MIN_SECRET_CHARS:
        _SECRET_VALUES.add(value)


def register_environment_secrets(environ: Mapping[str, str]) -> None:
    """Register the values of secret-named variables, API keys' secrets, URL passwords."""
    for name, value in environ.items():
        if name.upper() == "DATAPILOT_API_KEYS":
            for entry in value.split(","):
                register_secret(entry.partition(":")[2].strip())
        elif _SECRET_ENV_NAME.match(name):
            register_secret(value)
        elif name.upper().endswith("_URL"):
            with contextlib.suppress(ValueError):
                register_secret(urlsplit(value).password or "")


_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)


def redact(text: str) -> str:
    """Replace the process's secrets, and whatever looks like a credential, with a placeholder."""
    for secret in sorted(_SECRET_VALUES, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    for pattern in _REDACTIONS:
        text = pattern.sub(r"\1[REDACTED]", text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, severity, service, logger, message, ids, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "severity": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        job_id = job_id_var.get()
        if job_id:
            entry["job_id"] = job_id
        ids = current_ids()  # the span the line was logged in (none while tracing is off)
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool) else redact(str(value))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record of the process to stdout as JSON lines, its secrets redacted."""
    register_environment_secrets(os.environ)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "urllib3", "botocore", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
