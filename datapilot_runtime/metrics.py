"""Prometheus metrics shared by the processes, and the HTTP endpoint that exposes them."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

_LOGGER = logging.getLogger(__name__)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

GRPC_SERVER_REQUESTS = Counter(
    "datapilot_grpc_server_requests_total", "gRPC calls served", ["service", "method", "code"]
)
GRPC_SERVER_LATENCY = Histogram(
    "datapilot_grpc_server_latency_seconds",
    "gRPC call duration, server side",
    ["service", "method"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "datapilot_http_requests_total",
    "HTTP requests served by the gateway",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "datapilot_http_request_latency_seconds",
    "HTTP request duration at the gateway",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
JOBS_FINISHED = Counter(
    "datapilot_jobs_finished_total", "Jobs that reached a terminal state", ["status", "error"]
)
JOB_DURATION = Histogram(
    "datapilot_job_duration_seconds",
    "From claim to terminal state",
    ["status"],
    buckets=_JOB_BUCKETS,
)
QUEUE_DEPTH = Gauge("datapilot_queue_depth", "Job stream entries not yet delivered to a worker")
QUEUE_PENDING = Gauge(
    "datapilot_queue_pending", "Job stream entries delivered but not acknowledged"
)
JOBS_RUNNING = Gauge("datapilot_worker_jobs_running", "Jobs this worker runs now")
RETRIES = Counter("datapilot_retries_total", "Retried operations", ["operation", "outcome"])
BLOB_LATENCY = Histogram(
    "datapilot_blob_operation_seconds",
    "Blob-store operation duration",
    ["backend", "operation"],
    buckets=_LATENCY_BUCKETS,
)
BLOB_BYTES = Counter(
    "datapilot_blob_bytes_total", "Bytes moved by the blob store", ["backend", "operation"]
)
RATE_LIMITED = Counter("datapilot_rate_limited_total", "Requests refused by the rate limit")


def start_metrics_server(host: str, port: int) -> None:
    """Serve /metrics over HTTP on host:port (0 = off)."""
    if port:
        start_http_server(port, addr=host)
        _LOGGER.info("metrics on http://%s:%d/metrics", host, port)
