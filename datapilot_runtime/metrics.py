"""Prometheus metrics every gRPC process has (calls served, retries) and their HTTP endpoint.

A process's own metrics live with it: `gateway.metrics`, `ingest_svc.metrics`,
`analysis_svc.jobs.metrics`, `llm_svc.metrics`.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram, start_http_server

_LOGGER = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

GRPC_SERVER_REQUESTS = Counter(
    "datapilot_grpc_server_requests_total", "gRPC calls served", ["service", "method", "code"]
)
GRPC_SERVER_LATENCY = Histogram(
    "datapilot_grpc_server_latency_seconds",
    "gRPC call duration, server side",
    ["service", "method"],
    buckets=LATENCY_BUCKETS,
)
RETRIES = Counter("datapilot_retries_total", "Retried operations", ["operation", "outcome"])


def start_metrics_server(host: str, port: int) -> None:
    """Serve /metrics over HTTP on host:port (0 = off)."""
    if port:
        start_http_server(port, addr=host)
        _LOGGER.info("metrics on http://%s:%d/metrics", host, port)
