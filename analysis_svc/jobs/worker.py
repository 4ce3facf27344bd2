"""The job worker: consumes the job queue with leases, reclaim, cancellation and drain.

A job's queue entry stays pending until the job is terminal or handed back. While a job runs,
its worker renews the entry's lease every third of JOB_LEASE_SECONDS. Every worker also reclaims
entries idle for longer than the lease: those of a worker that died. Cancellations cancel the
job's task, which kills its analysis child and cancels its in-flight gRPC calls. The Redis
Streams protocol itself is `datapilot_runtime.jobs.queue`.
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

from analysis_svc.jobs.metrics import JOBS_RUNNING, QUEUE_DEPTH, QUEUE_PENDING
from analysis_svc.jobs.runner import JobRunner
from analysis_svc.sandbox import pool as sandbox
from analysis_svc.settings import WorkerSettings
from datapilot_runtime import artifacts
from datapilot_runtime.context import job_id_var
from datapilot_runtime.grpc_host import GrpcHost, open_channel, upstream_serving
from datapilot_runtime.jobs.queue import STREAM_KEY, Delivery, JobQueue
from datapilot_runtime.jobs.store import JobStore
from datapilot_runtime.metrics import start_metrics_server
from datapilot_runtime.redis_client import connect_redis

_LOGGER = logging.getLogger(__name__)
READ_BLOCK_MS = 500
QUEUE_METRICS_INTERVAL_SECONDS = 2.0


@dataclass
class Running:
    """A job this worker runs: its stream entry, lease token and task."""

    message_id: str
    job_id: str
    lease_token: str
    task: asyncio.Task[None]
    cancel_reason: str = ""


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

    @property
    def free_slots(self) -> int:
        return self._settings.worker_concurrency - len(self._running)

    async def run(self) -> None:
        """Consume until stop(): new entries, reclaimed entries, cancellations, heartbeats."""
        await self._queue.ensure_group()
        _LOGGER.info("worker %s consuming %s", self.consumer, STREAM_KEY)
        self._background = [
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._reclaim_loop()),
            asyncio.create_task(self._cancel_listener()),
            asyncio.create_task(self._queue_metrics()),
        ]
        while not self._stopping.is_set():
            if self.free_slots <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                deliveries = await self._queue.read(self.consumer, self.free_slots, READ_BLOCK_MS)
            except RedisError as exc:
                _LOGGER.warning("reading the job stream failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1)
                continue
            for delivery in deliveries:
                self._start(delivery, take_over=False)

    def _start(self, delivery: Delivery, *, take_over: bool) -> None:
        message_id, job_id = delivery.message_id, delivery.job_id
        token = f"{self.consumer}/{message_id}"
        task = asyncio.create_task(self._handle(message_id, job_id, token, take_over))
        self._running[message_id] = Running(message_id, job_id, token, task)

    async def _handle(self, message_id: str, job_id: str, token: str, take_over: bool) -> None:
        job_id_var.set(job_id)
        try:
            if artifacts.JOB_ID_RE.match(job_id):
                await self._runner.run(job_id, token, take_over=take_over)
            await self._queue.acknowledge(message_id)
        except asyncio.CancelledError:
            entry = self._running.get(message_id)
            reason = entry.cancel_reason if entry else ""
            if reason == "cancelled":
                await self._jobs.mark_stopped(job_id)
                await self._queue.acknowledge(message_id)
                _LOGGER.info("job cancelled; its work has stopped")
            else:
                await self._runner.hand_back(job_id, token, message_id)
                raise
        except Exception:
            _LOGGER.exception("job handling failed; its entry stays pending for reclaim")
        finally:
            self._running.pop(message_id, None)
            self._slot_freed.set()

    async def _heartbeat(self) -> None:
        """Renew the lease of every running job (reset its entry's idle time)."""
        interval = self._settings.job_lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            ids = list(self._running)
            if not ids:
                continue
            try:
                await self._queue.renew(self.consumer, ids)
            except RedisError as exc:
                _LOGGER.warning("lease renewal failed (%s)", type(exc).__name__)

    async def _reclaim_loop(self) -> None:
        """Take over entries whose worker stopped renewing their lease."""
        idle_ms = int(self._settings.job_lease_seconds * 1000)
        interval = self._settings.job_lease_seconds / 2
        while not self._stopping.is_set():
            await asyncio.sleep(interval)
            if self.free_slots <= 0 or self._stopping.is_set():
                continue
            try:
                deliveries = await self._queue.reclaim(self.consumer, idle_ms, self.free_slots)
            except RedisError as exc:
                _LOGGER.warning("reclaim failed (%s)", type(exc).__name__)
                continue
            for delivery in deliveries:
                _LOGGER.warning(
                    "reclaiming a job whose worker stopped renewing its lease",
                    extra={"job_id": delivery.job_id},
                )
                self._start(delivery, take_over=True)

    async def _queue_metrics(self) -> None:
        """Export the stream's backlog (lag) and unacknowledged (pending) counts."""
        while True:
            JOBS_RUNNING.set(len(self._running))
            try:
                stats = await self._queue.stats()
            except RedisError:
                stats = None
            if stats is not None:
                QUEUE_PENDING.set(stats.pending)
                QUEUE_DEPTH.set(stats.lag)
            await asyncio.sleep(QUEUE_METRICS_INTERVAL_SECONDS)

    async def _cancel_listener(self) -> None:
        """Cancel a running job's task as soon as its cancellation is announced."""
        while True:
            try:
                async for job_id in self._queue.cancellations():
                    self.cancel_job(job_id)
            except RedisError as exc:
                _LOGGER.warning(
                    "cancel listener lost redis (%s); resubscribing", type(exc).__name__
                )
                await asyncio.sleep(0.5)

    def cancel_job(self, job_id: str) -> None:
        for entry in self._running.values():
            if entry.job_id == job_id and not entry.task.done():
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
    await asyncio.to_thread(sandbox.warm_up)
    redis = await connect_redis(settings.redis_url)
    jobs = JobStore(redis, settings.job_record_ttl_seconds)
    queue = JobQueue(redis)
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
