"""Prometheus metrics of the job worker: finished jobs, their duration, the queue's backlog."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

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
QUEUE_HEALTHY = Gauge(
    "datapilot_queue_healthy",
    "1 while this worker can read the job queue (consumer group present), else 0",
)
QUEUE_REPAIRS = Counter(
    "datapilot_queue_repairs_total",
    "What the queue rebuilt: a lost consumer group, a job re-enqueued, an expired job failed",
    ["kind"],
)
