"""Builds and runs the llm_svc gRPC server until SIGTERM."""

from __future__ import annotations

import logging

from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc

from datapilot_runtime.grpc_host import GrpcHost
from llm_svc.llm_client import LlmClient
from llm_svc.servicer import LlmServicer
from llm_svc.settings import LlmSettings

_LOGGER = logging.getLogger(__name__)


async def serve(settings: LlmSettings) -> None:
    client = None
    if settings.openrouter_api_key.get_secret_value():
        client = LlmClient(settings)
        _LOGGER.info("LLM configured: model %s", settings.llm_model)
    else:
        _LOGGER.info("no OPENROUTER_API_KEY: insights come from the deterministic fallback")
    servicer = LlmServicer(client, settings.llm_model)
    host = GrpcHost("llm_svc", settings.grpc_listen_addr, settings.grpc_shutdown_grace_seconds)
    host.add_service(
        llm_pb2.DESCRIPTOR.services_by_name["LlmService"].full_name,
        lambda server: llm_pb2_grpc.add_LlmServiceServicer_to_server(servicer, server),
    )
    host.install_signal_handlers()
    await host.start()
    try:
        await host.wait_for_stop()
    finally:
        await host.stop()
        if client is not None:
            await client.aclose()
