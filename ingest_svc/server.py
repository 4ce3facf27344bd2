"""Builds and runs the ingest_svc gRPC server until SIGTERM."""

from __future__ import annotations

from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc

from datapilot_runtime.grpc_host import GrpcHost
from datapilot_runtime.jobs.queue import JobQueue
from datapilot_runtime.jobs.store import JobStore
from datapilot_runtime.metrics import start_metrics_server
from datapilot_runtime.redis_client import connect_redis
from ingest_svc.blob_store import build_blob_store
from ingest_svc.rate_limit import TenantRateLimit
from ingest_svc.servicer import IngestServicer, require_tenant, store_fault
from ingest_svc.settings import IngestSettings


async def serve(settings: IngestSettings) -> None:
    redis = await connect_redis(settings.redis_url)
    blobs = build_blob_store(settings, settings.blob_backoff())
    await blobs.check()
    jobs = JobStore(redis, settings.job_record_ttl_seconds)
    servicer = IngestServicer(settings, blobs, jobs, JobQueue(redis))
    host = GrpcHost(
        "ingest_svc",
        settings.grpc_listen_addr,
        settings.grpc_shutdown_grace_seconds,
        internal_token=settings.internal_auth_token.get_secret_value(),
        transport=settings,
        admissions=(require_tenant, TenantRateLimit(redis, settings.rate_limit_per_minute)),
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
    try:
        await host.wait_for_stop()
    finally:
        await host.stop()
        await redis.aclose()
