"""Redis connections: decoded responses, bounded timeouts, a ping to fail fast at start."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

_LOGGER = logging.getLogger(__name__)


async def connect_redis(url: str) -> aioredis.Redis:
    """A client for `url` that retries broken connections, checked with a PING."""
    client = aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=5),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    await client.ping()
    _LOGGER.info("connected to redis")
    return client
