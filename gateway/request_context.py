"""ASGI middleware: a request id per request (X-Request-Id in or minted) and an access log."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapilot_runtime.context import new_request_id, request_id_var
from gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS

_LOGGER = logging.getLogger("gateway.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


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
            HTTP_REQUESTS.labels(scope["method"], template, str(code)).inc()
            HTTP_LATENCY.labels(scope["method"], template).observe(elapsed)
            _LOGGER.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                code,
                extra={
                    "http_method": scope["method"],
                    "http_path": scope["path"],
                    "http_status": code,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)
