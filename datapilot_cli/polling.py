"""Waiting for a job: its live events, else polling as the README's Jobs section has it (1, 2,
4, 8 s, then every 15 s), up to a limit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from datapilot_cli.api import ApiError

_LOGGER = logging.getLogger(__name__)

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


def follow_job(
    events: Callable[[], Iterator[dict[str, Any] | None]],
    fetch: Callable[[], dict[str, Any]],
    *,
    max_wait: float,
    retry_after: float = 1.0,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Follow the job's live events until it is terminal; poll instead if they fail.

    Any failure to open the stream, or a stream that breaks or ends before the job did, falls
    back to `wait_for_job` for the time that is left. Raises WaitTimeout after `max_wait`.
    """
    started = clock()
    try:
        for job in events():
            if job is not None:
                if on_update is not None:
                    on_update(job)
                if job["status"] in TERMINAL:
                    return job
            if clock() - started >= max_wait:
                raise WaitTimeout
    except ApiError as exc:
        _LOGGER.debug("live events unavailable (%s); polling", exc)
    return wait_for_job(
        fetch,
        max_wait=max_wait - (clock() - started),
        retry_after=retry_after,
        on_update=on_update,
        sleep=sleep,
        clock=clock,
    )
