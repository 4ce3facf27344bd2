"""Builds and runs the analysis_svc gRPC server (Analyze) until SIGTERM."""

from __future__ import annotations

import asyncio

from datapilot.analysis.v1 import analysis_pb2, analysis_pb2_grpc
from datapilot.ingest.v1 import ingest_pb2_grpc

from analysis_svc.rpc.servicer import AnalysisServicer
from analysis_svc.sandbox.pool import POOL, warm_up
from analysis_svc.settings import AnalysisSettings
from datapilot_runtime.grpc_host import GrpcHost, open_channel, upstream_serving
from datapilot_runtime.metrics import start_metrics_server


async def serve(settings: AnalysisSettings) -> None:
    token = settings.internal_auth_token.get_secret_value()
    POOL.set_max_children(settings.analysis_max_children)
    # The forkserver starts now, before any call is served: the environment it is started
    # with is reduced to the allow-list for that moment (see sandbox.pool).
    await asyncio.to_thread(warm_up)
    ingest_channel = open_channel(settings.ingest_addr, token)
    servicer = AnalysisServicer(settings, ingest_pb2_grpc.IngestServiceStub(ingest_channel))
    host = GrpcHost(
        "analysis_svc",
        settings.grpc_listen_addr,
        settings.grpc_shutdown_grace_seconds,
        internal_token=token,
    )
    host.add_service(
        analysis_pb2.DESCRIPTOR.services_by_name["AnalysisService"].full_name,
        lambda server: analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(servicer, server),
    )
    host.install_signal_handlers()
    await host.start()
    start_metrics_server(settings.metrics_host, settings.metrics_port)
    host.watch_readiness({"ingest_svc": lambda: upstream_serving(ingest_channel)})
    try:
        await host.wait_for_stop()
    finally:
        await host.stop()
        await POOL.close()
        await ingest_channel.close()
