"""ASGI middleware: a request id per request (X-Request-Id in or minted) and an access log."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapilot_runtime.context import new_request_id, request_id_var
from gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS

_LOGGER = logging.getLogger("gateway.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# A successful read (a job-status poll, mostly) is logged at DEBUG: polls are the bulk of the
# traffic, and formatting a JSON line for each was a tenth of a poll's gateway time.
_READ_METHODS = frozenset({"GET", "HEAD"})
_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}


def _metrics(method: str, template: str, code: str) -> tuple[Counter, Histogram]:
    """The labelled counter and histogram (labels() validates and locks on every call)."""
    key = (method, template, code)
    found = _children.get(key)
    if found is None:
        found = (
            HTTP_REQUESTS.labels(method, template, code),
            HTTP_LATENCY.labels(method, template),
        )
        _children[key] = found
    return found


class RequestContextMiddleware:
    """Binds the request id for the whole request and echoes it in `X-Request-Id`."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            code = status["code"] or 499  # no response started: the client went away
            method = scope["method"]
            requests, latency = _metrics(method, template, str(code))
            requests.inc()
            latency.observe(elapsed)
            level = logging.DEBUG if code < 400 and method in _READ_METHODS else logging.INFO
            if _LOGGER.isEnabledFor(level):
                _LOGGER.log(
                    level,
                    "%s %s %s",
                    method,
                    scope["path"],
                    code,
                    extra={
                        "http_method": method,
                        "http_path": scope["path"],
                        "http_status": code,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)
