"""Polling as the README's Jobs section has it: 1, 2, 4, 8 s, then every 15 s, up to a limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

TERMINAL = ("completed", "failed", "cancelled")
DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)


class WaitTimeout(Exception):
    """The job was still running at CLIENT_MAX_WAIT_SECONDS."""


def poll_delays(first: float = DELAYS[0]) -> list[float]:
    """The delays between polls: the server's Retry-After first (if longer), then DELAYS."""
    return [max(first, DELAYS[0]), *DELAYS[1:]]


def wait_for_job(
    fetch: Callable[[], dict[str, Any]],
    *,
    max_wait: float,
    retry_after: float = 1.0,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until the job is terminal; raises WaitTimeout after `max_wait` seconds."""
    started = clock()
    delays = poll_delays(retry_after)
    attempt = 0
    while True:
        delay = delays[min(attempt, len(delays) - 1)]
        left = max_wait - (clock() - started)
        if left <= 0:
            raise WaitTimeout
        sleep(min(delay, left))
        attempt += 1
        job = fetch()
        if on_update is not None:
            on_update(job)
        if job["status"] in TERMINAL:
            return job
