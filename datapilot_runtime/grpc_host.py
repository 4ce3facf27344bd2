"""gRPC server bootstrap shared by the services: health, reflection, signals, graceful stop.

Also the one place channels and ports are made, so that optional TLS (GRPC_TLS_* settings,
mutual with a CA) covers every hop; a process that does not pass its settings gets them from
the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from datapilot_runtime.interceptors import (
    Admission,
    ServerContextInterceptor,
    StoreErrors,
    client_interceptors,
)
from datapilot_runtime.settings import GrpcTlsSettings, GrpcTransportSettings

_LOGGER = logging.getLogger(__name__)
# The health "service" name whose status reflects the process's dependencies (readiness probe);
# the overall status ("") stays SERVING while the process runs (liveness probe).
READINESS_SERVICE = "readiness"
READINESS_INTERVAL_SECONDS = 5.0
READINESS_CHECK_TIMEOUT_SECONDS = 2.0
DependencyCheck = Callable[[], Awaitable[object]]
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
]
# Client side: spread calls over every address a (headless) service name resolves to.
CLIENT_OPTIONS: list[tuple[str, Any]] = [*CHANNEL_OPTIONS, ("grpc.lb_policy_name", "round_robin")]


async def upstream_serving(channel: grpc.aio.Channel) -> None:
    """Raise unless the service behind `channel` answers SERVING to a health check."""
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=READINESS_CHECK_TIMEOUT_SECONDS
    )
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise ConnectionError("upstream not serving")


def _transport(given: GrpcTransportSettings | None) -> GrpcTransportSettings:
    return given if given is not None else GrpcTransportSettings()


def _tls(given: GrpcTlsSettings | None) -> GrpcTlsSettings:
    return given if given is not None else GrpcTlsSettings()


def server_credentials(transport: GrpcTlsSettings) -> grpc.ServerCredentials | None:
    """TLS credentials of a server (None: plaintext); with a CA, clients must present a cert."""
    if not transport.grpc_tls_cert_file:
        return None
    ca = Path(transport.grpc_tls_ca_file).read_bytes() if transport.grpc_tls_ca_file else None
    return grpc.ssl_server_credentials(
        [
            (
                Path(transport.grpc_tls_key_file).read_bytes(),
                Path(transport.grpc_tls_cert_file).read_bytes(),
            )
        ],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def channel_credentials(transport: GrpcTlsSettings) -> grpc.ChannelCredentials | None:
    """TLS credentials of a client (None: plaintext): verify the server with the CA, and
    present this process's certificate when it has one (for servers that require it)."""
    if not transport.grpc_tls_ca_file:
        return None
    cert = key = None
    if transport.grpc_tls_cert_file:
        cert = Path(transport.grpc_tls_cert_file).read_bytes()
        key = Path(transport.grpc_tls_key_file).read_bytes()
    return grpc.ssl_channel_credentials(
        root_certificates=Path(transport.grpc_tls_ca_file).read_bytes(),
        private_key=key,
        certificate_chain=cert,
    )


def _channel(
    address: str,
    transport: GrpcTlsSettings | None,
    interceptors: list[grpc.aio.ClientInterceptor] | None = None,
) -> grpc.aio.Channel:
    credentials = channel_credentials(_tls(transport))
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=CLIENT_OPTIONS, interceptors=interceptors)
    return grpc.aio.secure_channel(
        address, credentials, options=CLIENT_OPTIONS, interceptors=interceptors
    )


def open_plain_channel(address: str, transport: GrpcTlsSettings | None = None) -> grpc.aio.Channel:
    """A channel without interceptors: its stubs add the metadata (`with_outgoing_metadata`)."""
    return _channel(address, transport)


def open_channel(
    address: str, internal_token: str = "", transport: GrpcTlsSettings | None = None
) -> grpc.aio.Channel:
    """A channel to `address` with the standard interceptors (TLS when the settings say so)."""
    return _channel(address, transport, client_interceptors(internal_token))


class GrpcHost:
    """One grpc.aio server with the standard health service and reflection."""

    def __init__(
        self,
        name: str,
        listen_addr: str,
        grace_seconds: float,
        *,
        internal_token: str = "",
        admissions: tuple[Admission, ...] = (),
        store_errors: StoreErrors | None = None,
        transport: GrpcTransportSettings | None = None,
    ) -> None:
        self.name = name
        self._transport_settings = _transport(transport)
        self._listen_addr = listen_addr
        self._grace = grace_seconds
        self.server = grpc.aio.server(
            interceptors=[ServerContextInterceptor(name, internal_token, admissions, store_errors)],
            options=CHANNEL_OPTIONS,
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._service_names: list[str] = [
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        ]
        self._stop = asyncio.Event()
        self._readiness: asyncio.Task[None] | None = None
        self.port = 0

    def add_service(self, full_name: str, register: Callable[[grpc.aio.Server], None]) -> None:
        """Register a servicer; `full_name` is its proto service name (for health/reflection)."""
        register(self.server)
        self._service_names.append(full_name)

    async def start(self) -> int:
        """Bind, start, mark every service SERVING; returns the bound port."""
        if self._transport_settings.grpc_reflection:
            reflection.enable_server_reflection(
                [*self._service_names, reflection.SERVICE_NAME], self.server
            )
        credentials = server_credentials(self._transport_settings)
        if credentials is None:
            self.port = self.server.add_insecure_port(self._listen_addr)
        else:
            self.port = self.server.add_secure_port(self._listen_addr, credentials)
        if self.port == 0:
            raise RuntimeError(f"{self.name}: cannot bind {self._listen_addr}")
        await self.server.start()
        for service in ["", *self._service_names]:
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        _LOGGER.info(
            "%s listening on %s (port %d, %s)",
            self.name,
            self._listen_addr,
            self.port,
            "plaintext" if credentials is None else "TLS",
        )
        return self.port

    def watch_readiness(self, checks: dict[str, DependencyCheck]) -> None:
        """Keep the `readiness` health status in step with the dependencies' checks."""
        self._readiness = asyncio.create_task(self._readiness_loop(checks))

    async def _readiness_loop(self, checks: dict[str, DependencyCheck]) -> None:
        was_ready: bool | None = None
        while not self._stop.is_set():
            failures = []
            for name, check in checks.items():
                try:
                    async with asyncio.timeout(READINESS_CHECK_TIMEOUT_SECONDS):
                        await check()
                except Exception as exc:
                    failures.append(f"{name} ({type(exc).__name__})")
            ready = not failures
            if ready != was_ready:
                if ready:
                    _LOGGER.info("%s ready: dependencies reachable", self.name)
                else:
                    _LOGGER.warning("%s not ready: %s", self.name, ", ".join(failures))
                was_ready = ready
            status = health_pb2.HealthCheckResponse
            await self.health.set(
                READINESS_SERVICE, status.SERVING if ready else status.NOT_SERVING
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), READINESS_INTERVAL_SECONDS)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT ask for a graceful stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_for_stop(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        """NOT_SERVING first, then stop taking calls and let in-flight ones finish (grace)."""
        _LOGGER.info("%s stopping (grace %.1fs)", self.name, self._grace)
        self._stop.set()
        if self._readiness is not None:
            self._readiness.cancel()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self._grace)
        _LOGGER.info("%s stopped", self.name)
