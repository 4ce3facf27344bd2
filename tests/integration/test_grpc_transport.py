"""gRPC hops over TLS (mutual with a CA), reflection behind the internal token, rediss:// Redis.

Real servers and real handshakes: a GrpcHost on a free port, clients made by the same helpers the
services use, certificates from a CA the test makes; a real redis-server listening on TLS only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from datapilot_runtime.context import INTERNAL_TOKEN_METADATA_KEY
from datapilot_runtime.grpc_host import GrpcHost, open_channel, open_plain_channel, upstream_serving
from datapilot_runtime.grpc_probe import probe
from datapilot_runtime.redis_client import connect_redis
from datapilot_runtime.settings import GrpcTransportSettings
from tests.support.tls import CertFiles, ThrowawayCa, start_tls_redis

TOKEN = "transport-test-token"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCa:
    return ThrowawayCa(tmp_path_factory.mktemp("ca"))


def _transport(
    files: CertFiles | None = None, *, ca: Path | None = None, reflection: bool = True
) -> GrpcTransportSettings:
    return GrpcTransportSettings(
        grpc_tls_cert_file=str(files.cert) if files else "",
        grpc_tls_key_file=str(files.key) if files else "",
        grpc_tls_ca_file=str(ca) if ca else "",
        grpc_reflection=reflection,
    )


async def _host(transport: GrpcTransportSettings, token: str = "") -> GrpcHost:
    host = GrpcHost("tls-test", "127.0.0.1:0", 0.2, internal_token=token, transport=transport)
    await host.start()
    return host


async def _serving(address: str, transport: GrpcTransportSettings) -> bool:
    channel = open_plain_channel(address, transport)
    try:
        await upstream_serving(channel)
    except grpc.aio.AioRpcError:
        return False
    finally:
        await channel.close()
    return True


async def test_mutual_tls_admits_only_clients_with_a_cert_of_the_ca(
    ca: ThrowawayCa, tmp_path: Path
) -> None:
    server = ca.issue("ingest")
    host = await _host(_transport(server, ca=ca.ca_file))
    address = f"127.0.0.1:{host.port}"
    try:
        assert await _serving(address, _transport(ca.issue("gateway"), ca=ca.ca_file))
        # Verifies the server, but presents no certificate: the handshake is refused.
        assert not await _serving(address, _transport(ca=ca.ca_file))
        # A certificate from another CA is refused too.
        stranger = ThrowawayCa(tmp_path / "other").issue("gateway")
        assert not await _serving(address, _transport(stranger, ca=ca.ca_file))
        # Plaintext gets nothing.
        assert not await _serving(address, _transport())
    finally:
        await host.stop()


async def test_tls_without_a_server_ca_is_one_way(ca: ThrowawayCa, tmp_path: Path) -> None:
    host = await _host(_transport(ca.issue("llm")))
    address = f"127.0.0.1:{host.port}"
    try:
        assert await _serving(address, _transport(ca=ca.ca_file))
        # The client checks the server against its CA: another CA's server is not trusted.
        other = ThrowawayCa(tmp_path / "other")
        assert not await _serving(address, _transport(ca=other.ca_file))
    finally:
        await host.stop()


def test_a_cert_without_its_key_is_refused_at_start(ca: ThrowawayCa) -> None:
    with pytest.raises(ValueError, match="together"):
        GrpcTransportSettings(grpc_tls_cert_file=str(ca.issue("x").cert))


async def _list_services(address: str, metadata: tuple[tuple[str, str], ...] = ()) -> list[str]:
    channel = open_channel(address)
    try:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        call = stub.ServerReflectionInfo(requests(), metadata=metadata, timeout=5)
        names = [
            service.name async for reply in call for service in reply.list_services_response.service
        ]
    finally:
        await channel.close()
    return names


async def test_reflection_asks_for_the_internal_token() -> None:
    host = await _host(_transport(), token=TOKEN)
    address = f"127.0.0.1:{host.port}"
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _list_services(address)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        names = await _list_services(address, ((INTERNAL_TOKEN_METADATA_KEY, TOKEN),))
        assert "grpc.health.v1.Health" in names
        # Health checks still answer anyone (probes carry no token).
        assert await _serving(address, _transport())
    finally:
        await host.stop()


async def test_grpc_reflection_false_turns_it_off() -> None:
    host = await _host(_transport(reflection=False))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _list_services(f"127.0.0.1:{host.port}")
        assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        await host.stop()


@pytest.fixture(scope="module")
def tls_redis(ca: ThrowawayCa, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server that only speaks TLS; yields its rediss:// URL."""
    server = start_tls_redis(ca, tmp_path_factory.mktemp("tls-redis"))
    try:
        yield server.url
    finally:
        server.stop()


async def test_rediss_url_connects_with_the_ca(
    tls_redis: str, ca: ThrowawayCa, tmp_path: Path
) -> None:
    client = await connect_redis(tls_redis, tls_ca_file=str(ca.ca_file))
    try:
        assert await client.set("tls-probe", "1") and await client.get("tls-probe") == "1"
    finally:
        await client.aclose()
    # A CA that did not sign Redis's certificate: the connection is refused, not downgraded.
    with pytest.raises(Exception, match=r"(?i)certificate|ssl"):
        await connect_redis(tls_redis, tls_ca_file=str(ThrowawayCa(tmp_path / "other").ca_file))


async def test_the_tls_probe_checks_health_over_mutual_tls(
    ca: ThrowawayCa, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m datapilot_runtime.grpc_probe` (the pods' probe under components/grpc-tls)."""
    host = await _host(_transport(ca.issue("ingest"), ca=ca.ca_file))
    try:
        for name, value in ca.issue("probe").grpc_env().items():
            monkeypatch.setenv(name, value)
        assert await asyncio.to_thread(probe, host.port, "")
        assert await asyncio.to_thread(probe, host.port, "no-such-service") is False
        for name in ("GRPC_TLS_CERT_FILE", "GRPC_TLS_KEY_FILE", "GRPC_TLS_CA_FILE"):
            monkeypatch.delenv(name)
        assert await asyncio.to_thread(probe, host.port, "") is False  # plaintext: refused
    finally:
        await host.stop()
