"""Reads Server-Sent Events from an httpx streaming response (what EventSource would see)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SseEvent:
    """One event (`event`, `id`, `data` as JSON), or a comment (`comment` set, the rest empty)."""

    event: str = ""
    id: str = ""
    data: Any = None
    comment: str = ""


def sse_events(response: httpx.Response) -> Iterator[SseEvent]:
    """The events and comments of a text/event-stream response, as they arrive."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            yield SseEvent(comment=line[1:].strip())
            continue
        if not line:
            if fields:
                data = fields.get("data")
                yield SseEvent(
                    fields.get("event", "message"),
                    fields.get("id", ""),
                    json.loads(data) if data else None,
                )
                fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")
