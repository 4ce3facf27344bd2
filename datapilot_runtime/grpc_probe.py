"""`python -m datapilot_runtime.grpc_probe PORT [SERVICE]`: a health probe that speaks TLS.

Kubernetes' native gRPC probes are plaintext only; with the TLS component a pod probes itself
through this (exit 0 when SERVING) with the same GRPC_TLS_* settings as its clients.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from datapilot_runtime.grpc_host import READINESS_CHECK_TIMEOUT_SECONDS, channel_credentials
from datapilot_runtime.settings import GrpcTlsSettings


def probe(port: int, service: str = "", host: str = "localhost") -> bool:
    """True when the server on `host:port` answers SERVING for `service`."""
    credentials = channel_credentials(GrpcTlsSettings())
    target = f"{host}:{port}"
    channel = (
        grpc.insecure_channel(target)
        if credentials is None
        else grpc.secure_channel(target, credentials)
    )
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=READINESS_CHECK_TIMEOUT_SECONDS,
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2 or not argv[0].isdigit():
        sys.stderr.write("usage: python -m datapilot_runtime.grpc_probe PORT [SERVICE]\n")
        return 2
    return 0 if probe(int(argv[0]), argv[1] if len(argv) == 2 else "") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
