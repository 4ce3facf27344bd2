"""The README's backoff formula and the deadline-aware retry loop (no real sleeping)."""

from __future__ import annotations

import time

import pytest

from datapilot_runtime.backoff import BackoffPolicy, retry_async


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0), (9, 10.0)],
)
def test_delay_follows_the_formula_without_jitter(attempt: int, expected: float) -> None:
    policy = BackoffPolicy(attempts=10, initial_delay=0.5, factor=2.0, max_delay=10.0)
    assert policy.delay(attempt, rng=lambda low, high: 1.0) == pytest.approx(expected)


def test_jitter_stays_within_ten_percent() -> None:
    policy = BackoffPolicy(attempts=3, initial_delay=1.0, factor=2.0, max_delay=10.0)
    assert policy.delay(2, rng=lambda low, high: low) == pytest.approx(1.8)
    assert policy.delay(2, rng=lambda low, high: high) == pytest.approx(2.2)
    samples = [policy.delay(2) for _ in range(500)]
    assert min(samples) >= 1.8 and max(samples) <= 2.2
    assert max(samples) - min(samples) > 0.1


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError("transient")
        return "ok"


async def test_retries_until_success_sleeping_the_policy_delays() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    operation = Flaky(failures=2)
    policy = BackoffPolicy(attempts=3, initial_delay=0.5, factor=2.0, max_delay=10.0)
    assert await retry_async(operation, policy, (OSError,), name="t", sleep=fake_sleep) == "ok"
    assert operation.calls == 3
    assert len(slept) == 2
    assert 0.45 <= slept[0] <= 0.55 and 0.9 <= slept[1] <= 1.1


async def test_gives_up_after_the_last_attempt() -> None:
    async def no_sleep(seconds: float) -> None:
        return None

    operation = Flaky(failures=5)
    with pytest.raises(OSError):
        await retry_async(
            operation, BackoffPolicy(attempts=3), (OSError,), name="t", sleep=no_sleep
        )
    assert operation.calls == 3


async def test_does_not_retry_other_errors() -> None:
    async def boom() -> None:
        raise ValueError("permanent")

    with pytest.raises(ValueError):
        await retry_async(boom, BackoffPolicy(attempts=3), (OSError,), name="t")


async def test_never_sleeps_past_the_deadline() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    operation = Flaky(failures=5)
    policy = BackoffPolicy(attempts=5, initial_delay=1.0)
    with pytest.raises(OSError):
        await retry_async(
            operation,
            policy,
            (OSError,),
            name="t",
            deadline=time.monotonic() + 0.5,
            sleep=fake_sleep,
        )
    assert operation.calls == 1 and slept == []
