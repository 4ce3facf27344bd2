"""The job queue: the whole Redis Streams protocol (enqueue, read, renew, reclaim, ack, requeue).

Also the cancel signal (a pub/sub channel), the consumer group and what the sweeper repairs. A
job's record names its current stream entry (`message_id`); that entry stays pending until the
job is terminal or handed back. Only the consumer holding an entry renews it (resets its idle
time); entries idle for longer than a lease are reclaimed by any worker. Ownership of the job
itself is the random per-delivery lease token in its record (DESIGN.md, "Queue ownership").
The stream is JOB_STREAM_SHARDS streams (keys and hash tags: `datapilot_runtime.jobs.keys`);
a job's entries are always in its own shard, and workers read every shard.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from datapilot_runtime.jobs.keys import (
    CANCEL_CHANNEL,
    CONSUMER_GROUP,
    active_index_key,
    events_key,
    idempotency_key,
    job_key,
    job_sync_key,
    shard_of,
    shard_sync_key,
    stream_key,
    tenant_index_key,
    tenant_sync_key,
)
from datapilot_runtime.jobs.status import Status
from datapilot_runtime.jobs.store import PUBLISH_CHANGE_LUA, JobRecord, require_lease_token
from datapilot_runtime.redis_client import RedisClient

# The cancel listener raises (and is resubscribed) when its link was silent this long.
CANCEL_SILENCE_SECONDS = 6.0
# How long an upload (or cancel) waits for REDIS_WAIT_REPLICAS replicas to acknowledge it.
WAIT_TIMEOUT_MS = 2000
_SYNC_KEY_TTL_MS = 10_000
# JOB_RECORD_TTL_SECONDS' default (a new record gets it too: an orphan of a crashed upload goes).
DEFAULT_RECORD_TTL_SECONDS = 7 * 24 * 3600
_StreamEntries = list[tuple[str, list[tuple[str, dict[str, str]]]]]

# On a standalone Redis, creating a job and handing it back are one script each (all keys in
# one place). On a cluster every script touches the keys of one slot only (jobs.keys), and the
# steps that span a job, its tenant and its stream shard are ordered so that a crash between
# two of them leaves a state the sweeper repairs (docs/redis-cluster.md).

# Standalone only. KEYS[1] idempotency key ('' skips it), KEYS[2] job hash, KEYS[3] stream, KEYS[4]
# tenant index, KEYS[5] active index, KEYS[6] the job's change feed. ARGV[1] "jobId sha256" of the
# new job, ARGV[2] TTL seconds, ARGV[3] createdAt, ARGV[4] timeoutAt, ARGV[5..] the job's
# field/value pairs. Creates, indexes and enqueues the job (its stream entry recorded as its current
# delivery) unless the idempotency key already names one; returns the value stored under the key
# either way.
_CREATE_ATOMIC_LUA = (
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

# Standalone only. KEYS[1] job hash, KEYS[2] stream, KEYS[3] its change feed. ARGV[1] lease token,
# ARGV[2] consumer group, ARGV[3] the stream entry to acknowledge. Puts a processing job held under
# the token back in the queue as a new stream entry (now its current one) and acknowledges the old
# one, atomically. Returns 1, or 0 if not held.
_REQUEUE_ATOMIC_LUA = (
    PUBLISH_CHANGE_LUA
    + """
if ARGV[1] == '' then return 0 end
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

# KEYS[1] job hash. ARGV[1] TTL seconds, ARGV[2..] the job's field/value pairs. A new record,
# queued, with no delivery yet; the TTL removes it if the upload never gets further.
_CREATE_RECORD_LUA = """
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS[1] idempotency key, KEYS[2] tenant index (one tenant: one slot). ARGV[1] "jobId sha256"
# of the new job, ARGV[2] TTL seconds, ARGV[3] createdAt, ARGV[4] jobId. Claims the key for the
# new job and lists it for the tenant unless the key names another job already (or again this
# one: a re-sent call); returns the value stored under the key.
_CLAIM_IDEMPOTENCY_LUA = """
local existing = redis.call('GET', KEYS[1])
if existing and existing ~= ARGV[1] then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return ARGV[1]
"""

# KEYS[1] idempotency key. ARGV[1] "jobId sha256". Deletes the key if it names that job (an
# upload that failed after claiming it: a retry with the same key must not meet a dead job).
_RELEASE_IDEMPOTENCY_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# KEYS[1] job hash, KEYS[2] its change feed. ARGV[1] lease token, ARGV[2] the new stream entry. Puts
# a processing job held under the token back in the queue with the new entry as its current one.
# Returns 1, or 0 if not held (the caller then drops the new entry).
_REQUEUE_LUA = (
    PUBLISH_CHANGE_LUA
    + """
if ARGV[1] == '' then return 0 end
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' or
   redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'lease_token', '', 'message_id', ARGV[2])
publish_change(KEYS[1], KEYS[2])
return 1
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

# KEYS[1] job hash, KEYS[2] its change feed. ARGV[1] the current entry the caller saw ('' for none
# yet: a new job), ARGV[2] the new entry. Makes the new entry the job's delivery (queued, no lease)
# if the job is still non-terminal on the entry the caller saw. Returns 1, or 0 when the job moved
# on (the new entry is then a duplicate, acknowledged by whoever reads it).
_REENQUEUE_LUA = (
    PUBLISH_CHANGE_LUA
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if (status ~= 'queued' and status ~= 'processing') or
   (redis.call('HGET', KEYS[1], 'message_id') or '') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'lease_token', '', 'message_id', ARGV[2])
publish_change(KEYS[1], KEYS[2])
return 1
"""
)


class ReplicationLagging(RedisError):
    """Fewer replicas than REDIS_WAIT_REPLICAS acknowledged a write within WAIT_TIMEOUT_MS."""


@dataclass(frozen=True)
class Delivery:
    """A stream entry handed to this consumer: its id, the job it names and its shard."""

    message_id: str
    job_id: str
    shard: int = 0


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
    """The work stream (JOB_STREAM_SHARDS streams), its consumer group and the cancel channel.

    `wait_replicas` > 0: an upload (and a cancel) returns only once that many replicas of each
    master it wrote to acknowledged the writes (WAIT), else raises ReplicationLagging.
    """

    def __init__(
        self,
        client: RedisClient,
        shards: int = 1,
        *,
        wait_replicas: int = 0,
        record_ttl_seconds: int = DEFAULT_RECORD_TTL_SECONDS,
    ) -> None:
        self._redis = client
        self.shards = shards
        self._wait_replicas = wait_replicas
        self._record_ttl = record_ttl_seconds
        # A cluster client: multi-slot steps are split (see _create_job, requeue).
        self._cluster = isinstance(client, RedisCluster)
        self._create_atomic = client.register_script(_CREATE_ATOMIC_LUA)
        self._requeue_atomic = client.register_script(_REQUEUE_ATOMIC_LUA)
        self._create_record = client.register_script(_CREATE_RECORD_LUA)
        self._claim_idempotency = client.register_script(_CLAIM_IDEMPOTENCY_LUA)
        self._release_idempotency = client.register_script(_RELEASE_IDEMPOTENCY_LUA)
        self._requeue = client.register_script(_REQUEUE_LUA)
        self._renew = client.register_script(_RENEW_LUA)
        self._reenqueue = client.register_script(_REENQUEUE_LUA)
        # XAUTOCLAIM's cursor per shard: each reclaim goes on where the last one stopped, so a
        # dead worker's entry behind many live ones is found too.
        self._reclaim_cursors = ["0-0"] * shards
        # Where the next read and reclaim start (round-robin over the shards).
        self._next_shard = self._next_reclaim = 0

    def shard_of(self, job_id: str) -> int:
        return shard_of(job_id, self.shards)

    async def submit(self, record: JobRecord) -> None:
        """Store a new queued job, index it and append it to its shard's stream."""
        await self._create_job("", record, 0)

    async def submit_idempotent(
        self, digest: str, record: JobRecord, ttl_seconds: int
    ) -> tuple[str, str]:
        """Submit `record` unless the tenant's key names a job already; returns (jobId, sha256)."""
        stored = await self._create_job(idempotency_key(record.tenant, digest), record, ttl_seconds)
        job_id, _, sha = stored.partition(" ")
        return job_id, sha

    async def _create_job(self, idem_key: str, record: JobRecord, idem_ttl: int) -> str:
        """Create, index and enqueue a job (one script standalone), then WAIT if required."""
        if self._cluster:
            stored = await self._create_in_steps(idem_key, record, idem_ttl)
        else:
            fields: list[str] = []
            for key, value in record.to_hash().items():
                fields += [key, value]
            shard = self.shard_of(record.job_id)
            stored = str(
                await self._create_atomic(
                    keys=[
                        idem_key,
                        job_key(record.job_id),
                        stream_key(shard),
                        tenant_index_key(record.tenant),
                        active_index_key(shard),
                        events_key(record.job_id),
                    ],
                    args=[
                        f"{record.job_id} {record.sha256}",
                        str(idem_ttl),
                        repr(record.created_at),
                        repr(record.timeout_at),
                        *fields,
                    ],
                )
            )
        if stored.partition(" ")[0] == record.job_id:
            await self.wait_replicated(record.job_id, tenant=record.tenant)
        return stored

    async def _create_in_steps(self, idem_key: str, record: JobRecord, idem_ttl: int) -> str:
        """Create, index and enqueue a job in the order that lets the sweeper repair a crash.

        1. the record (queued, no delivery, with the record TTL): alone it is an orphan that
           expires; 2. the shard's active index: from now on the sweeper sees the job; 3. the
        idempotency key and the tenant index (one slot, one script); a lost race undoes 1-2;
        4. the stream entry, then the record names it (a compare-and-set: a worker may have
        claimed the entry already). A crash before 4 leaves a queued job without a delivery,
        which the sweeper enqueues. A Redis error after 1 removes what was written (best
        effort: the upload is refused, so no job should run for it).
        """
        job_id = record.job_id
        fields: list[str] = []
        for key, value in record.to_hash().items():
            fields += [key, value]
        await self._create_record(keys=[job_key(job_id)], args=[str(self._record_ttl), *fields])
        try:
            return await self._index_and_enqueue(idem_key, record, idem_ttl)
        except RedisError:
            with contextlib.suppress(RedisError):
                if idem_key:
                    await self._release_idempotency(
                        keys=[idem_key], args=[f"{job_id} {record.sha256}"]
                    )
                await self._undo_create(job_id)
            raise

    async def _undo_create(self, job_id: str) -> None:
        await self._redis.delete(job_key(job_id))
        await self._redis.zrem(active_index_key(self.shard_of(job_id)), job_id)

    async def _index_and_enqueue(self, idem_key: str, record: JobRecord, idem_ttl: int) -> str:
        job_id = record.job_id
        shard = self.shard_of(job_id)
        await self._redis.zadd(active_index_key(shard), {job_id: record.timeout_at})
        ours = f"{job_id} {record.sha256}"
        if idem_key:
            stored = str(
                await self._claim_idempotency(
                    keys=[idem_key, tenant_index_key(record.tenant)],
                    args=[ours, str(idem_ttl), repr(record.created_at), job_id],
                )
            )
            if stored != ours:  # a concurrent upload with the same key won
                await self._undo_create(job_id)
                return stored
        else:
            await self._redis.zadd(tenant_index_key(record.tenant), {job_id: record.created_at})
        entry = str(await self._redis.xadd(stream_key(shard), {"job_id": job_id}))
        await self._reenqueue(keys=[job_key(job_id), events_key(job_id)], args=["", entry])
        return ours

    async def wait_replicated(
        self, job_id: str, *, stream: bool = True, tenant: str | None = None
    ) -> None:
        """WAIT for `wait_replicas` replicas of the job's record (and of its shard's stream, and
        of the tenant's slot: its idempotency key and job list, so a retry after a failover
        finds the job rather than making a second one).

        WAIT counts the replicas that have every write this connection made, so each master is
        sent a write of its own (a short-lived key in the right slot) and WAIT in one pipeline
        (one connection); the replication stream is ordered, so that covers every earlier write
        to that master, whichever connection made it. Raises ReplicationLagging when too few.
        """
        if self._wait_replicas <= 0:
            return
        sync_keys = [job_sync_key(job_id)]
        if stream:
            sync_keys.append(shard_sync_key(self.shard_of(job_id)))
        if tenant is not None and self._cluster:  # standalone: one master, one WAIT covers it
            sync_keys.append(tenant_sync_key(tenant))
        for sync_key in sync_keys:
            acked = await self._wait_on(sync_key)
            if acked < self._wait_replicas:
                raise ReplicationLagging(
                    f"{acked} of {self._wait_replicas} replicas acknowledged within "
                    f"{WAIT_TIMEOUT_MS} ms"
                )

    async def _wait_on(self, sync_key: str) -> int:
        if isinstance(self._redis, RedisCluster):
            node = self._redis.get_node_from_key(sync_key)
            pipe: Any = self._redis.pipeline()
            pipe.set(sync_key, "1", px=_SYNC_KEY_TTL_MS)
            pipe.execute_command("WAIT", self._wait_replicas, WAIT_TIMEOUT_MS, target_nodes=node)
        else:
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(sync_key, "1", px=_SYNC_KEY_TTL_MS)
            pipe.execute_command("WAIT", self._wait_replicas, WAIT_TIMEOUT_MS)
        replies = await pipe.execute()
        return int(replies[-1])

    async def find_idempotent(self, tenant: str, digest: str) -> tuple[str, str] | None:
        """The (jobId, sha256) the tenant's idempotency key names, if any."""
        stored = await self._redis.get(idempotency_key(tenant, digest))
        if not stored:
            return None
        job_id, _, sha = str(stored).partition(" ")
        return job_id, sha

    async def ensure_group(self) -> None:
        """Create the consumer group of every shard (from its start) where it does not exist."""
        for shard in range(self.shards):
            try:
                await self._redis.xgroup_create(
                    stream_key(shard), CONSUMER_GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        """New entries for `consumer` (XREADGROUP per shard), waiting up to `block_ms` in all.

        Shards are read round-robin from a rotating start; each read blocks for its share of
        `block_ms` until something was found, the rest then do not block.
        """
        found: list[Delivery] = []
        start = self._next_shard
        self._next_shard = (start + 1) % self.shards
        block = max(1, block_ms // self.shards)
        for offset in range(self.shards):
            shard = (start + offset) % self.shards
            entries = await self._redis.xreadgroup(
                CONSUMER_GROUP,
                consumer,
                {stream_key(shard): ">"},
                count=count - len(found),
                block=None if found else block,
            )
            found += [
                Delivery(message_id, fields.get("job_id", ""), shard)
                for _stream, messages in cast(_StreamEntries, entries or [])
                for message_id, fields in messages
            ]
            if len(found) >= count:
                break
        return found

    async def renew(self, consumer: str, deliveries: list[Delivery]) -> set[str]:
        """Renew the leases `consumer` still holds (their idle time); returns the ids renewed."""
        renewed: set[str] = set()
        for shard in sorted({d.shard for d in deliveries}):
            ids = [d.message_id for d in deliveries if d.shard == shard]
            replies = await self._renew(
                keys=[stream_key(shard)], args=[CONSUMER_GROUP, consumer, *ids]
            )
            renewed |= {str(message_id) for message_id in replies}
        return renewed

    async def reclaim(self, consumer: str, idle_ms: int, count: int) -> list[Delivery]:
        """Take over up to `count` entries idle for `idle_ms` (XAUTOCLAIM): a lost worker's.

        Follows XAUTOCLAIM's cursor of each shard across calls, starting at the next shard each
        time (no shard starves the others). An entry whose stream record was deleted is
        acknowledged and not returned.
        """
        found: list[Delivery] = []
        start = self._next_reclaim
        self._next_reclaim = (start + 1) % self.shards
        for shard in [(start + offset) % self.shards for offset in range(self.shards)]:
            if len(found) >= count:
                break
            reply: Any = await self._redis.xautoclaim(
                stream_key(shard),
                CONSUMER_GROUP,
                consumer,
                idle_ms,
                self._reclaim_cursors[shard],
                count=count - len(found),
            )
            self._reclaim_cursors[shard] = str(reply[0])
            for message_id, fields in reply[1]:
                if fields is None:
                    await self.acknowledge(Delivery(message_id, "", shard))
                    continue
                found.append(Delivery(message_id, fields.get("job_id", ""), shard))
        return found

    async def acknowledge(self, delivery: Delivery) -> None:
        """Done with a stream entry: acknowledge it and delete it so the stream stays small."""
        stream = stream_key(delivery.shard)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(stream, CONSUMER_GROUP, delivery.message_id)
            pipe.xdel(stream, delivery.message_id)
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
            await self._redis.hmget(job_key(delivery.job_id), ["status", "message_id"]),
        )
        status, current = data
        if status is not None and not Status(status).terminal and current == delivery.message_id:
            return False
        await self.acknowledge(delivery)
        return True

    async def requeue(self, job_id: str, lease_token: str, message_id: str) -> bool:
        """Hand a job back to the queue: a new stream entry becomes its delivery, the old goes.

        One script standalone. On a cluster three steps (the record and the stream are in two
        slots): append, compare-and-set the record, acknowledge the entry that lost. A crash
        after the append leaves a duplicate (acknowledged by its reader) and the old entry
        pending (reclaimed after a lease); a crash after the compare-and-set leaves the old
        entry a duplicate.
        """
        require_lease_token(lease_token)
        shard = self.shard_of(job_id)
        if not self._cluster:
            return bool(
                await self._requeue_atomic(
                    keys=[job_key(job_id), stream_key(shard), events_key(job_id)],
                    args=[lease_token, CONSUMER_GROUP, message_id],
                )
            )
        new_id = str(await self._redis.xadd(stream_key(shard), {"job_id": job_id}))
        held = bool(
            await self._requeue(
                keys=[job_key(job_id), events_key(job_id)], args=[lease_token, new_id]
            )
        )
        await self.acknowledge(Delivery(message_id if held else new_id, job_id, shard))
        return held

    async def stats(self) -> QueueStats | None:
        """The consumer groups' lag and pending counts over all shards, or None if one of them
        (or its stream) is missing."""
        lag = pending = 0
        for shard in range(self.shards):
            try:
                groups: Any = await self._redis.xinfo_groups(stream_key(shard))
            except ResponseError as exc:
                if "no such key" in str(exc).lower():
                    return None
                raise
            group = next((g for g in groups if g.get("name") == CONSUMER_GROUP), None)
            if group is None:
                return None
            lag += int(group.get("lag") or 0)
            pending += int(group.get("pending") or 0)
        return QueueStats(lag, pending)

    async def try_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """A short lock (SET NX PX) that expires by itself: no release, no stuck holder."""
        return bool(await self._redis.set(key, owner, nx=True, px=ttl_ms))

    async def active_jobs(self, page: int = 500) -> list[ActiveJob]:
        """Every entry of the shards' non-terminal indexes, earliest deadline first (in pages)."""
        found: list[ActiveJob] = []
        for shard in range(self.shards):
            start = 0
            while True:
                rows = cast(
                    list[tuple[str, float]],
                    await self._redis.zrange(
                        active_index_key(shard), start, start + page - 1, withscores=True
                    ),
                )
                found += [ActiveJob(job_id, score) for job_id, score in rows]
                start += len(rows)
                if len(rows) < page:
                    break
        return sorted(found, key=lambda job: job.timeout_at)

    async def forget_active(self, job_ids: list[str]) -> None:
        """Drop terminal or vanished jobs from the non-terminal indexes."""
        for shard in sorted({self.shard_of(job_id) for job_id in job_ids}):
            mine = [job_id for job_id in job_ids if self.shard_of(job_id) == shard]
            await self._redis.zrem(active_index_key(shard), *mine)

    async def entry_exists(self, job_id: str, message_id: str) -> bool:
        """Whether the job's shard still holds the entry (delivered or not: acknowledged go)."""
        stream = stream_key(self.shard_of(job_id))
        return bool(await self._redis.xrange(stream, message_id, message_id, count=1))

    async def reenqueue(self, job_id: str, lost_message_id: str) -> bool:
        """Give a non-terminal job whose current entry is gone a new one; False if it moved on.

        `lost_message_id` '' is a job that never got an entry (its upload stopped after step 3
        of the creation). The new entry is appended first and then made current by a
        compare-and-set on the job (two steps, each on one key): a crash between them leaves a
        duplicate entry, which its reader acknowledges.
        """
        new_id = await self._redis.xadd(stream_key(self.shard_of(job_id)), {"job_id": job_id})
        return bool(
            await self._reenqueue(
                keys=[job_key(job_id), events_key(job_id)], args=[lost_message_id, str(new_id)]
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
