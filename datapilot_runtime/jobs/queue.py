"""The job queue: the whole Redis Streams protocol (enqueue, read, renew, reclaim, ack, requeue).

Also the cancel signal (a pub/sub channel) and the consumer group. A job's stream entry stays
pending (unacknowledged) until the job is terminal or handed back; renewing resets its idle time,
and entries idle for longer than a lease are reclaimed by any worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from datapilot_runtime.jobs.status import Status
from datapilot_runtime.jobs.store import CANCEL_CHANNEL as CANCEL_CHANNEL
from datapilot_runtime.jobs.store import (
    IDEMPOTENCY_KEY_PREFIX,
    JOB_KEY_PREFIX,
    TENANT_INDEX_PREFIX,
    JobRecord,
)

STREAM_KEY = "dp:jobs:stream"
CONSUMER_GROUP = "dp-workers"
_StreamEntries = list[tuple[str, list[tuple[str, dict[str, str]]]]]

# KEYS[1] job hash, KEYS[2] stream. ARGV[1] lease token, ARGV[2] consumer group, ARGV[3] the
# stream entry to acknowledge. Puts a processing job held under the token back in the queue as a
# new stream entry and acknowledges the old one, atomically. Returns 1, or 0 if not held.
_REQUEUE_LUA = """
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' or
   redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'lease_token', '')
redis.call('XADD', KEYS[2], '*', 'job_id', redis.call('HGET', KEYS[1], 'job_id'))
redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
return 1
"""

# KEYS[1] idempotency key, KEYS[2] job hash, KEYS[3] stream, KEYS[4] tenant index. ARGV[1]
# "jobId sha256" of the new job, ARGV[2] TTL seconds, ARGV[3] createdAt, ARGV[4..] the job's
# field/value pairs. Creates, indexes and enqueues the job unless the key already names one;
# returns the value stored under the key either way.
_CREATE_IDEMPOTENT_LUA = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
local job_id = string.match(ARGV[1], '^%S+')
redis.call('ZADD', KEYS[4], ARGV[3], job_id)
redis.call('XADD', KEYS[3], '*', 'job_id', job_id)
return ARGV[1]
"""


@dataclass(frozen=True)
class Delivery:
    """A stream entry handed to this consumer: its id and the job it names."""

    message_id: str
    job_id: str


@dataclass(frozen=True)
class QueueStats:
    """The consumer group's backlog (never delivered) and pending (unacknowledged) counts."""

    lag: int
    pending: int


class JobQueue:
    """The work stream, its consumer group and the cancel channel."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._requeue = client.register_script(_REQUEUE_LUA)
        self._create_idempotent = client.register_script(_CREATE_IDEMPOTENT_LUA)

    async def submit(self, record: JobRecord) -> None:
        """Store a new queued job and append it to the work stream in one transaction."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(JOB_KEY_PREFIX + record.job_id, mapping=record.to_hash())  # type: ignore[arg-type]
            pipe.zadd(TENANT_INDEX_PREFIX + record.tenant, {record.job_id: record.created_at})
            pipe.xadd(STREAM_KEY, {"job_id": record.job_id})
            await pipe.execute()

    async def submit_idempotent(
        self, idempotency_key: str, record: JobRecord, ttl_seconds: int
    ) -> tuple[str, str]:
        """Submit `record` unless the key names a job already; returns (jobId, sha256)."""
        fields: list[str] = []
        for key, value in record.to_hash().items():
            fields += [key, value]
        stored = await self._create_idempotent(
            keys=[
                IDEMPOTENCY_KEY_PREFIX + idempotency_key,
                JOB_KEY_PREFIX + record.job_id,
                STREAM_KEY,
                TENANT_INDEX_PREFIX + record.tenant,
            ],
            args=[
                f"{record.job_id} {record.sha256}",
                str(ttl_seconds),
                repr(record.created_at),
                *fields,
            ],
        )
        job_id, _, sha = str(stored).partition(" ")
        return job_id, sha

    async def find_idempotent(self, idempotency_key: str) -> tuple[str, str] | None:
        """The (jobId, sha256) an idempotency key names, if any."""
        stored = await self._redis.get(IDEMPOTENCY_KEY_PREFIX + idempotency_key)
        if not stored:
            return None
        job_id, _, sha = str(stored).partition(" ")
        return job_id, sha

    async def ensure_group(self) -> None:
        """Create the consumer group (from the stream's start) if it does not exist yet."""
        try:
            await self._redis.xgroup_create(STREAM_KEY, CONSUMER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        """New entries for `consumer` (XREADGROUP), waiting up to `block_ms` for the first."""
        entries = await self._redis.xreadgroup(
            CONSUMER_GROUP, consumer, {STREAM_KEY: ">"}, count=count, block=block_ms
        )
        return [
            Delivery(message_id, fields.get("job_id", ""))
            for _stream, messages in cast(_StreamEntries, entries or [])
            for message_id, fields in messages
        ]

    async def renew(self, consumer: str, message_ids: list[str]) -> None:
        """Renew the leases of `consumer`'s entries: XCLAIM to itself resets their idle time."""
        if not message_ids:
            return
        ids: list[int | bytes | str | memoryview[int]] = list(message_ids)
        await self._redis.xclaim(STREAM_KEY, CONSUMER_GROUP, consumer, 0, ids, justid=True)

    async def reclaim(self, consumer: str, idle_ms: int, count: int) -> list[Delivery]:
        """Take over up to `count` entries idle for `idle_ms` (XAUTOCLAIM): a lost worker's.

        An entry whose stream record was trimmed away is acknowledged and not returned.
        """
        reply: Any = await self._redis.xautoclaim(
            STREAM_KEY, CONSUMER_GROUP, consumer, idle_ms, "0-0", count=count
        )
        found: list[Delivery] = []
        for message_id, fields in reply[1]:
            if fields is None:
                await self.acknowledge(message_id)
                continue
            found.append(Delivery(message_id, fields.get("job_id", "")))
        return found

    async def acknowledge(self, message_id: str) -> None:
        """Done with a stream entry: acknowledge it and delete it so the stream stays small."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(STREAM_KEY, CONSUMER_GROUP, message_id)
            pipe.xdel(STREAM_KEY, message_id)
            await pipe.execute()

    async def requeue(self, job_id: str, lease_token: str, message_id: str) -> bool:
        """Hand a job back to the queue (new stream entry, old one acknowledged), atomically."""
        return bool(
            await self._requeue(
                keys=[JOB_KEY_PREFIX + job_id, STREAM_KEY],
                args=[lease_token, CONSUMER_GROUP, message_id],
            )
        )

    async def stats(self) -> QueueStats | None:
        """The consumer group's lag and pending counts, or None if it does not exist yet."""
        groups: Any = await self._redis.xinfo_groups(STREAM_KEY)
        for group in groups:
            if group.get("name") == CONSUMER_GROUP:
                return QueueStats(int(group.get("lag") or 0), int(group.get("pending") or 0))
        return None

    async def cancellations(self) -> AsyncIterator[str]:
        """The ids of jobs as their cancellation is announced; raises RedisError on a lost link.

        The announcement itself is published by the job store's transition to cancelled, in the
        same Lua script, so a cancel is never stored without being announced.
        """
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(CANCEL_CHANNEL)
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                job_id, _, status = str(message["data"]).partition(" ")
                if status == Status.CANCELLED.value:
                    yield job_id
        finally:
            with contextlib.suppress(RedisError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
