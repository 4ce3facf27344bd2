"""Downloads have an idle deadline, not a total one (gateway.deadlines.IdleDeadlineStream).

Driven as the ASGI server drives it: a client that takes each chunk slowly but steadily gets the
whole document even though the whole takes several idle periods; one that stops reading, or an
upstream that stops sending, is cut after one idle period.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.requests import ClientDisconnect
from starlette.types import Message

from gateway.deadlines import IdleDeadlineStream

IDLE = 0.3
SCOPE = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "GET", "path": "/"}


async def _chunks(count: int, pause: float = 0.0) -> AsyncIterator[bytes]:
    for n in range(count):
        if pause:
            await asyncio.sleep(pause)
        yield b"%d," % n


async def _receive() -> Message:
    await asyncio.sleep(3600)
    return {"type": "http.disconnect"}


class _Client:
    """The ASGI server's `send`: takes each body chunk in `take` seconds (one stalls)."""

    def __init__(self, take: float, stall_at: int = -1) -> None:
        self.take = take
        self.stall_at = stall_at
        self.body = bytearray()
        self.complete = False
        self.sent = 0

    async def send(self, message: Message) -> None:
        if message["type"] != "http.response.body":
            return
        self.sent += 1
        await asyncio.sleep(10 * IDLE if self.sent == self.stall_at else self.take)
        self.body.extend(message.get("body", b""))
        self.complete = not message.get("more_body", False)


async def _serve(response: IdleDeadlineStream, take: float) -> bytes:
    client = _Client(take)
    await response(SCOPE, _receive, client.send)
    assert client.complete
    return bytes(client.body)


async def _cut(response: IdleDeadlineStream, client: _Client) -> None:
    # Starlette reports an OSError (TimeoutError is one) while sending as ClientDisconnect.
    with pytest.raises((TimeoutError, ClientDisconnect)):
        await response(SCOPE, _receive, client.send)
    assert not client.complete  # the transfer is broken, never a complete-looking 200


async def test_a_slow_steady_client_gets_the_whole_document() -> None:
    # 12 chunks at 0.1 s each: 1.2 s in all, four idle periods, never idle for one.
    response = IdleDeadlineStream(_chunks(12), IDLE, media_type="application/json")
    body = await _serve(response, take=IDLE / 3)
    assert body == b"".join(b"%d," % n for n in range(12))


async def test_a_slow_steady_upstream_is_relayed_whole() -> None:
    response = IdleDeadlineStream(_chunks(8, pause=IDLE / 3), IDLE, media_type="text/plain")
    assert await _serve(response, take=0) == b"".join(b"%d," % n for n in range(8))


async def test_a_client_that_stops_reading_is_cut() -> None:
    response = IdleDeadlineStream(_chunks(12), IDLE, media_type="application/json")
    await _cut(response, _Client(take=0, stall_at=3))


async def test_an_upstream_that_stops_sending_is_cut() -> None:
    async def stalls() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.sleep(10 * IDLE)
        yield b"never"

    response = IdleDeadlineStream(stalls(), IDLE, media_type="application/json")
    client = _Client(take=0)
    await _cut(response, client)
    assert bytes(client.body) == b"first"
