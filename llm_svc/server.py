"""Builds and runs the llm_svc gRPC server until SIGTERM: client, breaker, cache, servicer."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc
from redis.exceptions import RedisError

from datapilot_runtime.grpc_host import GrpcHost
from datapilot_runtime.metrics import start_metrics_server
from datapilot_runtime.redis_client import RedisClient, connect_redis
from llm_svc.circuit_breaker import (
    BreakerConfig,
    CircuitBreaker,
    Clock,
    LocalBreaker,
    RedisBreaker,
)
from llm_svc.insight_cache import InsightCache
from llm_svc.llm_client import LlmClient
from llm_svc.servicer import LlmServicer
from llm_svc.settings import LlmSettings

_LOGGER = logging.getLogger(__name__)
REDIS_CONNECT_TIMEOUT_SECONDS = 5.0


class StartupError(RuntimeError):
    """llm_svc cannot start with these settings."""


@dataclass
class LlmService:
    """A built (not yet started) llm_svc and what it must release when it stops."""

    host: GrpcHost
    servicer: LlmServicer
    client: LlmClient | None
    redis: RedisClient | None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        if self.redis is not None:
            await self.redis.aclose()


async def _optional_redis(settings: LlmSettings, needed: bool, wanted: bool) -> RedisClient | None:
    """Redis for the shared breaker (needed: fail fast) or the cache (wanted: optional)."""
    if not (needed or wanted):
        return None
    try:
        return await asyncio.wait_for(
            connect_redis(settings.redis_url, cluster=settings.redis_cluster),
            REDIS_CONNECT_TIMEOUT_SECONDS,
        )
    except (RedisError, OSError, TimeoutError) as exc:
        if needed:
            raise StartupError(
                f"LLM_CIRCUIT_SHARED=true but Redis is unreachable ({type(exc).__name__})"
            ) from exc
        _LOGGER.warning("Redis unreachable (%s): the insight cache is disabled", type(exc).__name__)
        return None


async def build(settings: LlmSettings, *, wall_clock: Clock = time.time) -> LlmService:
    """Everything llm_svc needs, from its settings; raises StartupError on a bad set-up."""
    client = None
    if settings.openrouter_api_key.get_secret_value():
        client = LlmClient(settings)
        _LOGGER.info("LLM configured: model %s", settings.llm_model)
    else:
        _LOGGER.info("no OPENROUTER_API_KEY: insights come from the deterministic fallback")
    cache_wanted = client is not None and settings.llm_cache_ttl_seconds > 0
    redis = await _optional_redis(settings, settings.llm_circuit_shared, cache_wanted)
    config = BreakerConfig(
        threshold=settings.llm_circuit_threshold,
        window=settings.llm_circuit_window,
        cooldown=settings.llm_circuit_cooldown,
        probe_lease=settings.probe_lease_seconds(),
    )
    breaker: CircuitBreaker
    if settings.llm_circuit_shared and redis is not None:
        breaker = RedisBreaker(
            redis,
            config,
            settings.llm_redis_prefix,
            timeout=settings.llm_redis_timeout_seconds,
            clock=wall_clock,
        )
    else:
        breaker = LocalBreaker(config, wall_clock)
    cache = None
    if cache_wanted and redis is not None:
        cache = InsightCache(
            redis, settings.llm_cache_ttl_seconds, settings.llm_redis_timeout_seconds
        )
    _LOGGER.info(
        "circuit breaker: %d failures in %.0fs open it for %.0fs (%s); insight cache %s",
        config.threshold,
        config.window,
        config.cooldown,
        "shared in Redis" if breaker.shared else "per process",
        f"on (ttl {settings.llm_cache_ttl_seconds}s)" if cache else "off",
    )
    servicer = LlmServicer(
        client,
        settings.llm_model,
        breaker,
        cache,
        cache_prefix=settings.llm_redis_prefix,
        insights_max=settings.insights_max,
    )
    host = GrpcHost(
        "llm_svc",
        settings.grpc_listen_addr,
        settings.grpc_shutdown_grace_seconds,
        internal_token=settings.internal_auth_token.get_secret_value(),
        transport=settings,
    )
    host.add_service(
        llm_pb2.DESCRIPTOR.services_by_name["LlmService"].full_name,
        lambda server: llm_pb2_grpc.add_LlmServiceServicer_to_server(servicer, server),
    )
    return LlmService(host, servicer, client, redis)


async def serve(settings: LlmSettings) -> None:
    service = await build(settings)
    start_metrics_server(settings.metrics_host, settings.metrics_port)
    service.host.install_signal_handlers()
    try:
        await service.host.start()
        redis = service.redis
        if settings.llm_circuit_shared and redis is not None:
            service.host.watch_readiness({"redis": redis.ping})
        else:
            service.host.watch_readiness({})  # Redis is optional: always ready
        await service.host.wait_for_stop()
    finally:
        await service.host.stop()
        await service.close()
