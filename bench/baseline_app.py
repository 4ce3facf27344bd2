"""B1's baseline: a bare FastAPI endpoint that reads a job hash from Redis and returns it."""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI

from datapilot_runtime.jobs.keys import job_key

app = FastAPI()
_redis = aioredis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)


@app.get("/status")
async def status(jobId: str) -> dict[str, Any]:
    fields: dict[str, Any] = await _redis.hgetall(job_key(jobId))  # type: ignore[assignment]
    return fields
