"""The gateway's ASGI middleware: request ids and the access log; cancel on client disconnect.

RequestContextMiddleware gives each request an id (X-Request-Id in, or minted) and logs it.
CancelOnDisconnectMiddleware: once the request body has been read (at once, for a request
without one), it owns the server's `receive` and watches it for `http.disconnect`; the
application then reads from a queue it fills. On a disconnect the handler task is cancelled,
which cancels the gRPC calls it awaits, so upstream services see CANCELLED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapilot_runtime.context import new_request_id, request_id_var
from gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS

_ACCESS_LOGGER = logging.getLogger("gateway.access")
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


class _HttpMiddleware:
    """Pure ASGI middleware that acts on HTTP requests and passes anything else through."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestContextMiddleware(_HttpMiddleware):
    """Binds the request id for the whole request and echoes it in `X-Request-Id`."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
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
            if _ACCESS_LOGGER.isEnabledFor(level):
                _ACCESS_LOGGER.log(
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


_LOGGER = logging.getLogger("gateway.disconnect")


def _has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    if b"transfer-encoding" in headers:
        return True
    return headers.get(b"content-length", b"0").strip() not in (b"", b"0")


class CancelOnDisconnectMiddleware(_HttpMiddleware):
    """Runs each HTTP request in a task that is cancelled if the client disconnects."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body_done = asyncio.Event()
        if not _has_body(scope):
            body_done.set()
        disconnected = asyncio.Event()
        later: asyncio.Queue[Message] = asyncio.Queue()

        async def app_receive() -> Message:
            if body_done.is_set():
                return await later.get()
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected.set()
                body_done.set()
            elif not message.get("more_body", False):
                body_done.set()
            return message

        async def run_app() -> None:
            await self._app(scope, app_receive, send)

        handler = asyncio.create_task(run_app())

        async def watch() -> None:
            await body_done.wait()
            while not disconnected.is_set():
                message = await receive()
                await later.put(message)
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    if not handler.done():
                        _LOGGER.info("client disconnected; cancelling its upstream calls")
                        handler.cancel()

        watcher = asyncio.create_task(watch())
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await handler
            if not disconnected.is_set():
                handler.result()  # re-raise what the application raised
        finally:
            watcher.cancel()
            handler.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
