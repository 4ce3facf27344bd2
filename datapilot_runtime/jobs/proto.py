"""Conversions between stored job records and the `datapilot.common.v1.Job` message."""

from __future__ import annotations

from datapilot.common.v1 import common_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from datapilot_runtime.jobs.store import JobRecord


def _timestamp(seconds: float | None) -> Timestamp | None:
    if not seconds:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def record_to_proto(record: JobRecord) -> common_pb2.Job:
    """The wire form of a stored job."""
    job = common_pb2.Job(
        job_id=record.job_id,
        status=record.status.proto,
        progress=record.progress,
        result_url=record.result_url,
        error=record.error,
        error_message=record.error_message,
        attempt=record.attempt,
        filename=record.filename,
        size_bytes=record.size_bytes,
        tenant=record.tenant,
        content_type=record.content_type,
        options_json=record.options_json,
    )
    for name, value in (
        ("created_at", record.created_at),
        ("started_at", record.started_at),
        ("finished_at", record.finished_at),
        ("timeout_at", record.timeout_at),
    ):
        stamp = _timestamp(value)
        if stamp is not None:
            getattr(job, name).CopyFrom(stamp)
    return job
