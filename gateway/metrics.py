"""Prometheus metrics of the gateway: HTTP requests and their latency."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from datapilot_runtime.metrics import LATENCY_BUCKETS

HTTP_REQUESTS = Counter(
    "datapilot_http_requests_total",
    "HTTP requests served by the gateway",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "datapilot_http_request_latency_seconds",
    "HTTP request duration at the gateway",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
