"""Sliding-window circuit breaker of the LLM calls, per process or shared through Redis (Lua)."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import RedisError

from datapilot_runtime.redis_client import RedisClient
from llm_svc import metrics

_LOGGER = logging.getLogger(__name__)
Clock = Callable[[], float]


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_STATE_GAUGE = {State.CLOSED: 0, State.OPEN: 1, State.HALF_OPEN: 2}


class Admission(enum.Enum):
    """What the breaker lets a call do."""

    ALLOWED = "allowed"  # closed: call, with retries
    PROBE = "probe"  # half-open: this call is the one probe (a single attempt)
    REJECTED = "rejected"  # open, or half-open with a probe in flight: fallback at once


@dataclass(frozen=True)
class BreakerConfig:
    threshold: int = 5
    window: float = 300.0
    cooldown: float = 600.0
    probe_lease: float = 65.0


@dataclass(frozen=True)
class Snapshot:
    """The breaker as seen now; `half_open_at` (wall seconds) is set only while open."""

    state: State
    failures_in_window: int
    half_open_at: float | None
    shared: bool


class CircuitBreaker(Protocol):
    """Semantics shared by both implementations.

    Closed: every call is allowed; a failure is recorded with its time, and when
    `threshold` failures lie within the last `window` seconds the breaker opens.
    Open: every call is rejected until `cooldown` seconds have passed; then the first
    call that asks turns it half-open and becomes the one probe.
    Half-open: exactly one probe at a time (a probe holds a lease of `probe_lease`
    seconds, so a probe lost with its process frees the slot); probe success closes the
    breaker and forgets the failures, probe failure opens it for another cooldown, a
    cancelled probe gives the slot back. Successes of ordinary calls change nothing.
    """

    shared: bool

    async def admit(self) -> Admission: ...

    async def record_success(self, admission: Admission) -> None: ...

    async def record_failure(self, admission: Admission) -> None: ...

    async def release(self, admission: Admission) -> None: ...

    async def snapshot(self) -> Snapshot: ...


def _announce(transition: str, failures: int) -> None:
    """Log and count one transition (only the replica that made it calls this)."""
    state = State(transition)
    metrics.CIRCUIT_TRANSITIONS.labels(to=state.value).inc()
    metrics.CIRCUIT_STATE.set(_STATE_GAUGE[state])
    level = logging.INFO if state is not State.OPEN else logging.WARNING
    _LOGGER.log(
        level,
        "LLM circuit breaker is now %s",
        state.value,
        extra={"circuit_state": state.value, "failures_in_window": failures},
    )


class LocalBreaker:
    """The breaker of one process (asyncio: no await between read and write, so no lock)."""

    shared = False

    def __init__(self, config: BreakerConfig, clock: Clock = time.time) -> None:
        self._config = config
        self._clock = clock
        self._failures: deque[float] = deque()
        self._state = State.CLOSED
        self._half_open_at = 0.0
        self._probe_until = 0.0

    def _prune(self, now: float) -> None:
        while self._failures and self._failures[0] <= now - self._config.window:
            self._failures.popleft()

    def _to(self, state: State) -> None:
        self._state = state
        _announce(state.value, len(self._failures))

    async def admit(self) -> Admission:
        now = self._clock()
        if self._state is State.OPEN:
            if now < self._half_open_at:
                return Admission.REJECTED
            self._probe_until = 0.0
            self._to(State.HALF_OPEN)
        if self._state is State.HALF_OPEN:
            if self._probe_until > now:
                return Admission.REJECTED
            self._probe_until = now + self._config.probe_lease
            return Admission.PROBE
        return Admission.ALLOWED

    async def record_success(self, admission: Admission) -> None:
        if admission is Admission.PROBE and self._state is State.HALF_OPEN:
            self._failures.clear()
            self._probe_until = 0.0
            self._to(State.CLOSED)

    async def record_failure(self, admission: Admission) -> None:
        now = self._clock()
        self._prune(now)
        self._failures.append(now)
        if (admission is Admission.PROBE and self._state is State.HALF_OPEN) or (
            self._state is State.CLOSED and len(self._failures) >= self._config.threshold
        ):
            self._half_open_at = now + self._config.cooldown
            self._probe_until = 0.0
            self._to(State.OPEN)

    async def release(self, admission: Admission) -> None:
        if admission is Admission.PROBE and self._state is State.HALF_OPEN:
            self._probe_until = 0.0

    async def snapshot(self) -> Snapshot:
        now = self._clock()
        self._prune(now)
        state = self._state
        if state is State.OPEN and now >= self._half_open_at:
            state = State.HALF_OPEN
        half_open_at = self._half_open_at if state is State.OPEN else None
        return Snapshot(state, len(self._failures), half_open_at, shared=False)


# One script for every operation, so each is a single atomic step on the Redis server.
# KEYS: state hash, failures sorted set. ARGV: op, now, threshold, window, cooldown,
# probe lease, unique member, probe flag. Returns {state, failures, half_open_at,
# transition, admission}; numbers as strings (Lua numbers would be truncated to integers).
_LUA = """
local state_key, fail_key = KEYS[1], KEYS[2]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local cooldown = tonumber(ARGV[5])
local lease = tonumber(ARGV[6])
local member = ARGV[7]
local probe = ARGV[8] == '1'
redis.call('ZREMRANGEBYSCORE', fail_key, '-inf', now - window)
local fields = redis.call('HMGET', state_key, 'state', 'half_open_at', 'probe_until')
local state = fields[1] or 'closed'
local half_open_at = tonumber(fields[2]) or 0
local probe_until = tonumber(fields[3]) or 0
local transition = ''
local admission = ''
local function open()
  state = 'open'
  half_open_at = now + cooldown
  probe_until = 0
  transition = 'open'
end
if op == 'admit' then
  if state == 'open' then
    if now < half_open_at then
      admission = 'rejected'
    else
      state = 'half_open'
      probe_until = 0
      transition = 'half_open'
    end
  end
  if state == 'half_open' and admission == '' then
    if probe_until > now then
      admission = 'rejected'
    else
      probe_until = now + lease
      admission = 'probe'
    end
  end
  if admission == '' then admission = 'allowed' end
elseif op == 'success' then
  if probe and state == 'half_open' then
    redis.call('DEL', fail_key)
    state = 'closed'
    probe_until = 0
    transition = 'closed'
  end
elseif op == 'failure' then
  redis.call('ZADD', fail_key, now, member)
  redis.call('PEXPIRE', fail_key, math.ceil(window * 1000) + 1000)
  if probe and state == 'half_open' then
    open()
  elseif state == 'closed' and redis.call('ZCARD', fail_key) >= threshold then
    open()
  end
elseif op == 'release' then
  if probe and state == 'half_open' then probe_until = 0 end
end
if op ~= 'snapshot' then
  redis.call('HSET', state_key, 'state', state, 'half_open_at', tostring(half_open_at),
    'probe_until', tostring(probe_until))
elseif state == 'open' and now >= half_open_at then
  state = 'half_open'
end
return {state, tostring(redis.call('ZCARD', fail_key)), tostring(half_open_at), transition,
  admission}
"""


class RedisBreaker:
    """The breaker every replica shares: state in Redis, each operation one Lua call.

    Redis trouble never fails a request: while Redis does not answer (each call is bounded
    by `timeout`), the process falls back to its own local breaker and says so once.
    """

    shared = True

    def __init__(
        self,
        redis: RedisClient,
        config: BreakerConfig,
        prefix: str,
        *,
        timeout: float = 0.5,
        clock: Clock = time.time,
    ) -> None:
        self._redis = redis
        self._config = config
        self._timeout = timeout
        self._clock = clock
        tag = "{" + prefix + ":circuit}"
        self._keys = [f"{tag}:state", f"{tag}:failures"]
        self._script = redis.register_script(_LUA)
        self._local = LocalBreaker(config, clock)
        self._degraded = False

    async def _run(self, op: str, probe: bool = False) -> list[str] | None:
        config = self._config
        args: list[Any] = [
            op,
            repr(self._clock()),
            config.threshold,
            repr(config.window),
            repr(config.cooldown),
            repr(config.probe_lease),
            uuid.uuid4().hex,
            "1" if probe else "0",
        ]
        try:
            result = await asyncio.wait_for(self._script(keys=self._keys, args=args), self._timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            if not self._degraded:
                self._degraded = True
                _LOGGER.warning(
                    "shared circuit breaker unavailable (%s); using this replica's own breaker",
                    type(exc).__name__,
                )
            return None
        if self._degraded:
            self._degraded = False
            _LOGGER.info("shared circuit breaker reachable again")
        values = [str(v) for v in result]
        if values[3]:
            _announce(values[3], int(values[1]))
        return values

    async def admit(self) -> Admission:
        values = await self._run("admit")
        if values is None:
            return await self._local.admit()
        return Admission(values[4])

    async def record_success(self, admission: Admission) -> None:
        if await self._run("success", admission is Admission.PROBE) is None:
            await self._local.record_success(admission)

    async def record_failure(self, admission: Admission) -> None:
        if await self._run("failure", admission is Admission.PROBE) is None:
            await self._local.record_failure(admission)

    async def release(self, admission: Admission) -> None:
        if await self._run("release", admission is Admission.PROBE) is None:
            await self._local.release(admission)

    async def snapshot(self) -> Snapshot:
        values = await self._run("snapshot")
        if values is None:
            local = await self._local.snapshot()
            return Snapshot(local.state, local.failures_in_window, local.half_open_at, False)
        state = State(values[0])
        half_open_at = float(values[2]) if state is State.OPEN else None
        return Snapshot(state, int(values[1]), half_open_at, shared=True)
