"""Backoff `min(max, initial * factor^(n-1)) * U(0.9, 1.1)`; a retry loop that keeps a deadline."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from datapilot_runtime.metrics import RETRIES

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class BackoffPolicy:
    """`delay = min(max_delay, initial_delay * factor^(attempt-1)) * uniform(0.9, 1.1)`."""

    attempts: int
    initial_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 10.0

    def delay(self, attempt: int, rng: Callable[[float, float], float] = random.uniform) -> float:
        """Delay to sleep after failed attempt number `attempt` (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.factor ** (attempt - 1))
        return base * rng(0.9, 1.1)


async def retry_async(
    operation: Callable[[], Awaitable[T]],
    policy: BackoffPolicy,
    retry_on: tuple[type[BaseException], ...],
    *,
    name: str,
    deadline: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run `operation` up to `policy.attempts` times; never sleep past `deadline` (monotonic)."""
    attempt = 1
    label = " ".join(name.split()[:2])  # e.g. "s3 put": bounded label values
    while True:
        try:
            result = await operation()
        except retry_on as exc:
            if attempt >= policy.attempts:
                if attempt > 1:
                    RETRIES.labels(label, "gave_up").inc()
                raise
            delay = policy.delay(attempt)
            if deadline is not None and time.monotonic() + delay >= deadline:
                RETRIES.labels(label, "deadline").inc()
                raise
            _LOGGER.warning(
                "retrying %s after %s (attempt %d of %d, sleeping %.3fs)",
                name,
                type(exc).__name__,
                attempt,
                policy.attempts,
                delay,
            )
            RETRIES.labels(label, "retried").inc()
            await sleep(delay)
            attempt += 1
        else:
            if attempt > 1:
                RETRIES.labels(label, "recovered").inc()
            return result
