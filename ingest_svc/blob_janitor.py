"""The blob janitor: deletes the blobs of jobs whose records are gone, and orphan uploads.

It runs in every ingest_svc process (ingest owns the blobs and the job records); a short Redis
lock (SET NX PX, one interval long, never released) lets one pod make one pass per interval. A
pass lists at most a batch of keys under `jobs/` from where the last pass stopped (the cursor is
kept in Redis, so the pods take turns walking the store), asks the job store which of those jobs
still have a record, and deletes a blob only when its job has no record AND the blob is older
than the minimum age. An upload stores its blob before its record, so a young blob without a
record is an upload in progress and stays. A job whose record exists keeps every blob, however
old. Not driven by Redis expiry events: those are not delivered reliably (not at all to a
subscriber that was away), while listing the store finds everything, late at worst.

When a pass reaches the end of the listing, the round's totals become the stored-bytes and
stored-objects gauges (in Redis too, so every pod exports the same figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from redis.exceptions import RedisError

from datapilot_runtime import artifacts
from datapilot_runtime.artifacts import BlobRole
from datapilot_runtime.jobs.keys import BLOB_JANITOR_LOCK_KEY, BLOB_JANITOR_STATE_KEY
from datapilot_runtime.jobs.queue import JobQueue
from datapilot_runtime.jobs.store import JobStore
from datapilot_runtime.redis_client import RedisClient
from ingest_svc.blob_store import BlobInfo, BlobStore, BlobStoreError
from ingest_svc.metrics import BLOB_JANITOR_DELETED, BLOB_STORED_BYTES, BLOB_STORED_OBJECTS

_LOGGER = logging.getLogger(__name__)
REASON_EXPIRED = "expired"  # the job ran (it left a result or error.json); its record is gone
REASON_ORPHAN = "orphan"  # only an input and no record: a failed upload, or a job never run


@dataclass
class JanitorState:
    """Where the walk through the store is, and what it counted (kept in one Redis hash)."""

    cursor: str = ""  # the last key looked at; '' = the next pass starts a new round
    round_bytes: int = 0  # kept so far in the round under way
    round_objects: int = 0
    stored_bytes: int = -1  # the last complete round's totals; -1 = no round completed yet
    stored_objects: int = -1
    rounds: int = 0

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> JanitorState:
        return cls(
            cursor=data.get("cursor", ""),
            round_bytes=int(data.get("round_bytes", "0") or 0),
            round_objects=int(data.get("round_objects", "0") or 0),
            stored_bytes=int(data.get("stored_bytes", "-1") or -1),
            stored_objects=int(data.get("stored_objects", "-1") or -1),
            rounds=int(data.get("rounds", "0") or 0),
        )

    def to_hash(self) -> dict[str, str]:
        return {
            "cursor": self.cursor,
            "round_bytes": str(self.round_bytes),
            "round_objects": str(self.round_objects),
            "stored_bytes": str(self.stored_bytes),
            "stored_objects": str(self.stored_objects),
            "rounds": str(self.rounds),
        }


class JanitorStateStore:
    """The janitor's two Redis calls: read and write its state hash."""

    def __init__(self, client: RedisClient, key: str = BLOB_JANITOR_STATE_KEY) -> None:
        self._redis = client
        self._key = key

    async def load(self) -> JanitorState:
        data = cast(dict[str, str], await self._redis.hgetall(self._key))
        return JanitorState.from_hash(data)

    async def save(self, state: JanitorState) -> None:
        await self._redis.hset(self._key, mapping=state.to_hash())  # type: ignore[arg-type]


@dataclass
class PassReport:
    """What one pass did."""

    listed: int = 0
    deleted: dict[str, int] = field(default_factory=dict)
    kept_bytes: int = 0
    round_done: bool = False


@dataclass
class _Group:
    """The listed blobs of one job folder (keys of one job are adjacent in key order)."""

    job_id: str | None  # None: a key outside the job layout (never deleted)
    blobs: list[BlobInfo]


def _group(listed: list[BlobInfo]) -> list[_Group]:
    groups: list[_Group] = []
    for info in listed:
        parsed = artifacts.job_blob(info.key)
        job_id = parsed.job_id if parsed else None
        if groups and job_id is not None and groups[-1].job_id == job_id:
            groups[-1].blobs.append(info)
        else:
            groups.append(_Group(job_id, [info]))
    return groups


class BlobJanitor:
    """Deletes what no job record refers to any more, a bounded batch per pass."""

    def __init__(
        self,
        blobs: BlobStore,
        jobs: JobStore,
        queue: JobQueue,
        state: JanitorStateStore,
        *,
        owner: str,
        interval_seconds: float,
        min_age_seconds: float,
        batch_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._blobs = blobs
        self._jobs = jobs
        self._queue = queue
        self._state = state
        self._owner = owner
        self._interval = interval_seconds
        self._min_age = min_age_seconds
        self._batch = batch_size
        self._clock = clock

    async def run(self) -> None:
        """Every interval: a pass if no other pod made one within it, else refresh the gauges."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                if await self._queue.try_lock(
                    BLOB_JANITOR_LOCK_KEY, self._owner, int(self._interval * 1000)
                ):
                    await self.run_pass()
                else:
                    self._export(await self._state.load())
            except (RedisError, BlobStoreError) as exc:
                # Nothing is deleted on a doubt: the pass stops and the next one starts over
                # from the cursor saved before it.
                _LOGGER.warning("blob janitor pass failed (%s)", type(exc).__name__)
            except Exception:
                # A bug must not end the loop for the life of the pod; it is logged each time.
                _LOGGER.exception("blob janitor pass failed")

    async def run_pass(self) -> PassReport:
        """List up to a batch of blobs from the cursor on; delete those no record refers to."""
        state = await self._state.load()
        report = PassReport()
        listed: list[BlobInfo] = []
        exhausted = True
        async with contextlib.aclosing(
            self._blobs.list_blobs(artifacts.JOBS_PREFIX, state.cursor)
        ) as listing:
            async for info in listing:
                if len(listed) == self._batch:
                    exhausted = False  # there is more after this batch
                    break
                listed.append(info)
        groups = _group(listed)
        if not exhausted and len(groups) > 1:
            # The last job may go on in the next page: leave it whole to the next pass, so a
            # job's blobs are judged (and labelled) together.
            groups.pop()
        now = self._clock()
        live = await self._jobs.existing(sorted({g.job_id for g in groups if g.job_id is not None}))
        doomed: dict[str, list[str]] = {}  # reason -> keys
        for group in groups:
            self._judge(group, live, now, doomed, report)
        # One request per 1000 keys on S3; counted once they are gone.
        await self._blobs.delete_many([key for keys in doomed.values() for key in keys])
        for reason, keys in doomed.items():
            BLOB_JANITOR_DELETED.labels(reason).inc(len(keys))
            report.deleted[reason] = len(keys)
        report.listed = sum(len(g.blobs) for g in groups)
        state.round_bytes += report.kept_bytes
        state.round_objects += report.listed - sum(report.deleted.values())
        if exhausted:
            state.stored_bytes, state.stored_objects = state.round_bytes, state.round_objects
            state.cursor, state.round_bytes, state.round_objects = "", 0, 0
            state.rounds += 1
            report.round_done = True
        else:
            state.cursor = groups[-1].blobs[-1].key
        await self._state.save(state)
        self._export(state)
        if report.deleted:
            _LOGGER.info("blob janitor deleted blobs", extra={"deleted": dict(report.deleted)})
        return report

    def _judge(
        self,
        group: _Group,
        live: set[str],
        now: float,
        doomed: dict[str, list[str]],
        report: PassReport,
    ) -> None:
        """Which of the group's blobs go (added to `doomed` by reason); the rest are counted."""
        deletable = group.job_id is not None and group.job_id not in live
        roles = {parsed.role for info in group.blobs if (parsed := artifacts.job_blob(info.key))}
        reason = REASON_EXPIRED if roles - {BlobRole.INPUT} else REASON_ORPHAN
        for info in group.blobs:
            # Young blobs stay even without a record: an upload stores its blob first.
            if deletable and now - info.modified_at >= self._min_age:
                doomed.setdefault(reason, []).append(info.key)
            else:
                report.kept_bytes += info.size_bytes

    @staticmethod
    def _export(state: JanitorState) -> None:
        if state.stored_bytes >= 0:
            BLOB_STORED_BYTES.set(state.stored_bytes)
            BLOB_STORED_OBJECTS.set(state.stored_objects)
