"""Builds and runs the ingest_svc gRPC server until SIGTERM."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc

from datapilot_runtime.grpc_host import GrpcHost
from datapilot_runtime.jobs.queue import JobQueue
from datapilot_runtime.jobs.store import JobStore
from datapilot_runtime.metrics import start_metrics_server
from datapilot_runtime.redis_client import connect_redis
from ingest_svc.blob_janitor import BlobJanitor, JanitorStateStore
from ingest_svc.blob_store import BlobStore, build_blob_store
from ingest_svc.rate_limit import TenantRateLimit
from ingest_svc.servicer import IngestServicer, require_tenant, store_fault
from ingest_svc.settings import IngestSettings


def build_janitor(
    settings: IngestSettings, blobs: BlobStore, jobs: JobStore, queue: JobQueue
) -> BlobJanitor:
    """The blob janitor this process runs (when BLOB_JANITOR_INTERVAL_SECONDS is not 0)."""
    return BlobJanitor(
        blobs,
        jobs,
        queue,
        JanitorStateStore(jobs.redis),
        owner=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        interval_seconds=settings.blob_janitor_interval_seconds,
        min_age_seconds=settings.blob_janitor_min_age_seconds,
        batch_size=settings.blob_janitor_batch_size,
    )


async def serve(settings: IngestSettings) -> None:
    redis = await connect_redis(settings.redis_url, cluster=settings.redis_cluster)
    blobs = build_blob_store(settings, settings.blob_backoff())
    await blobs.check()
    jobs = JobStore(redis, settings.job_record_ttl_seconds)
    queue = JobQueue(
        redis,
        settings.job_stream_shards,
        wait_replicas=settings.wait_replicas(),
        record_ttl_seconds=settings.job_record_ttl_seconds,
    )
    rate_limit = TenantRateLimit(redis, settings.rate_limit_per_minute)
    servicer = IngestServicer(settings, blobs, jobs, queue, rate_limit)
    host = GrpcHost(
        "ingest_svc",
        settings.grpc_listen_addr,
        settings.grpc_shutdown_grace_seconds,
        internal_token=settings.internal_auth_token.get_secret_value(),
        transport=settings,
        admissions=(require_tenant, rate_limit),
        store_errors=store_fault,
    )
    host.add_service(
        ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name,
        lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server),
    )
    host.install_signal_handlers()
    await host.start()
    start_metrics_server(settings.metrics_host, settings.metrics_port)
    host.watch_readiness({"redis": redis.ping, "blob store": blobs.check})
    janitor: asyncio.Task[None] | None = None
    if settings.blob_janitor_interval_seconds > 0:
        janitor = asyncio.create_task(build_janitor(settings, blobs, jobs, queue).run())
    try:
        await host.wait_for_stop()
    finally:
        if janitor is not None:
            janitor.cancel()
            await asyncio.gather(janitor, return_exceptions=True)
        await host.stop()
        await redis.aclose()
