"""ASGI middleware: when the HTTP client goes away, cancel the request's handler (and its calls).

Once the request body has been read (at once, for a request without one), this middleware owns
the server's `receive` and watches it for `http.disconnect`; the application then reads from a
queue it fills. On a disconnect the handler task is cancelled, which cancels the gRPC calls it
awaits, so upstream services see CANCELLED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LOGGER = logging.getLogger(__name__)


def _has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    if b"transfer-encoding" in headers:
        return True
    return headers.get(b"content-length", b"0").strip() not in (b"", b"0")


class CancelOnDisconnectMiddleware:
    """Runs each HTTP request in a task that is cancelled if the client disconnects."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
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
