"""The job queue: the whole Redis Streams protocol (enqueue, read, renew, reclaim, ack, requeue).

Also the cancel signal (a pub/sub channel), the consumer group and what the sweeper repairs. A
job's record names its current stream entry (`message_id`); that entry stays pending until the
job is terminal or handed back. Only the consumer holding an entry renews it (resets its idle
time); entries idle for longer than a lease are reclaimed by any worker. Ownership of the job
itself is the random per-delivery lease token in its record (DESIGN.md, "Queue ownership").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from datapilot_runtime.jobs.status import Status
from datapilot_runtime.jobs.store import (
    ACTIVE_INDEX_KEY,
    IDEMPOTENCY_KEY_PREFIX,
    JOB_KEY_PREFIX,
    PUBLISH_CHANGE_LUA,
    TENANT_INDEX_PREFIX,
    JobRecord,
    events_key,
)
from datapilot_runtime.jobs.store import CANCEL_CHANNEL as CANCEL_CHANNEL

STREAM_KEY = "dp:jobs:stream"
CONSUMER_GROUP = "dp-workers"
SWEEPER_LOCK_KEY = "dp:jobs:sweeper-lock"
# The cancel listener raises (and is resubscribed) when its link was silent this long.
CANCEL_SILENCE_SECONDS = 6.0
_StreamEntries = list[tuple[str, list[tuple[str, dict[str, str]]]]]

# KEYS[1] job hash, KEYS[2] stream, KEYS[3] the job's change feed. ARGV[1] lease token, ARGV[2]
# consumer group, ARGV[3] the stream entry to acknowledge. Puts a processing job held under the
# token back in the queue as a new stream entry (now its current one) and acknowledges the old one,
# atomically. Returns 1, or 0 if not held.
_REQUEUE_LUA = (
    PUBLISH_CHANGE_LUA
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' or
   redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then
  return 0
end
local id = redis.call('XADD', KEYS[2], '*', 'job_id', redis.call('HGET', KEYS[1], 'job_id'))
redis.call('HSET', KEYS[1], 'status', 'queued', 'lease_token', '', 'message_id', id)
redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
redis.call('XDEL', KEYS[2], ARGV[3])
publish_change(KEYS[1], KEYS[3])
return 1
"""
)

# KEYS[1] idempotency key ('' skips it), KEYS[2] job hash, KEYS[3] stream, KEYS[4] tenant index,
# KEYS[5] active index, KEYS[6] the job's change feed. ARGV[1] "jobId sha256" of the new job,
# ARGV[2] TTL seconds, ARGV[3] createdAt, ARGV[4] timeoutAt, ARGV[5..] the job's field/value pairs.
# Creates, indexes and enqueues the job (its stream entry recorded as its current delivery) unless
# the idempotency key already names one; returns the value stored under the key either way.
_CREATE_LUA = (
    PUBLISH_CHANGE_LUA
    + """
if KEYS[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return existing end
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
local job_id = string.match(ARGV[1], '^%S+')
redis.call('ZADD', KEYS[4], ARGV[3], job_id)
redis.call('ZADD', KEYS[5], ARGV[4], job_id)
local id = redis.call('XADD', KEYS[3], '*', 'job_id', job_id)
redis.call('HSET', KEYS[2], 'message_id', id)
publish_change(KEYS[2], KEYS[6])
return ARGV[1]
"""
)

# KEYS[1] stream. ARGV[1] consumer group, ARGV[2] consumer, ARGV[3..] entry ids. Resets the
# idle time of the entries `consumer` still holds (XCLAIM to itself) and of no other: an entry
# another worker reclaimed is not taken back. Returns the ids renewed.
_RENEW_LUA = """
local renewed = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    renewed[#renewed + 1] = ARGV[i]
  end
end
return renewed
"""

# KEYS[1] job hash, KEYS[2] its change feed. ARGV[1] the current entry the caller saw, ARGV[2] the
# new entry. Makes the new entry the job's delivery (queued, no lease) if the job is still
# non-terminal on the entry the caller saw to be lost. Returns 1, or 0 when the job moved on (the
# new entry is then a duplicate, acknowledged by whoever reads it).
_REENQUEUE_LUA = (
    PUBLISH_CHANGE_LUA
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if (status ~= 'queued' and status ~= 'processing') or
   redis.call('HGET', KEYS[1], 'message_id') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'lease_token', '', 'message_id', ARGV[2])
publish_change(KEYS[1], KEYS[2])
return 1
"""
)


@dataclass(frozen=True)
class Delivery:
    """A stream entry handed to this consumer: its id and the job it names."""

    message_id: str
    job_id: str


@dataclass(frozen=True)
class ActiveJob:
    """An entry of the index of non-terminal jobs: the job and its deadline (timeout_at)."""

    job_id: str
    timeout_at: float


def is_nogroup(exc: BaseException) -> bool:
    """Whether Redis refused a command because the consumer group (or its stream) is gone."""
    return isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP")


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
        self._create = client.register_script(_CREATE_LUA)
        self._renew = client.register_script(_RENEW_LUA)
        self._reenqueue = client.register_script(_REENQUEUE_LUA)
        # XAUTOCLAIM's cursor: each reclaim goes on where the last one stopped, so a dead
        # worker's entry behind many live ones is found too.
        self._reclaim_cursor = "0-0"

    async def submit(self, record: JobRecord) -> None:
        """Store a new queued job, index it and append it to the work stream, atomically."""
        await self._create_job("", record, 0)

    async def submit_idempotent(
        self, idempotency_key: str, record: JobRecord, ttl_seconds: int
    ) -> tuple[str, str]:
        """Submit `record` unless the key names a job already; returns (jobId, sha256)."""
        stored = await self._create_job(
            IDEMPOTENCY_KEY_PREFIX + idempotency_key, record, ttl_seconds
        )
        job_id, _, sha = stored.partition(" ")
        return job_id, sha

    async def _create_job(self, idempotency_key: str, record: JobRecord, ttl_seconds: int) -> str:
        fields: list[str] = []
        for key, value in record.to_hash().items():
            fields += [key, value]
        stored = await self._create(
            keys=[
                idempotency_key,
                JOB_KEY_PREFIX + record.job_id,
                STREAM_KEY,
                TENANT_INDEX_PREFIX + record.tenant,
                ACTIVE_INDEX_KEY,
                events_key(record.job_id),
            ],
            args=[
                f"{record.job_id} {record.sha256}",
                str(ttl_seconds),
                repr(record.created_at),
                repr(record.timeout_at),
                *fields,
            ],
        )
        return str(stored)

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

    async def renew(self, consumer: str, message_ids: list[str]) -> set[str]:
        """Renew the leases `consumer` still holds (their idle time); returns the ids renewed."""
        if not message_ids:
            return set()
        renewed = await self._renew(
            keys=[STREAM_KEY], args=[CONSUMER_GROUP, consumer, *message_ids]
        )
        return {str(message_id) for message_id in renewed}

    async def reclaim(self, consumer: str, idle_ms: int, count: int) -> list[Delivery]:
        """Take over up to `count` entries idle for `idle_ms` (XAUTOCLAIM): a lost worker's.

        Follows XAUTOCLAIM's cursor across calls. An entry whose stream record was deleted is
        acknowledged and not returned.
        """
        reply: Any = await self._redis.xautoclaim(
            STREAM_KEY, CONSUMER_GROUP, consumer, idle_ms, self._reclaim_cursor, count=count
        )
        self._reclaim_cursor = str(reply[0])
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

    async def release(self, delivery: Delivery) -> bool:
        """Acknowledge a delivery whose run ended, if nothing more can come of its entry.

        That is when the job is terminal or its record is gone, or when the entry is not the
        job's current delivery (a duplicate). An entry that is still the current delivery of a
        non-terminal job stays pending, for the reclaim of whoever holds it next: a worker that
        woke after losing its lease never drops the entry another worker holds. Each of those
        conditions, once true, stays true, so reading the record first is not racy.
        """
        data = cast(
            list[str | None],
            await self._redis.hmget(JOB_KEY_PREFIX + delivery.job_id, ["status", "message_id"]),
        )
        status, current = data
        if status is not None and not Status(status).terminal and current == delivery.message_id:
            return False
        await self.acknowledge(delivery.message_id)
        return True

    async def requeue(self, job_id: str, lease_token: str, message_id: str) -> bool:
        """Hand a job back to the queue (new stream entry, old one acknowledged), atomically."""
        return bool(
            await self._requeue(
                keys=[JOB_KEY_PREFIX + job_id, STREAM_KEY, events_key(job_id)],
                args=[lease_token, CONSUMER_GROUP, message_id],
            )
        )

    async def stats(self) -> QueueStats | None:
        """The consumer group's lag and pending counts, or None if it (or the stream) is missing."""
        try:
            groups: Any = await self._redis.xinfo_groups(STREAM_KEY)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return None
            raise
        for group in groups:
            if group.get("name") == CONSUMER_GROUP:
                return QueueStats(int(group.get("lag") or 0), int(group.get("pending") or 0))
        return None

    async def try_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """A short lock (SET NX PX) that expires by itself: no release, no stuck holder."""
        return bool(await self._redis.set(key, owner, nx=True, px=ttl_ms))

    async def active_jobs(self, page: int = 500) -> list[ActiveJob]:
        """Every entry of the non-terminal index, earliest deadline first (read in pages)."""
        found: list[ActiveJob] = []
        while True:
            rows = cast(
                list[tuple[str, float]],
                await self._redis.zrange(
                    ACTIVE_INDEX_KEY, len(found), len(found) + page - 1, withscores=True
                ),
            )
            found += [ActiveJob(job_id, score) for job_id, score in rows]
            if len(rows) < page:
                return found

    async def forget_active(self, job_ids: list[str]) -> None:
        """Drop terminal or vanished jobs from the non-terminal index."""
        if job_ids:
            await self._redis.zrem(ACTIVE_INDEX_KEY, *job_ids)

    async def entry_exists(self, message_id: str) -> bool:
        """Whether the stream still holds the entry (delivered or not: acknowledged ones go)."""
        return bool(await self._redis.xrange(STREAM_KEY, message_id, message_id, count=1))

    async def reenqueue(self, job_id: str, lost_message_id: str) -> bool:
        """Give a non-terminal job whose current entry is gone a new one; False if it moved on.

        The new entry is appended first and then made current by a compare-and-set on the job
        (two steps, each on one key): a crash between them leaves a duplicate entry, which its
        reader acknowledges.
        """
        new_id = await self._redis.xadd(STREAM_KEY, {"job_id": job_id})
        return bool(
            await self._reenqueue(
                keys=[JOB_KEY_PREFIX + job_id, events_key(job_id)],
                args=[lost_message_id, str(new_id)],
            )
        )

    async def cancellations(
        self, poll_seconds: float = 1.0, silence_seconds: float = CANCEL_SILENCE_SECONDS
    ) -> AsyncIterator[str]:
        """The ids of jobs as their cancellation is announced; raises RedisError on a lost link.

        The announcement itself is published by the job store's transition to cancelled, in the
        same Lua script, so a cancel is never stored without being announced. The listener
        PINGs its own connection and raises when nothing (not even a PONG) was heard for
        `silence_seconds`: a half-open connection is noticed instead of waited on forever.
        Pub/sub is the fast path only: the worker's heartbeat also sees a cancelled job.
        """
        loop = asyncio.get_running_loop()
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(CANCEL_CHANNEL)
            heard = pinged = loop.time()
            while True:
                now = loop.time()
                if now - heard > silence_seconds:
                    raise RedisTimeoutError("the cancel channel went silent")
                if now - pinged >= silence_seconds / 3:
                    await pubsub.ping("liveness")
                    pinged = now
                message = await pubsub.get_message(timeout=poll_seconds)
                if message is None:
                    continue
                heard = loop.time()
                if message.get("type") != "message":
                    continue  # a subscription confirmation or a PONG
                job_id, _, status = str(message["data"]).partition(" ")
                if status == Status.CANCELLED.value:
                    yield job_id
        finally:
            with contextlib.suppress(RedisError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
