"""Prometheus metrics of ingest_svc: blob-store operations, stored blobs, rate-limit refusals."""

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
# Set from the janitor's last complete round over the store (shared through Redis, so every
# ingest pod exports the same figures: aggregate with max, not sum).
BLOB_STORED_BYTES = Gauge(
    "datapilot_blob_stored_bytes", "Bytes of job blobs in the store at the janitor's last round"
)
BLOB_STORED_OBJECTS = Gauge(
    "datapilot_blob_stored_objects", "Job blobs in the store at the janitor's last round"
)
BLOB_JANITOR_DELETED = Counter(
    "datapilot_blob_janitor_deleted_total",
    "Blobs the janitor deleted: expired (a job that ran, its record gone), orphan (an input only)",
    ["reason"],
)
JOB_WATCHES = Gauge(
    "datapilot_job_watches", "WatchJob streams open (live job events) in this process"
)
SPOOL_BYTES = Gauge(
    "datapilot_ingest_spool_bytes",
    "Bytes reserved by uploads in flight (bounded by INGEST_SPOOL_MAX_BYTES)",
)
