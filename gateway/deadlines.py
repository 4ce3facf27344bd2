"""Per-request deadlines: a route default, shortened by `Grpc-Timeout` or `Request-Timeout`.

Downloads have an idle deadline instead (IdleDeadlineStream): a total one would cut a slow
client's download short while it still reads.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Message, Send

from gateway.problems import ProblemError

_LOGGER = logging.getLogger(__name__)
_GRPC_TIMEOUT_RE = re.compile(r"^(\d{1,8})([HMSmun])$")
_UNIT_SECONDS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_grpc_timeout(value: str) -> float:
    """gRPC's TimeoutValue ("100m", "2S", ...) in seconds."""
    match = _GRPC_TIMEOUT_RE.match(value.strip())
    if not match:
        raise ProblemError(
            400, "invalid_timeout", "Grpc-Timeout is digits and a unit (H M S m u n)."
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_request_timeout(value: str) -> float:
    """`Request-Timeout` in seconds (a positive number)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e6:
        raise ProblemError(
            400, "invalid_timeout", "Request-Timeout is a positive number of seconds."
        )
    return seconds


def timeout_of(grpc_timeout: str | None, request_timeout: str | None, default: float) -> float:
    """The route's default, shortened by the `Grpc-Timeout` / `Request-Timeout` header values."""
    timeout = default
    if grpc_timeout:
        timeout = min(timeout, parse_grpc_timeout(grpc_timeout))
    if request_timeout:
        timeout = min(timeout, parse_request_timeout(request_timeout))
    return timeout


def deadline(request: Request, default: float) -> float:
    """The gRPC timeout of this request's upstream calls: never longer than the route's default."""
    headers = request.headers
    return timeout_of(headers.get("grpc-timeout"), headers.get("request-timeout"), default)


async def _idle_bounded(chunks: AsyncIterator[bytes], idle_seconds: float) -> AsyncIterator[bytes]:
    iterator = aiter(chunks)
    while True:
        async with asyncio.timeout(idle_seconds):
            chunk = await anext(iterator, None)
        if chunk is None:
            return
        yield chunk


class IdleDeadlineStream(StreamingResponse):
    """A streamed document whose every chunk must move within `idle_seconds`, however long
    the whole takes.

    Both sides count: the next chunk from upstream, and the client taking the previous one (a
    client that stops reading blocks the send). A stall ends the connection without the final
    chunk, so the client sees a broken transfer, never a complete-looking truncated 200.
    """

    def __init__(self, content: AsyncIterator[bytes], idle_seconds: float, media_type: str) -> None:
        super().__init__(_idle_bounded(content, idle_seconds), media_type=media_type)
        self._idle_seconds = idle_seconds

    async def stream_response(self, send: Send) -> None:
        async def timed_send(message: Message) -> None:
            async with asyncio.timeout(self._idle_seconds):
                await send(message)

        try:
            await super().stream_response(timed_send)
        except TimeoutError:
            _LOGGER.info("download idle for %.1fs; connection closed", self._idle_seconds)
            raise
