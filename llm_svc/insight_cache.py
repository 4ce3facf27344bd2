"""Redis cache of grounded LLM insights, keyed by KPI report, model and prompt version."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

from redis.exceptions import RedisError

from datapilot_runtime.redis_client import RedisClient
from llm_svc import metrics
from llm_svc.fallback import InsightDraft

_LOGGER = logging.getLogger(__name__)


def cache_key(prefix: str, report: dict[str, Any], model: str, prompt_version: str) -> str:
    """Same report (any key order), model and prompt version: same key."""
    canonical = json.dumps(
        {"report": report, "model": model, "prompt": prompt_version},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return f"{prefix}:insights:{hashlib.sha256(canonical.encode()).hexdigest()}"


class InsightCache:
    """Get/put with a TTL; a Redis problem is a miss (logged once per outage), never an error."""

    def __init__(self, redis: RedisClient, ttl_seconds: int, timeout: float) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._failing = False

    def _trouble(self, exc: BaseException) -> None:
        metrics.CACHE.labels(result="error").inc()
        if not self._failing:
            self._failing = True
            _LOGGER.warning("insight cache unavailable (%s); calling the LLM", type(exc).__name__)

    async def get(self, key: str) -> tuple[list[InsightDraft], int] | None:
        """(kept LLM insights, how many grounding dropped), or None on a miss."""
        try:
            raw = await asyncio.wait_for(self._redis.get(key), self._timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._trouble(exc)
            return None
        self._failing = False
        if raw is None:
            metrics.CACHE.labels(result="miss").inc()
            return None
        try:
            document = json.loads(raw)
            dropped = int(document["dropped"])
            drafts = [
                InsightDraft(
                    str(i["title"]),
                    str(i["text"]),
                    [str(e) for e in i["evidence"]],
                    str(i["severity"]),
                    str(i.get("type", "")),
                    str(i.get("key", "")),
                    float(i.get("score", 0.0)),
                )
                for i in document["insights"]
            ]
        except (ValueError, KeyError, TypeError):
            metrics.CACHE.labels(result="corrupt").inc()
            return None
        metrics.CACHE.labels(result="hit").inc()
        return drafts, dropped

    async def put(self, key: str, drafts: list[InsightDraft], dropped: int) -> None:
        value = json.dumps(
            {"insights": [vars(d) for d in drafts], "dropped": dropped}, ensure_ascii=False
        )
        try:
            await asyncio.wait_for(self._redis.set(key, value, ex=self._ttl), self._timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._trouble(exc)
