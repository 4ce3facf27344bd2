"""The job worker: consumes the job queue with leases, reclaim, cancellation and drain.

A job's queue entry stays pending until the job is terminal or handed back. While a job runs,
its worker renews the entry's lease every third of JOB_LEASE_SECONDS (only while it still holds
it) and checks the job's record: a cancelled, vanished or taken-over job is stopped. Every worker
also reclaims entries idle for longer than the lease (those of a worker that died), recreates a
consumer group Redis lost, and takes its turn as the sweeper. Cancellations cancel the job's
task, which kills its analysis child and cancels its in-flight gRPC calls. The Redis Streams
protocol itself is `datapilot_runtime.jobs.queue`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass

from datapilot.ingest.v1 import ingest_pb2_grpc
from datapilot.llm.v1 import llm_pb2_grpc
from redis.exceptions import RedisError

from analysis_svc.jobs.metrics import (
    JOBS_RUNNING,
    QUEUE_DEPTH,
    QUEUE_HEALTHY,
    QUEUE_PENDING,
    QUEUE_REPAIRS,
)
from analysis_svc.jobs.runner import JobRunner
from analysis_svc.jobs.sweeper import Sweeper
from analysis_svc.sandbox import pool as sandbox
from analysis_svc.settings import WorkerSettings
from datapilot_runtime import artifacts
from datapilot_runtime.context import job_id_var
from datapilot_runtime.grpc_host import GrpcHost, open_channel, upstream_serving
from datapilot_runtime.jobs.queue import Delivery, JobQueue, is_nogroup
from datapilot_runtime.jobs.store import JobRecord, JobStore, Status
from datapilot_runtime.metrics import start_metrics_server
from datapilot_runtime.redis_client import connect_redis, redis_fault

_LOGGER = logging.getLogger(__name__)
READ_BLOCK_MS = 500
QUEUE_METRICS_INTERVAL_SECONDS = 2.0
# Consecutive failed reads of the stream after which readiness and the health metric say no.
UNHEALTHY_READ_FAILURES = 3


@dataclass
class Running:
    """A job this worker runs: its delivery, lease token and task."""

    delivery: Delivery
    lease_token: str
    task: asyncio.Task[None]
    cancel_reason: str = ""
    held: bool = False  # the heartbeat saw the job's record held under this lease


class QueueUnhealthy(Exception):
    """The worker cannot read the job queue (readiness fails on it)."""


class Worker:
    """Runs up to `worker_concurrency` jobs at a time."""

    def __init__(
        self, settings: WorkerSettings, jobs: JobStore, queue: JobQueue, runner: JobRunner
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._queue = queue
        self._runner = runner
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._running: dict[str, Running] = {}
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._sweeper = Sweeper(settings, jobs, queue, runner, self.consumer)
        self._read_failures = 0
        self._reclaim_owed = False

    @property
    def free_slots(self) -> int:
        return self._settings.worker_concurrency - len(self._running)

    async def run(self) -> None:
        """Consume until stop(): new entries, reclaimed entries, cancellations, heartbeats."""
        await self._queue.ensure_group()
        _LOGGER.info("worker %s consuming %d stream shard(s)", self.consumer, self._queue.shards)
        self._background = [
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._reclaim_loop()),
            asyncio.create_task(self._cancel_listener()),
            asyncio.create_task(self._queue_metrics()),
            asyncio.create_task(self._sweeper.run()),
        ]
        while not self._stopping.is_set():
            if self.free_slots <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            if self._reclaim_owed:  # a lapsed lease waited for this slot: it goes first
                self._reclaim_owed = False
                await self._reclaim()
                continue
            try:
                deliveries = await self._queue.read(self.consumer, self.free_slots, READ_BLOCK_MS)
            except Exception as exc:
                if not redis_fault(exc):
                    raise
                self._read_failures += 1
                if await self._heal(exc):
                    continue
                _LOGGER.warning("reading the job stream failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1)
                continue
            self._read_failures = 0
            for delivery in deliveries:
                self._start(delivery, take_over=False)

    async def _heal(self, exc: BaseException) -> bool:
        """Recreate a vanished consumer group (Redis lost its data); True if that was it."""
        if not is_nogroup(exc):
            return False
        _LOGGER.warning("the consumer group is gone (Redis lost data?); recreating it")
        try:
            await self._queue.ensure_group()
        except RedisError:
            return False
        QUEUE_REPAIRS.labels("group_recreated").inc()
        return True

    async def check_queue(self) -> None:
        """Readiness: the consumer group exists and reading the stream works."""
        if self._read_failures >= UNHEALTHY_READ_FAILURES:
            raise QueueUnhealthy(f"{self._read_failures} failed reads in a row")
        if await self._queue.stats() is None:
            raise QueueUnhealthy("no consumer group")

    def _start(self, delivery: Delivery, *, take_over: bool) -> None:
        token = uuid.uuid4().hex  # random per delivery: two runs of one entry differ
        task = asyncio.create_task(self._handle(delivery, token, take_over))
        self._running[delivery.message_id] = Running(delivery, token, task)

    async def _handle(self, delivery: Delivery, token: str, take_over: bool) -> None:
        job_id = delivery.job_id
        job_id_var.set(job_id)
        try:
            if artifacts.JOB_ID_RE.match(job_id):
                await self._runner.run(
                    job_id,
                    token,
                    take_over=take_over,
                    owner=self.consumer,
                    message_id=delivery.message_id,
                )
            await self._release(delivery)
        except asyncio.CancelledError:
            entry = self._running.get(delivery.message_id)
            reason = entry.cancel_reason if entry else ""
            if reason == "shutdown":
                await self._runner.hand_back(job_id, token, delivery.message_id)
                await self._release(delivery)
                raise
            if reason == "cancelled":
                await self._jobs.mark_stopped(job_id)
                _LOGGER.info("job cancelled; its work has stopped")
            elif reason:
                _LOGGER.warning("job stopped: %s", reason)
            else:
                raise
            # Acknowledged only if the job is terminal or gone: a lost lease leaves the entry
            # to the worker that holds it now.
            await self._release(delivery)
        except Exception:
            _LOGGER.exception("job handling failed; its entry stays pending for reclaim")
        finally:
            self._running.pop(delivery.message_id, None)
            self._slot_freed.set()

    async def _release(self, delivery: Delivery) -> None:
        """Acknowledge the ended run's entry if nothing more can come of it (see release)."""
        try:
            await self._queue.release(delivery)
        except RedisError as exc:
            # Left pending: a later reclaim finds the job terminal (or gone) and acknowledges.
            _LOGGER.warning("acknowledging the entry failed (%s)", type(exc).__name__)

    async def _heartbeat(self) -> None:
        """Every third of a lease: renew the entries still ours, stop what is no longer ours.

        A run stops when its job was cancelled (pub/sub is only the fast path), when its record
        vanished (Redis lost its data), or when another delivery took the job over.
        """
        interval = self._settings.job_lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            running = list(self._running.values())
            if not running:
                continue
            try:
                await self._queue.renew(self.consumer, [r.delivery for r in running])
                records = [await self._jobs.get(r.delivery.job_id) for r in running]
            except Exception as exc:
                if not redis_fault(exc):
                    raise
                _LOGGER.warning("lease renewal failed (%s)", type(exc).__name__)
                continue
            for entry, record in zip(running, records, strict=True):
                self._check_lease(entry, record)

    def _check_lease(self, entry: Running, record: JobRecord | None) -> None:
        if entry.task.done() or entry.cancel_reason:
            return
        if record is None:
            reason = "its record vanished"
        elif record.status is Status.CANCELLED:
            reason = "cancelled"
        elif record.lease_token == entry.lease_token:
            entry.held = True
            return
        elif entry.held and not record.status.terminal:
            reason = "its lease was taken over"
        else:
            return  # not claimed yet, or finished: the run ends by itself
        entry.cancel_reason = reason
        entry.task.cancel()

    async def _reclaim_loop(self) -> None:
        """Take over entries whose worker stopped renewing their lease."""
        # A dead worker's job waits out its lease, then at most a quarter lease more (one
        # XAUTOCLAIM per shard each time: cheap against the lease's 10 s default).
        interval = self._settings.job_lease_seconds / 4
        while not self._stopping.is_set():
            await asyncio.sleep(interval)
            if self._stopping.is_set():
                continue
            if self.free_slots <= 0:
                # Busy: under a steady stream of new jobs a slot is never free at this
                # instant, and a frozen worker's job would wait for the load to drop. The
                # next slot that frees looks for lapsed leases before new entries.
                self._reclaim_owed = True
                continue
            await self._reclaim()

    async def _reclaim(self) -> None:
        """Take over, for the free slots, entries whose lease lapsed (XAUTOCLAIM)."""
        idle_ms = int(self._settings.job_lease_seconds * 1000)
        try:
            deliveries = await self._queue.reclaim(self.consumer, idle_ms, self.free_slots)
        except Exception as exc:
            if not redis_fault(exc):
                raise
            if not await self._heal(exc):
                _LOGGER.warning("reclaim failed (%s)", type(exc).__name__)
            return
        for delivery in deliveries:
            if delivery.message_id in self._running:
                continue  # ours and running here (a late renewal): not a second run
            _LOGGER.warning(
                "reclaiming a job whose worker stopped renewing its lease",
                extra={"job_id": delivery.job_id},
            )
            self._start(delivery, take_over=True)

    async def _queue_metrics(self) -> None:
        """Export the stream's backlog (lag), unacknowledged (pending) counts and its health."""
        while True:
            JOBS_RUNNING.set(len(self._running))
            try:
                stats = await self._queue.stats()
            except RedisError:
                stats = None
            if stats is not None:
                QUEUE_PENDING.set(stats.pending)
                QUEUE_DEPTH.set(stats.lag)
            healthy = stats is not None and self._read_failures < UNHEALTHY_READ_FAILURES
            QUEUE_HEALTHY.set(1 if healthy else 0)
            await asyncio.sleep(QUEUE_METRICS_INTERVAL_SECONDS)

    async def _cancel_listener(self) -> None:
        """Cancel a running job's task as soon as its cancellation is announced."""
        while True:
            try:
                async for job_id in self._queue.cancellations():
                    self.cancel_job(job_id)
            except Exception as exc:
                if not redis_fault(exc):
                    raise
                _LOGGER.warning(
                    "cancel listener lost redis (%s); resubscribing", type(exc).__name__
                )
                await asyncio.sleep(0.5)

    def cancel_job(self, job_id: str) -> None:
        for entry in self._running.values():
            if entry.delivery.job_id == job_id and not entry.task.done():
                entry.cancel_reason = "cancelled"
                entry.task.cancel()

    async def stop(self, grace: float) -> None:
        """Stop claiming, let in-flight jobs finish within `grace`, hand back the rest."""
        self._stopping.set()
        self._slot_freed.set()
        tasks = [entry.task for entry in self._running.values()]
        if tasks:
            _LOGGER.info("draining %d in-flight job(s), grace %.1fs", len(tasks), grace)
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for entry in list(self._running.values()):
                if entry.task in pending:
                    entry.cancel_reason = "shutdown"
                    entry.task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


async def run_worker(settings: WorkerSettings) -> None:
    """The worker process: health server, consumer loop, graceful drain on SIGTERM."""
    sandbox.POOL.set_max_children(settings.analysis_max_children)
    await asyncio.to_thread(sandbox.warm_up)
    redis = await connect_redis(settings.redis_url, cluster=settings.redis_cluster)
    jobs = JobStore(redis, settings.job_record_ttl_seconds)
    queue = JobQueue(
        redis, settings.job_stream_shards, record_ttl_seconds=settings.job_record_ttl_seconds
    )
    token = settings.internal_auth_token.get_secret_value()
    ingest_channel = open_channel(settings.ingest_addr, token)
    llm_channel = open_channel(settings.llm_addr, token)
    runner = JobRunner(
        settings,
        jobs,
        queue,
        ingest_pb2_grpc.IngestServiceStub(ingest_channel),
        llm_pb2_grpc.LlmServiceStub(llm_channel),
    )
    worker = Worker(settings, jobs, queue, runner)
    host = GrpcHost(
        "analysis_worker",
        settings.worker_grpc_listen_addr,
        settings.grpc_shutdown_grace_seconds,
        internal_token=token,
    )
    host.install_signal_handlers()
    await host.start()
    start_metrics_server(settings.metrics_host, settings.worker_metrics_port)
    host.watch_readiness(
        {
            "redis": redis.ping,
            "job_queue": worker.check_queue,
            "ingest_svc": lambda: upstream_serving(ingest_channel),
            "llm_svc": lambda: upstream_serving(llm_channel),
        }
    )
    consume = asyncio.create_task(worker.run())
    try:
        await host.wait_for_stop()
    finally:
        await host.health.enter_graceful_shutdown()
        consume.cancel()
        await asyncio.gather(consume, return_exceptions=True)
        await worker.stop(settings.worker_shutdown_grace_seconds)
        await sandbox.POOL.close()
        await host.stop()
        await ingest_channel.close()
        await llm_channel.close()
        await redis.aclose()
