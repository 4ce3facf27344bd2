"""The breaker's timeline with a fake clock, for the local breaker and the Redis-shared one."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from datapilot_runtime.redis_client import RedisClient, connect_redis
from devstack.processes import free_port
from llm_svc.circuit_breaker import (
    Admission,
    BreakerConfig,
    CircuitBreaker,
    LocalBreaker,
    RedisBreaker,
    State,
)
from tests.support.servers import RunningServer

CONFIG = BreakerConfig(threshold=5, window=300, cooldown=600, probe_lease=65)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
async def redis(redis_server: RunningServer) -> AsyncIterator[RedisClient]:
    client = await connect_redis(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture(params=["local", "redis"])
def make_breaker(request: pytest.FixtureRequest, clock: FakeClock, redis: RedisClient) -> Any:
    """Builds breakers of the parametrised kind; Redis ones of one test share their keys."""
    prefix = f"test:{uuid.uuid4().hex}"

    def make() -> CircuitBreaker:
        if request.param == "local":
            return LocalBreaker(CONFIG, clock)
        return RedisBreaker(redis, CONFIG, prefix, clock=clock)

    return make


async def _fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        admission = await breaker.admit()
        assert admission is Admission.ALLOWED
        await breaker.record_failure(admission)


async def test_five_failures_within_the_window_open_it(make_breaker: Any, clock: FakeClock) -> None:
    breaker = make_breaker()
    await _fail(breaker, 4)
    snapshot = await breaker.snapshot()
    assert (snapshot.state, snapshot.failures_in_window) == (State.CLOSED, 4)
    clock.now += 299
    await _fail(breaker)
    snapshot = await breaker.snapshot()
    assert snapshot.state is State.OPEN and snapshot.failures_in_window == 5
    assert snapshot.half_open_at == pytest.approx(clock.now + 600, abs=1e-3)
    assert await breaker.admit() is Admission.REJECTED


async def test_five_failures_spread_beyond_the_window_do_not(
    make_breaker: Any, clock: FakeClock
) -> None:
    breaker = make_breaker()
    counts = []
    for _ in range(10):
        await _fail(breaker)  # asserts it is still closed
        snapshot = await breaker.snapshot()
        assert snapshot.state is State.CLOSED and snapshot.half_open_at is None
        counts.append(snapshot.failures_in_window)
        clock.now += 75.0  # the 5th failure comes exactly 300 s after the 1st: outside
    assert counts == [1, 2, 3, 4, 4, 4, 4, 4, 4, 4]


async def test_successes_do_not_reset_the_window(make_breaker: Any, clock: FakeClock) -> None:
    breaker = make_breaker()
    await _fail(breaker, 4)
    admission = await breaker.admit()
    await breaker.record_success(admission)
    await _fail(breaker)
    assert (await breaker.snapshot()).state is State.OPEN


async def test_half_open_after_cooldown_lets_one_probe_and_success_closes(
    make_breaker: Any, clock: FakeClock
) -> None:
    breaker = make_breaker()
    await _fail(breaker, 5)
    clock.now += 599.9
    assert await breaker.admit() is Admission.REJECTED
    clock.now += 0.1
    assert (await breaker.snapshot()).state is State.HALF_OPEN
    assert await breaker.admit() is Admission.PROBE
    assert await breaker.admit() is Admission.REJECTED  # exactly one probe
    await breaker.record_success(Admission.PROBE)
    snapshot = await breaker.snapshot()
    assert (snapshot.state, snapshot.failures_in_window) == (State.CLOSED, 0)
    assert await breaker.admit() is Admission.ALLOWED


async def test_probe_failure_opens_it_for_another_cooldown(
    make_breaker: Any, clock: FakeClock
) -> None:
    breaker = make_breaker()
    await _fail(breaker, 5)
    clock.now += 600
    assert await breaker.admit() is Admission.PROBE
    clock.now += 5
    await breaker.record_failure(Admission.PROBE)
    snapshot = await breaker.snapshot()
    assert snapshot.state is State.OPEN
    assert snapshot.half_open_at == pytest.approx(clock.now + 600, abs=1e-3)
    clock.now += 599
    assert await breaker.admit() is Admission.REJECTED
    clock.now += 1
    assert await breaker.admit() is Admission.PROBE


async def test_a_cancelled_or_lost_probe_frees_the_slot(
    make_breaker: Any, clock: FakeClock
) -> None:
    breaker = make_breaker()
    await _fail(breaker, 5)
    clock.now += 600
    assert await breaker.admit() is Admission.PROBE
    await breaker.release(Admission.PROBE)
    assert await breaker.admit() is Admission.PROBE  # released: the next call probes
    clock.now += 64
    assert await breaker.admit() is Admission.REJECTED
    clock.now += 1.5  # the lease (65 s) ran out: the probe's process is presumed gone
    assert await breaker.admit() is Admission.PROBE


async def test_late_results_of_ordinary_calls_do_not_decide(
    make_breaker: Any, clock: FakeClock
) -> None:
    breaker = make_breaker()
    await _fail(breaker, 5)
    await breaker.record_success(Admission.ALLOWED)  # a call admitted before it opened
    assert (await breaker.snapshot()).state is State.OPEN
    clock.now += 600
    assert await breaker.admit() is Admission.PROBE
    await breaker.record_failure(Admission.ALLOWED)
    assert (await breaker.snapshot()).state is State.HALF_OPEN


async def test_each_transition_is_logged_once(
    make_breaker: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llm_svc.circuit_breaker")
    breaker = make_breaker()
    await _fail(breaker, 5)
    for _ in range(3):
        await breaker.admit()
        await breaker.snapshot()
    clock.now += 600
    probe = await breaker.admit()
    await breaker.admit()
    await breaker.record_success(probe)
    await breaker.snapshot()
    messages = [
        r.getMessage() for r in caplog.records if "circuit breaker is now" in r.getMessage()
    ]
    assert messages == [
        "LLM circuit breaker is now open",
        "LLM circuit breaker is now half_open",
        "LLM circuit breaker is now closed",
    ]


async def test_replicas_sharing_redis_open_and_close_together(
    redis: aioredis.Redis, clock: FakeClock
) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    first, second = (RedisBreaker(redis, CONFIG, prefix, clock=clock) for _ in range(2))
    await _fail(first, 3)
    await _fail(second, 2)
    assert (await first.snapshot()).state is State.OPEN
    assert (await second.snapshot()).shared is True
    assert await second.admit() is Admission.REJECTED
    clock.now += 600
    assert await first.admit() is Admission.PROBE
    assert await second.admit() is Admission.REJECTED
    await first.record_success(Admission.PROBE)
    assert (await second.snapshot()).state is State.CLOSED


async def test_unreachable_redis_degrades_to_the_local_breaker(clock: FakeClock) -> None:
    redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    breaker = RedisBreaker(redis, CONFIG, "test:down", timeout=0.5, clock=clock)
    try:
        await _fail(breaker, 5)
        snapshot = await breaker.snapshot()
        assert snapshot.state is State.OPEN and snapshot.shared is False
        assert await breaker.admit() is Admission.REJECTED
    finally:
        await redis.aclose()
