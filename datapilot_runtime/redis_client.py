"""Redis connections: decoded responses, bounded timeouts, keepalive, a ping to fail fast.

With REDIS_CLUSTER the client is redis-py's cluster client, REDIS_URL naming one seed node: it
learns the slot map from it and follows MOVED/ASK and failovers by itself.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any, TypeAlias

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

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


_REDIS_PACKAGE = Path(redis.__file__).resolve().parent


def redis_fault(exc: BaseException) -> bool:
    """Whether `exc` is a failure of Redis (or of the link to it), not a bug of ours.

    A RedisError; or any other exception raised while redis-py was running (its frames are in
    the traceback): 8.1's asyncio clients can lose a connection's reader or writer to a
    concurrent disconnect, let a socket error or timeout escape unwrapped, or trip over a slot
    map they are refreshing (seen while a cluster master died). Each is handled as a lost
    connection (503 store_unavailable, retried), never as a 500.
    """
    if isinstance(exc, RedisError):
        return True
    if not isinstance(exc, Exception):
        return False
    frame = exc.__traceback__
    while frame is not None:
        if Path(frame.tb_frame.f_code.co_filename).resolve().is_relative_to(_REDIS_PACKAGE):
            return True
        frame = frame.tb_next
    return False


# A standalone Redis or a cluster: the commands the job system sends are the same on both.
RedisClient: TypeAlias = aioredis.Redis | RedisCluster


async def connect_redis(
    url: str,
    *,
    cluster: bool = False,
    socket_timeout: float = SOCKET_TIMEOUT_SECONDS,
    check: bool = True,
    tls_ca_file: str | None = None,
) -> RedisClient:
    """A client for `url` that notices dead connections and retries them, checked with a PING.

    `cluster`: `url` is a seed node of a Redis Cluster (the client discovers the others). A
    rediss:// URL is TLS, verified against `tls_ca_file` (default: REDIS_TLS_CA_FILE, else the
    system's CAs); the certificate must name the host of the URL.
    """
    tls: dict[str, Any] = {}
    if url.startswith("rediss://"):
        ca = RedisSettings().redis_tls_ca_file if tls_ca_file is None else tls_ca_file
        tls = {"ssl_cert_reqs": "required", **({"ssl_ca_certs": ca} if ca else {})}
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": socket_timeout,
        "socket_keepalive": True,
        "socket_keepalive_options": _KEEPALIVE,
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        # On a cluster a failed attempt also refreshes the slot map, so the retries outlast
        # a failover (a replica promoted within the cluster's node timeout).
        "retry": Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=5),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        # Off: its handshake on every new connection can fail with an AttributeError inside
        # redis-py 8.1 when the connection drops meanwhile (seen while a cluster master died),
        # which escapes as a 500 instead of a retryable RedisError. Only managed Redis offerings
        # send these notifications anyway.
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
        **tls,
    }
    client: RedisClient = (
        RedisCluster.from_url(url, **options)
        if cluster
        else aioredis.Redis.from_url(url, **options)
    )
    if check:
        await client.ping()
        _LOGGER.info("connected to redis", extra={"cluster": cluster})
    return client
