"""The gateway app in process (httpx ASGITransport) against in-process grpc.aio servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from datapilot.analysis.v1 import analysis_pb2, analysis_pb2_grpc
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fastapi import FastAPI
from pydantic import SecretStr

from analysis_svc.rpc.servicer import AnalysisServicer
from analysis_svc.settings import AnalysisSettings
from datapilot_runtime.grpc_host import GrpcHost, open_channel
from datapilot_runtime.interceptors import StoreErrors
from datapilot_runtime.jobs.queue import JobQueue
from datapilot_runtime.jobs.store import JobStore
from datapilot_runtime.redis_client import connect_redis
from gateway.app import create_app
from gateway.settings import GatewaySettings
from ingest_svc.blob_store import build_blob_store
from ingest_svc.servicer import IngestServicer, store_fault
from ingest_svc.settings import IngestSettings

INTERNAL_TOKEN = "in-process-internal-token"


@dataclass
class InProcessGateway:
    """The app, an HTTP client on it, and what a test may reach behind it."""

    app: FastAPI
    http: httpx.AsyncClient
    store: JobStore
    # A channel to ingest_svc as an internal caller (the worker's view: no tenant).
    internal: ingest_pb2_grpc.IngestServiceStub
    blob_root: Path


@asynccontextmanager
async def _host(
    name: str,
    service: str,
    register: Callable[[grpc.aio.Server], None],
    store_errors: StoreErrors | None = None,
) -> AsyncIterator[GrpcHost]:
    host = GrpcHost(
        name, "127.0.0.1:0", 0.5, internal_token=INTERNAL_TOKEN, store_errors=store_errors
    )
    host.add_service(service, register)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


@asynccontextmanager
async def in_process_gateway(
    redis_url: str, run_dir: Path, *, max_upload_bytes: int, api_keys: str
) -> AsyncIterator[InProcessGateway]:
    """ingest_svc and analysis_svc servicers on free ports, the gateway app in front of them."""
    blob_root = run_dir / "blobs"
    ingest_settings = IngestSettings(
        redis_url=redis_url,
        blob_backend="fs",
        blob_fs_root=str(blob_root),
        max_upload_bytes=max_upload_bytes,
        internal_auth_token=SecretStr(INTERNAL_TOKEN),
        retry_initial_delay=0.01,
        retry_max_delay=0.05,
    )
    redis = await connect_redis(redis_url)
    store = JobStore(redis, ingest_settings.job_record_ttl_seconds)
    blobs = build_blob_store(ingest_settings, ingest_settings.blob_backoff())
    ingest_servicer = IngestServicer(ingest_settings, blobs, store, JobQueue(redis))
    async with _host(
        "ingest_svc",
        ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name,
        lambda server: ingest_pb2_grpc.add_IngestServiceServicer_to_server(ingest_servicer, server),
        store_fault,
    ) as ingest_host:
        ingest_addr = f"127.0.0.1:{ingest_host.port}"
        analysis_ingest = open_channel(ingest_addr, INTERNAL_TOKEN)
        internal = open_channel(ingest_addr, INTERNAL_TOKEN)
        analysis_servicer = AnalysisServicer(
            AnalysisSettings(ingest_addr=ingest_addr, max_upload_bytes=max_upload_bytes),
            ingest_pb2_grpc.IngestServiceStub(analysis_ingest),
        )
        async with _host(
            "analysis_svc",
            analysis_pb2.DESCRIPTOR.services_by_name["AnalysisService"].full_name,
            lambda server: analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(
                analysis_servicer, server
            ),
        ) as analysis_host:
            settings = GatewaySettings(
                ingest_addr=ingest_addr,
                analysis_addr=f"127.0.0.1:{analysis_host.port}",
                max_upload_bytes=max_upload_bytes,
                datapilot_api_keys=SecretStr(api_keys),
                internal_auth_token=SecretStr(INTERNAL_TOKEN),
            )
            app = create_app(settings)
            transport = httpx.ASGITransport(app=app)
            try:
                async with (
                    app.router.lifespan_context(app),
                    httpx.AsyncClient(transport=transport, base_url="http://gateway") as http,
                ):
                    yield InProcessGateway(
                        app, http, store, ingest_pb2_grpc.IngestServiceStub(internal), blob_root
                    )
            finally:
                await internal.close()
                await analysis_ingest.close()
                await redis.aclose()
