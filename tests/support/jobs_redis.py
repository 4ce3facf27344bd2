"""Read-only peeks into the job store of a running stack (who holds a job, its raw fields)."""

from __future__ import annotations

import redis
from redis.cluster import RedisCluster

from datapilot_runtime.jobs.keys import job_key
from devstack.stack import Stack


def sync_redis(stack: Stack) -> redis.Redis | RedisCluster:
    """A blocking client of the stack's Redis (a cluster client when the stack runs on one)."""
    if stack.config.env.get("REDIS_CLUSTER", "").lower() == "true":
        return RedisCluster.from_url(stack.redis_url, decode_responses=True)
    return redis.Redis.from_url(stack.redis_url, decode_responses=True)


def job_fields(stack: Stack, job_id: str) -> dict[str, str]:
    client = sync_redis(stack)
    try:
        fields: dict[str, str] = client.hgetall(job_key(job_id))  # type: ignore[assignment]
        return fields
    finally:
        client.close()


def any_processing(stack: Stack, job_ids: list[str]) -> bool:
    """Whether one of the jobs is processing now (one client for all of them)."""
    client = sync_redis(stack)
    try:
        return any(client.hget(job_key(job_id), "status") == "processing" for job_id in job_ids)
    finally:
        client.close()


def holder_pid(stack: Stack, job_id: str) -> int | None:
    """The pid of the worker process whose lease the job is processing under."""
    fields = job_fields(stack, job_id)
    if fields.get("status") != "processing" or not fields.get("lease_owner"):
        return None
    return int(fields["lease_owner"].rsplit("-", 2)[-2])


def worker_name_by_pid(stack: Stack, pid: int) -> str | None:
    for name, process in stack.processes.items():
        if name.startswith("worker") and process.alive() and process.pid == pid:
            return name
    return None
