"""Starts the REST gateway on uvicorn: `python -m gateway`."""

from __future__ import annotations

import logging
import sys

import uvicorn

from datapilot_runtime.gc_tuning import freeze_startup_heap
from datapilot_runtime.logs import configure_logging
from datapilot_runtime.memory import retain_freed_memory
from datapilot_runtime.tracing import configure_tracing, instrument_asgi
from gateway.app import create_app
from gateway.bind_policy import anonymous_bind_refusal
from gateway.server import GracefulServer
from gateway.settings import GatewaySettings

_LOGGER = logging.getLogger("gateway")


def main() -> None:
    retain_freed_memory()  # before any buffer or thread: uploads reuse warm pages
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    configure_tracing("gateway")
    refusal = anonymous_bind_refusal(settings)
    if refusal:
        _LOGGER.error(refusal)
        sys.exit(2)
    app = create_app(settings)
    instrument_asgi(app)
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        # The C event loop and HTTP parser: most of a poll's gateway time is HTTP and asyncio.
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=int(settings.grpc_shutdown_grace_seconds),
    )
    freeze_startup_heap()
    GracefulServer(config).run()


if __name__ == "__main__":
    main()
