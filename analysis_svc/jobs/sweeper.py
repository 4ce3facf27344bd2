"""The sweeper: rebuilds from the job records what the queue lost, and times out expired jobs.

Any worker may sweep; a short Redis lock (SET NX PX, one lease long, never released) lets one
sweep per lease across all of them. It walks the index of non-terminal jobs (a sorted set by
deadline, never a SCAN of keys): a job whose current stream entry is gone (the stream was evicted
or flushed while its record survived, a crash between two steps) or none yet (an upload
that crashed before enqueueing it) is given a new entry; a job past
its deadline is failed with `timeout` and an error.json, so no job waits for a poll to end it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from analysis_svc.jobs.metrics import QUEUE_REPAIRS
from analysis_svc.jobs.runner import JobRunner
from analysis_svc.settings import WorkerSettings
from datapilot_runtime.error_codes import ErrorCode
from datapilot_runtime.jobs.keys import SWEEPER_LOCK_KEY
from datapilot_runtime.jobs.queue import ActiveJob, JobQueue
from datapilot_runtime.jobs.store import JobStore

_LOGGER = logging.getLogger(__name__)
TIMEOUT_MESSAGE = "The job did not finish before its deadline (timeoutAt)."


@dataclass
class SweepReport:
    """What one sweep did."""

    checked: int = 0
    requeued: int = 0
    timed_out: int = 0
    forgotten: int = 0


class Sweeper:
    """Re-enqueues jobs without a live delivery and fails expired ones."""

    def __init__(
        self,
        settings: WorkerSettings,
        jobs: JobStore,
        queue: JobQueue,
        runner: JobRunner,
        owner: str,
    ) -> None:
        self._jobs = jobs
        self._queue = queue
        self._runner = runner
        self._owner = owner
        self._interval = settings.job_lease_seconds
        # A live holder fails its own job at the deadline; the sweeper steps in a lease later.
        self._grace = settings.job_lease_seconds

    async def run(self) -> None:
        """Every lease: sweep if no other worker swept within the last lease."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                if await self._queue.try_lock(
                    SWEEPER_LOCK_KEY, self._owner, int(self._interval * 1000)
                ):
                    await self.sweep()
            except RedisError as exc:
                _LOGGER.warning("queue sweep failed (%s)", type(exc).__name__)

    async def sweep(self) -> SweepReport:
        """One pass over the index of non-terminal jobs."""
        report = SweepReport()
        now = time.time()
        gone: list[str] = []
        for job in await self._queue.active_jobs():
            report.checked += 1
            if not await self._check(job, now, report):
                gone.append(job.job_id)
        await self._queue.forget_active(gone)
        report.forgotten = len(gone)
        if report.requeued or report.timed_out:
            _LOGGER.warning(
                "queue sweep repaired jobs",
                extra={"requeued": report.requeued, "timed_out": report.timed_out},
            )
        return report

    async def _check(self, job: ActiveJob, now: float, report: SweepReport) -> bool:
        """Repair one job; False when it is terminal or gone (it leaves the index)."""
        record = await self._jobs.get(job.job_id)
        if record is None or record.status.terminal:
            return False
        if now >= record.timeout_at + self._grace:
            await self._runner.fail_unowned(record.job_id, ErrorCode.TIMEOUT, TIMEOUT_MESSAGE)
            QUEUE_REPAIRS.labels("timed_out").inc()
            report.timed_out += 1
            return False
        if record.message_id:
            lost = not await self._queue.entry_exists(record.job_id, record.message_id)
        else:
            # Never enqueued: its upload stopped between creating and enqueueing it (a crash;
            # the steps span cluster slots). A young one may still be on its way.
            lost = now >= record.created_at + self._grace
        if lost and await self._queue.reenqueue(record.job_id, record.message_id):
            QUEUE_REPAIRS.labels("requeued").inc()
            report.requeued += 1
            _LOGGER.warning(
                "job had no live delivery; re-enqueued", extra={"job_id": record.job_id}
            )
        return True
