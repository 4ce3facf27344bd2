"""Redis connections: decoded responses, bounded timeouts, keepalive, a ping to fail fast."""

from __future__ import annotations

import logging
import socket
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from datapilot_runtime.settings import RedisSettings

_LOGGER = logging.getLogger(__name__)
CONNECT_TIMEOUT_SECONDS = 5.0
# Longer than any blocking command we send (XREADGROUP blocks 0.5 s), short enough that a
# half-open connection (a peer gone without a FIN or RST) fails a command instead of hanging it.
SOCKET_TIMEOUT_SECONDS = 5.0
# A connection idle this long is PINGed before it is used again (pub/sub too: the cancel
# listener checks its link on every wait), so a dead one is noticed and replaced.
HEALTH_CHECK_INTERVAL_SECONDS = 5
# TCP keepalive: probes after 10 s idle, every 5 s, 3 unanswered ones end the connection.
_KEEPALIVE = {
    option: value
    for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if (option := getattr(socket, name, None)) is not None
}


async def connect_redis(
    url: str,
    *,
    socket_timeout: float = SOCKET_TIMEOUT_SECONDS,
    check: bool = True,
    tls_ca_file: str | None = None,
) -> aioredis.Redis:
    """A client for `url` that notices dead connections and retries them, checked with a PING.

    A rediss:// URL is TLS, verified against `tls_ca_file` (default: REDIS_TLS_CA_FILE, else
    the system's CAs); the certificate must name the host of the URL.
    """
    tls: dict[str, Any] = {}
    if url.startswith("rediss://"):
        ca = RedisSettings().redis_tls_ca_file if tls_ca_file is None else tls_ca_file
        tls = {"ssl_cert_reqs": "required", **({"ssl_ca_certs": ca} if ca else {})}
    client = aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        socket_keepalive_options=_KEEPALIVE,
        health_check_interval=HEALTH_CHECK_INTERVAL_SECONDS,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=5),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **tls,
    )
    if check:
        await client.ping()
        _LOGGER.info("connected to redis")
    return client
