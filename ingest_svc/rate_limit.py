"""Per-tenant rate limit: a token bucket in Redis, charged once per gateway request."""

from __future__ import annotations

import logging
import math
import time

from redis.exceptions import RedisError

from datapilot_runtime.context import (
    QUOTA_METADATA_KEY,
    RETRY_AFTER_METADATA_KEY,
    TENANT_METADATA_KEY,
)
from datapilot_runtime.error_codes import ErrorCode
from datapilot_runtime.interceptors import Rejection
from datapilot_runtime.jobs.keys import rate_limit_key
from datapilot_runtime.redis_client import RedisClient
from ingest_svc.metrics import RATE_LIMITED

_LOGGER = logging.getLogger(__name__)

# KEYS[1] bucket. ARGV[1] capacity, ARGV[2] refill per second, ARGV[3] now (s).
# Returns {1, 0} when a token was taken, {0, seconds until one is available} otherwise.
_TAKE_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(wait)}
"""


class TenantRateLimit:
    """`per_minute` requests a minute per tenant, with bursts up to `per_minute`."""

    def __init__(self, client: RedisClient, per_minute: int) -> None:
        self._per_minute = per_minute
        self._take = client.register_script(_TAKE_LUA)

    @property
    def enabled(self) -> bool:
        """Whether requests are limited (RATE_LIMIT_PER_MINUTE is not 0)."""
        return self._per_minute > 0

    async def __call__(self, method: str, metadata: dict[str, str]) -> Rejection | None:
        if metadata.get(QUOTA_METADATA_KEY) != "1":
            return None
        return await self.charge(metadata.get(TENANT_METADATA_KEY, ""))

    async def charge(self, tenant: str, *, final: bool = True) -> Rejection | None:
        """Take one of `tenant`'s tokens: None when taken (or not limited), else the refusal.

        `final=False`: a refusal the caller passes on to another charge (GetJobs leaves the
        read to GetJob), so it is not counted as a limited request here.
        """
        if self._per_minute <= 0:
            return None
        try:
            allowed, wait = await self._take(
                keys=[rate_limit_key(tenant)],
                args=[str(self._per_minute), repr(self._per_minute / 60), repr(time.time())],
            )
        except RedisError:
            _LOGGER.warning("rate limit unavailable (redis); letting the request through")
            return None
        if int(allowed):
            return None
        if final:
            RATE_LIMITED.inc()
        retry_after = max(1, math.ceil(float(wait)))
        return Rejection(
            ErrorCode.RATE_LIMITED,
            f"Rate limit of {self._per_minute} requests a minute reached; "
            f"retry in {retry_after} s.",
            ((RETRY_AFTER_METADATA_KEY, str(retry_after)),),
        )
