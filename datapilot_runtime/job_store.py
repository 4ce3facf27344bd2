"""Job records in Redis: creation with enqueueing, atomic state transitions (Lua), progress."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis

JOB_KEY_PREFIX = "dp:job:"
STREAM_KEY = "dp:jobs:stream"
CONSUMER_GROUP = "dp-workers"
CANCEL_CHANNEL = "dp:jobs:cancel"


class Status(enum.StrEnum):
    """The job states; the last three are terminal and never change again."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


ACTIVE = (Status.QUEUED, Status.PROCESSING)

# KEYS[1] job hash. ARGV[1] comma-separated allowed current states, ARGV[2] new state,
# ARGV[3] TTL seconds to set when the new state is terminal (0 = none), ARGV[4] pub/sub channel
# to announce the new state on ("" = none), ARGV[5..] field/value pairs to set.
# Returns {1, new} on success, {0, current} when refused, {-1, ""} when the job does not exist.
_TRANSITION_LUA = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {-1, ''} end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == current then allowed = true end
end
if not allowed then return {0, current} end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if ARGV[2] == 'completed' then redis.call('HSET', KEYS[1], 'progress', '100') end
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[4], redis.call('HGET', KEYS[1], 'job_id') .. ' ' .. ARGV[2])
end
return {1, ARGV[2]}
"""

# KEYS[1] job hash, ARGV[1] progress. Raises progress only, only while processing.
_PROGRESS_LUA = """
if redis.call('HGET', KEYS[1], 'status') ~= 'processing' then return 0 end
local old = tonumber(redis.call('HGET', KEYS[1], 'progress') or '0')
local new = tonumber(ARGV[1])
if new > old then redis.call('HSET', KEYS[1], 'progress', ARGV[1]) return 1 end
return 0
"""


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
    extra: dict[str, str] = field(default_factory=dict)

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
        }

    @property
    def timed_out(self) -> bool:
        return self.status in ACTIVE and time.time() >= self.timeout_at


@dataclass(frozen=True)
class TransitionResult:
    """Outcome of a compare-and-set: applied or not, and the state the job is in now."""

    applied: bool
    status: Status | None


class JobStore:
    """Reads and writes job records; every state change is one atomic Lua compare-and-set."""

    def __init__(self, client: aioredis.Redis, record_ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = record_ttl_seconds
        self._transition = client.register_script(_TRANSITION_LUA)
        self._progress = client.register_script(_PROGRESS_LUA)

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    async def create_and_enqueue(self, record: JobRecord) -> None:
        """Store a new queued job and append it to the work stream in one transaction."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(JOB_KEY_PREFIX + record.job_id, mapping=record.to_hash())  # type: ignore[arg-type]
            pipe.xadd(STREAM_KEY, {"job_id": record.job_id})
            await pipe.execute()

    async def get(self, job_id: str) -> JobRecord | None:
        data = cast(dict[str, str], await self._redis.hgetall(JOB_KEY_PREFIX + job_id))
        return JobRecord.from_hash(data) if data.get("job_id") else None

    async def transition(
        self,
        job_id: str,
        allowed_from: tuple[Status, ...],
        to: Status,
        fields: dict[str, Any] | None = None,
    ) -> TransitionResult:
        """Move the job to `to` if its current state is one of `allowed_from`."""
        args: list[str] = [
            ",".join(s.value for s in allowed_from),
            to.value,
            str(self._ttl if to.terminal else 0),
            CANCEL_CHANNEL if to is Status.CANCELLED else "",
        ]
        for key, value in (fields or {}).items():
            args += [key, repr(value) if isinstance(value, float) else str(value)]
        code, status = await self._transition(keys=[JOB_KEY_PREFIX + job_id], args=args)
        if int(code) == -1:
            return TransitionResult(False, None)
        return TransitionResult(int(code) == 1, Status(status))

    async def set_progress(self, job_id: str, progress: int) -> bool:
        """Raise the job's progress (0-100); never lowers it, only while processing."""
        progress = max(0, min(100, progress))
        return bool(await self._progress(keys=[JOB_KEY_PREFIX + job_id], args=[str(progress)]))
