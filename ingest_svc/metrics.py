"""Prometheus metrics of ingest_svc: blob-store operations and rate-limit refusals."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from datapilot_runtime.metrics import LATENCY_BUCKETS

BLOB_LATENCY = Histogram(
    "datapilot_blob_operation_seconds",
    "Blob-store operation duration",
    ["backend", "operation"],
    buckets=LATENCY_BUCKETS,
)
BLOB_BYTES = Counter(
    "datapilot_blob_bytes_total", "Bytes moved by the blob store", ["backend", "operation"]
)
RATE_LIMITED = Counter("datapilot_rate_limited_total", "Requests refused by the rate limit")
JOB_WATCHES = Gauge(
    "datapilot_job_watches", "WatchJob streams open (live job events) in this process"
)
