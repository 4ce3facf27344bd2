"""The job worker: reads the Redis stream as a consumer group member and runs jobs."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import cast

from datapilot.ingest.v1 import ingest_pb2_grpc
from datapilot.llm.v1 import llm_pb2_grpc
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from analysis_svc.job_runner import JobRunner
from analysis_svc.settings import AnalysisSettings
from datapilot_runtime import artifacts
from datapilot_runtime.grpc_host import GrpcHost, open_channel
from datapilot_runtime.job_store import CONSUMER_GROUP, STREAM_KEY, JobStore, Status
from datapilot_runtime.redis_client import connect_redis

_LOGGER = logging.getLogger(__name__)
READ_BLOCK_MS = 1000


async def ensure_group(jobs: JobStore) -> None:
    """Create the consumer group (from the stream's start) if it does not exist yet."""
    try:
        await jobs.redis.xgroup_create(STREAM_KEY, CONSUMER_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class Worker:
    """Claims up to `worker_concurrency` jobs at a time; acknowledges each once it is terminal."""

    def __init__(self, settings: AnalysisSettings, jobs: JobStore, runner: JobRunner) -> None:
        self._settings = settings
        self._jobs = jobs
        self._runner = runner
        self._consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._slots = asyncio.Semaphore(settings.worker_concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        await ensure_group(self._jobs)
        _LOGGER.info("worker %s consuming %s", self._consumer, STREAM_KEY)
        while not self._stopping.is_set():
            await self._slots.acquire()
            if self._stopping.is_set():
                self._slots.release()
                break
            try:
                entries = await self._jobs.redis.xreadgroup(
                    CONSUMER_GROUP, self._consumer, {STREAM_KEY: ">"}, count=1, block=READ_BLOCK_MS
                )
            except RedisConnectionError:
                self._slots.release()
                _LOGGER.warning("redis unavailable; retrying in 1s")
                await asyncio.sleep(1)
                continue
            if not entries:
                self._slots.release()
                continue
            for _stream, messages in cast(
                list[tuple[str, list[tuple[str, dict[str, str]]]]], entries
            ):
                for message_id, fields in messages:
                    task = asyncio.create_task(self._handle(message_id, fields.get("job_id", "")))
                    self._tasks[message_id] = task

    async def _handle(self, message_id: str, job_id: str) -> None:
        try:
            if artifacts.JOB_ID_RE.match(job_id):
                await self._runner.run(job_id)
            await self._jobs.redis.xack(STREAM_KEY, CONSUMER_GROUP, message_id)
        except asyncio.CancelledError:
            await self._hand_back(job_id, message_id)
            raise
        except Exception:
            _LOGGER.exception("job handling failed; it stays pending")
        finally:
            self._tasks.pop(message_id, None)
            self._slots.release()

    async def _hand_back(self, job_id: str, message_id: str) -> None:
        """A job still running when the grace period ends fails with worker_shutdown."""
        message = "The worker shut down before the job finished."
        await self._jobs.transition(
            job_id,
            (Status.PROCESSING,),
            Status.FAILED,
            {"finished_at": time.time(), "error": "worker_shutdown", "error_message": message},
        )
        await self._jobs.redis.xack(STREAM_KEY, CONSUMER_GROUP, message_id)

    async def stop(self, grace: float) -> None:
        """Stop claiming, let in-flight jobs finish within `grace`, then cancel the rest."""
        self._stopping.set()
        tasks = list(self._tasks.values())
        if tasks:
            _LOGGER.info("draining %d in-flight job(s), grace %.1fs", len(tasks), grace)
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


async def run_worker(settings: AnalysisSettings) -> None:
    """The worker process: health server, consumer loop, graceful drain on SIGTERM."""
    redis = await connect_redis(settings.redis_url)
    jobs = JobStore(redis, settings.job_record_ttl_seconds)
    ingest_channel = open_channel(settings.ingest_addr)
    llm_channel = open_channel(settings.llm_addr)
    runner = JobRunner(
        settings,
        jobs,
        ingest_pb2_grpc.IngestServiceStub(ingest_channel),
        llm_pb2_grpc.LlmServiceStub(llm_channel),
    )
    worker = Worker(settings, jobs, runner)
    host = GrpcHost(
        "analysis_worker", settings.worker_grpc_listen_addr, settings.grpc_shutdown_grace_seconds
    )
    host.install_signal_handlers()
    await host.start()
    consume = asyncio.create_task(worker.run())
    try:
        await host.wait_for_stop()
    finally:
        await host.health.enter_graceful_shutdown()
        await worker.stop(settings.worker_shutdown_grace_seconds)
        consume.cancel()
        await asyncio.gather(consume, return_exceptions=True)
        await host.stop()
        await ingest_channel.close()
        await llm_channel.close()
        await redis.aclose()
