"""Job records in Redis: atomic state transitions (Lua), claims, progress, tenant listing.

Creating a job enqueues it, so creation lives with the queue (`datapilot_runtime.jobs.queue`).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from datapilot_runtime.jobs.keys import CANCEL_CHANNEL, events_key, job_key, tenant_index_key

# Re-exported: the store's callers name states with the records they read.
from datapilot_runtime.jobs.status import ACTIVE as ACTIVE
from datapilot_runtime.jobs.status import Status as Status
from datapilot_runtime.redis_client import RedisClient

LIST_SCAN_BATCH = 100
LIST_SCAN_LIMIT = 1000
# A job's change feed (live job events): a short-lived stream of snapshots of its record, one
# entry per transition or progress change, appended by the same Lua script that makes the
# change. Its entry ids are the event ids clients resume from (Last-Event-ID).
# Ample for one job's changes (a few transitions and a progress step per phase).
EVENTS_MAXLEN = 64
# Renewed on every change: the feed outlives the job's last change by this long.
EVENTS_TTL_SECONDS = 3600


# Appended to the scripts that change a job: `publish_change(job_key, events_key)` adds a
# snapshot of the whole record to the job's feed and renews the feed's expiry.
PUBLISH_CHANGE_LUA = f"""
local function publish_change(job_key, feed_key)
  redis.call('XADD', feed_key, 'MAXLEN', '{EVENTS_MAXLEN}', '*',
    unpack(redis.call('HGETALL', job_key)))
  redis.call('EXPIRE', feed_key, '{EVENTS_TTL_SECONDS}')
end
"""


# KEYS[1] job hash, KEYS[2] its change feed. ARGV[1] comma-separated allowed current states, ARGV[2]
# new state, ARGV[3] TTL seconds to set when the new state is terminal (0 = none), ARGV[4] pub/sub
# channel to announce the new state on ("" = none), ARGV[5] lease token the job must be held under
# ("" = any), ARGV[6..] field/value pairs to set. Returns {1, new} on success (or when the job is
# already in the new state under this very lease token), {0, current} when refused, {-1, ""} when
# the job does not exist.
_TRANSITION_LUA = (
    PUBLISH_CHANGE_LUA
    + """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {-1, ''} end
local token = redis.call('HGET', KEYS[1], 'lease_token')
-- Already done under this lease: the same call, re-sent after a lost reply.
if current == ARGV[2] and ARGV[5] ~= '' and token == ARGV[5] then return {1, current} end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == current then allowed = true end
end
if not allowed then return {0, current} end
if ARGV[5] ~= '' and token ~= ARGV[5] then return {0, current} end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if ARGV[2] == 'completed' then redis.call('HSET', KEYS[1], 'progress', '100') end
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[4], redis.call('HGET', KEYS[1], 'job_id') .. ' ' .. ARGV[2])
end
publish_change(KEYS[1], KEYS[2])
return {1, ARGV[2]}
"""
)

# KEYS[1] job hash, KEYS[2] its change feed. ARGV[1] the delivery's random lease token, ARGV[2] max
# attempts, ARGV[3] '1' to take over a job left processing by a lost worker, ARGV[4] now (Unix
# seconds), ARGV[5] the consumer claiming it, ARGV[6] the stream entry delivering it. Returns {1,
# attempt} when claimed (or already claimed under this very token: a claim re-sent after a lost
# reply is ours), {0, status} when not claimable, {2, attempt} when the job has used all its
# attempts, {-1, ''} when it does not exist. A take-over needs the job's current entry: a stale
# duplicate entry of a processing job never takes it from its holder.
_CLAIM_LUA = (
    PUBLISH_CHANGE_LUA
    + """
if ARGV[1] == '' then return redis.error_reply('empty lease token') end
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {-1, ''} end
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
if status == 'processing' and redis.call('HGET', KEYS[1], 'lease_token') == ARGV[1] then
  return {1, tostring(attempt)}
end
local current = redis.call('HGET', KEYS[1], 'message_id')
local takes_over = status == 'processing' and ARGV[3] == '1' and current == ARGV[6]
if status ~= 'queued' and not takes_over then return {0, status} end
if attempt >= tonumber(ARGV[2]) then return {2, tostring(attempt)} end
attempt = attempt + 1
redis.call('HSET', KEYS[1], 'status', 'processing', 'lease_token', ARGV[1],
  'attempt', tostring(attempt), 'lease_owner', ARGV[5], 'message_id', ARGV[6])
local started = redis.call('HGET', KEYS[1], 'started_at')
if not started or started == '' then redis.call('HSET', KEYS[1], 'started_at', ARGV[4]) end
publish_change(KEYS[1], KEYS[2])
return {1, tostring(attempt)}
"""
)

# KEYS[1] job hash, KEYS[2] its change feed, ARGV[1] progress. Raises progress only, only while
# processing.
_PROGRESS_LUA = (
    PUBLISH_CHANGE_LUA
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' then return 0 end
local old = tonumber(redis.call('HGET', KEYS[1], 'progress') or '0')
local new = tonumber(ARGV[1])
if new > old then
  redis.call('HSET', KEYS[1], 'progress', ARGV[1])
  publish_change(KEYS[1], KEYS[2])
  return 1
end
return 0
"""
)


# KEYS[1] job hash, ARGV[1] now. Sets stopped_at on an existing record only.
_MARK_STOPPED_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'stopped_at', ARGV[1])
return 1
"""


def require_lease_token(token: str) -> None:
    """Refuse an empty lease token: it would match a record that holds none (fail closed)."""
    if not token:
        raise ValueError("an empty lease token fences nothing")


@dataclass
class JobRecord:
    """A job as stored: timestamps are Unix seconds, strings are '' when unset."""

    job_id: str
    status: Status
    progress: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    timeout_at: float = 0.0
    result_url: str = ""
    error: str = ""
    error_message: str = ""
    attempt: int = 0
    filename: str = ""
    size_bytes: int = 0
    sha256: str = ""
    tenant: str = ""
    content_type: str = ""
    input_key: str = ""
    lease_token: str = ""
    # The consumer holding the lease, and the stream entry of the job's current delivery.
    lease_owner: str = ""
    message_id: str = ""
    stopped_at: float | None = None
    request_id: str = ""
    # Canonical JSON of the upload's analysis options (report/options.py), '' for none.
    options_json: str = ""
    # The upload's W3C trace context: the worker's spans join the upload's trace ('' for none).
    traceparent: str = ""

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> JobRecord:
        def opt_float(key: str) -> float | None:
            value = data.get(key, "")
            return float(value) if value else None

        return cls(
            job_id=data["job_id"],
            status=Status(data["status"]),
            progress=int(data.get("progress", "0") or 0),
            created_at=float(data.get("created_at", "0") or 0),
            started_at=opt_float("started_at"),
            finished_at=opt_float("finished_at"),
            timeout_at=float(data.get("timeout_at", "0") or 0),
            result_url=data.get("result_url", ""),
            error=data.get("error", ""),
            error_message=data.get("error_message", ""),
            attempt=int(data.get("attempt", "0") or 0),
            filename=data.get("filename", ""),
            size_bytes=int(data.get("size_bytes", "0") or 0),
            sha256=data.get("sha256", ""),
            tenant=data.get("tenant", ""),
            content_type=data.get("content_type", ""),
            input_key=data.get("input_key", ""),
            lease_token=data.get("lease_token", ""),
            lease_owner=data.get("lease_owner", ""),
            message_id=data.get("message_id", ""),
            stopped_at=opt_float("stopped_at"),
            request_id=data.get("request_id", ""),
            options_json=data.get("options_json", ""),
            traceparent=data.get("traceparent", ""),
        )

    def to_hash(self) -> dict[str, str]:
        return {
            "job_id": self.job_id,
            "status": self.status.value,
            "progress": str(self.progress),
            "created_at": repr(self.created_at),
            "timeout_at": repr(self.timeout_at),
            "attempt": str(self.attempt),
            "filename": self.filename,
            "size_bytes": str(self.size_bytes),
            "sha256": self.sha256,
            "tenant": self.tenant,
            "content_type": self.content_type,
            "input_key": self.input_key,
            "request_id": self.request_id,
            "options_json": self.options_json,
            "traceparent": self.traceparent,
        }

    @property
    def timed_out(self) -> bool:
        return self.status in ACTIVE and time.time() >= self.timeout_at


class ClaimOutcome(enum.Enum):
    """What a claim attempt found."""

    CLAIMED = "claimed"
    NOT_CLAIMABLE = "not_claimable"
    EXHAUSTED = "exhausted"
    MISSING = "missing"


@dataclass(frozen=True)
class Claim:
    """Outcome of a claim; `attempt` is the delivery number now running (or used up)."""

    outcome: ClaimOutcome
    attempt: int = 0
    status: Status | None = None


@dataclass(frozen=True)
class TransitionResult:
    """Outcome of a compare-and-set: applied or not, and the state the job is in now."""

    applied: bool
    status: Status | None


@dataclass(frozen=True)
class JobChange:
    """One entry of a job's change feed: its id (the event id) and the record right after it."""

    event_id: str
    record: JobRecord


class JobStore:
    """Reads and writes job records; every state change is one atomic Lua compare-and-set."""

    def __init__(self, client: RedisClient, record_ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = record_ttl_seconds
        self._transition = client.register_script(_TRANSITION_LUA)
        self._progress = client.register_script(_PROGRESS_LUA)
        self._claim = client.register_script(_CLAIM_LUA)
        self._mark_stopped = client.register_script(_MARK_STOPPED_LUA)

    @property
    def redis(self) -> RedisClient:
        return self._redis

    async def get(self, job_id: str) -> JobRecord | None:
        data = cast(dict[str, str], await self._redis.hgetall(job_key(job_id)))
        return JobRecord.from_hash(data) if data.get("job_id") else None

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """`get` of each job, in one pipelined round trip (HGETALL per job)."""
        if not job_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(job_key(job_id))
            found: list[dict[str, str]] = await pipe.execute()
        return [JobRecord.from_hash(data) if data.get("job_id") else None for data in found]

    async def existing(self, job_ids: Sequence[str]) -> set[str]:
        """Which of these jobs still have a record (EXISTS per job, one pipelined round trip).

        The blob janitor's question: a job whose record exists keeps all its blobs. A Redis
        error raises; it is never read as "no record".
        """
        if not job_ids:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.exists(job_key(job_id))
            found = await pipe.execute()
        return {job_id for job_id, count in zip(job_ids, found, strict=True) if int(count)}

    async def transition(
        self,
        job_id: str,
        allowed_from: tuple[Status, ...],
        to: Status,
        fields: dict[str, Any] | None = None,
        *,
        lease_token: str | None = None,
    ) -> TransitionResult:
        """Move the job to `to` if its state is one of `allowed_from` (and held under the token).

        None: an unfenced transition (cancel, expiry). An empty token is refused rather than
        read as "any holder": a fenced caller that lost its token must not pass the fence.
        """
        if lease_token is not None:
            require_lease_token(lease_token)
        args: list[str] = [
            ",".join(s.value for s in allowed_from),
            to.value,
            str(self._ttl if to.terminal else 0),
            CANCEL_CHANNEL if to is Status.CANCELLED else "",
            lease_token or "",
        ]
        for key, value in (fields or {}).items():
            args += [key, repr(value) if isinstance(value, float) else str(value)]
        code, status = await self._transition(keys=[job_key(job_id), events_key(job_id)], args=args)
        if int(code) == -1:
            return TransitionResult(False, None)
        return TransitionResult(int(code) == 1, Status(status))

    async def claim(
        self,
        job_id: str,
        lease_token: str,
        max_attempts: int,
        *,
        take_over: bool,
        owner: str = "",
        message_id: str = "",
    ) -> Claim:
        """Move a queued job (or, with take_over, one a lost worker held) to processing.

        Idempotent for the same token, so redis-py re-sending it after a lost reply is harmless.
        """
        require_lease_token(lease_token)
        code, value = await self._claim(
            keys=[job_key(job_id), events_key(job_id)],
            args=[
                lease_token,
                str(max_attempts),
                "1" if take_over else "0",
                repr(time.time()),
                owner,
                message_id,
            ],
        )
        code = int(code)
        if code == 1:
            return Claim(ClaimOutcome.CLAIMED, attempt=int(value))
        if code == 2:
            return Claim(ClaimOutcome.EXHAUSTED, attempt=int(value))
        if code == 0:
            return Claim(ClaimOutcome.NOT_CLAIMABLE, status=Status(value))
        return Claim(ClaimOutcome.MISSING)

    async def list_for_tenant(
        self, tenant: str, status: Status | None, page_size: int, cursor: str
    ) -> tuple[list[JobRecord], str]:
        """A page of the tenant's jobs, newest first; `cursor` is '' or a previous return."""
        index = tenant_index_key(tenant)
        upper = f"({cursor}" if cursor else "+inf"
        found: list[JobRecord] = []
        scanned = 0
        while scanned < LIST_SCAN_LIMIT:
            batch = cast(
                list[tuple[str, float]],
                await self._redis.zrevrangebyscore(
                    index, upper, "-inf", start=0, num=LIST_SCAN_BATCH, withscores=True
                ),
            )
            if not batch:
                return found, ""
            for job_id, score in batch:
                scanned += 1
                upper = f"({score!r}"
                record = await self.get(job_id)
                if record is None:  # expired: drop it from the index
                    await self._redis.zrem(index, job_id)
                    continue
                if status is None or record.status is status:
                    found.append(record)
                    if len(found) == page_size:
                        return found, repr(score)
        return found, upper[1:]

    async def mark_stopped(self, job_id: str) -> None:
        """Record when a cancelled or failed job's work had fully stopped (for operators).

        Never recreates a record that vanished (Redis lost its data): HSET only if it exists.
        """
        await self._mark_stopped(keys=[job_key(job_id)], args=[repr(time.time())])

    async def set_progress(self, job_id: str, progress: int) -> bool:
        """Raise the job's progress (0-100); never lowers it, only while processing."""
        progress = max(0, min(100, progress))
        return bool(
            await self._progress(keys=[job_key(job_id), events_key(job_id)], args=[str(progress)])
        )

    async def snapshot(self, job_id: str) -> tuple[JobRecord | None, str]:
        """The record and the id of its feed's latest change ('' when there is no feed), read
        together (one transaction: no change can fall between them)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(job_key(job_id))
            pipe.xrevrange(events_key(job_id), count=1)
            data, latest = await pipe.execute()
        record = JobRecord.from_hash(data) if data.get("job_id") else None
        return record, str(latest[0][0]) if latest else ""

    async def changes(self, job_id: str, after: str, block_ms: int) -> list[JobChange]:
        """The job's changes after event `after`, waiting up to `block_ms` for the first."""
        reply = cast(
            list[tuple[str, list[tuple[str, dict[str, str]]]]],
            await self._redis.xread(
                {events_key(job_id): after}, count=EVENTS_MAXLEN, block=block_ms
            ),
        )
        return [
            JobChange(event_id, JobRecord.from_hash(fields))
            for _key, entries in reply or []
            for event_id, fields in entries
            if fields.get("job_id")
        ]
