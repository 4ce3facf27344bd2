"""Scenario 4: the S3 endpoint unreachable for 2 s (uploads retry and succeed) and for long.

The stack talks to moto's S3 server through a TCP forwarder on a fixed loopback port
(`tests/support/chaos.py`); the outage takes the forwarder down (connections refused, open ones
cut) and brings it back on the same port. moto itself keeps running: restarting moto would
wipe its in-memory buckets, which is data loss on the storage side, not an outage: a real S3
or MinIO keeps its objects while it is unreachable. "Nothing half-written" is then checked on
both stores after the run: a refused upload leaves no job record in Redis and no object in the
bucket; every submitted job has its input object, and exactly the artifact its end state names.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from minio import Minio

from datapilot_runtime import artifacts
from devstack.processes import wait_tcp
from devstack.stack import Stack
from tests.chaos.harness import (
    SCALE,
    Upload,
    UploadStream,
    check,
    job_records,
    metric_total,
    reconcile,
    report,
    running_stack,
    sales_csv,
    settle,
    wait_until,
)
from tests.chaos.summary import Outcomes
from tests.support.chaos import TcpProxy
from tests.support.jobs_redis import job_fields
from tests.support.servers import RunningServer, start_moto

pytestmark = pytest.mark.timeout(SCALE.test_timeout)
BUCKET = "chaos"
# 4 attempts, 1 s then 2 s apart (+-10 %): an upload rides out an outage of about 4.5 s.
ENV = {
    "BLOB_RETRY_ATTEMPTS": "4",
    "RETRY_INITIAL_DELAY": "1.0",
    "RETRY_MAX_DELAY": "2.0",
    "WORKER_CONCURRENCY": "2",
}
STORAGE_FAILURES = {"blob_download_failed", "blob_upload_failed"}


@pytest.fixture()
def moto(tmp_path: Path) -> Iterator[RunningServer]:
    server = start_moto(tmp_path / "moto")
    yield server
    server.stop()


@pytest.fixture()
def proxy(moto: RunningServer) -> Iterator[TcpProxy]:
    forwarder = TcpProxy(moto.port).up()
    yield forwarder
    forwarder.down()


def _env(proxy: TcpProxy, slow_seconds: float) -> dict[str, str]:
    return {
        **ENV,
        "BLOB_BACKEND": "s3",
        "S3_ENDPOINT": proxy.url,
        "S3_ACCESS_KEY": "test",
        "S3_SECRET_KEY": "test",
        "S3_BUCKET": BUCKET,
        "SIMULATED_SLOW_PROCESSING_SECONDS": str(slow_seconds),
    }


def _uploads(prefix: str, count: int) -> list[Upload]:
    return [Upload(f"{prefix}{n}.csv", sales_csv(n)) for n in range(count)]


def _outage(proxy: TcpProxy, seconds: float, out: Outcomes) -> None:
    proxy.down()
    time.sleep(seconds)
    proxy.up()
    out.notes.append(f"S3 unreachable {seconds:.0f}s")


@dataclass(frozen=True)
class Stored:
    """What the stores hold after a run: job ids with a record in Redis, object names in S3."""

    records: set[str]
    objects: set[str]
    results: dict[str, str]  # a completed job's result object: the one its record names

    @classmethod
    def read(cls, stack: Stack, moto: RunningServer) -> Stored:
        client = Minio(f"127.0.0.1:{moto.port}", access_key="test", secret_key="test", secure=False)
        listing = client.list_objects(BUCKET, "jobs/", recursive=True)
        records = job_records(stack)
        results = {}
        for job_id in records:
            fields = job_fields(stack, job_id)
            if fields.get("status") == "completed":
                results[job_id] = artifacts.result_key(job_id, fields["lease_token"])
        return cls(records, {str(o.object_name) for o in listing}, results)

    def check(self, out: Outcomes) -> None:
        """Job records = submitted jobs; objects = each job's input + the artifact of its end."""
        assert self.records == set(out.accepted), "job records no 202 announced, or missing ones"
        expected = {f"jobs/{job_id}/input" for job_id in out.accepted}
        for job in out.final.values():
            if job.status == "completed":
                expected.add(self.results[job.job_id])
            elif job.status == "failed":
                expected.add(artifacts.error_key(job.job_id))
        # A delivery that stored its result and then lost its lease leaves it under its own
        # name (never served; the blob janitor's to delete): only a job run again has one.
        rerun = {job.job_id for job in out.final.values() if job.attempt > 1}
        unexplained = {
            name
            for name in self.objects - expected
            if not (name.split("/")[1] in rerun and name.split("/")[2] == "results")
        }
        assert not unexplained and expected <= self.objects, (
            f"objects no job explains: {sorted(unexplained)[:5]}, "
            f"missing: {sorted(expected - self.objects)[:5]}"
        )


def test_s3_blip_of_2s_uploads_retry_and_succeed(
    tmp_path: Path, moto: RunningServer, proxy: TcpProxy
) -> None:
    """Every upload made during a 2 s outage is retried and accepted; every job completes."""
    out = Outcomes("4a s3 down 2s")
    with running_stack(tmp_path / "stack", _env(proxy, 0.2)) as stack:
        stream = UploadStream(
            stack.gateway_url, _uploads("b", SCALE.jobs), out, clients=2, interval=0.2
        ).start()
        wait_until(lambda: len(out.accepted) >= 2, 60, "uploads before the outage")
        _outage(proxy, 2.0, out)
        stream.join(120)
        settle(stack.gateway_url, out, timeout=SCALE.test_timeout / 2)
        retried = metric_total(
            stack.metrics_ports["ingest"], "datapilot_retries_total", outcome="recovered"
        )
        out.notes.append(f"{retried:.0f} blob operations recovered by retry")
        stored = Stored.read(stack, moto)
    report(out)
    check(out, allowed_failures=set(), allowed_refusals=set())
    stored.check(out)
    assert retried >= 1, "no blob operation met the outage"


def test_long_s3_outage_refuses_uploads_clearly_and_loses_nothing(
    tmp_path: Path, moto: RunningServer, proxy: TcpProxy
) -> None:
    """Uploads during the outage: 503 `blob_upload_failed`, not submitted, nothing stored.

    Jobs in flight either finish or fail with `blob_download_failed` / `blob_upload_failed`,
    and then have their error.json once S3 is back. Uploads after the outage all succeed.
    """
    out = Outcomes(f"4b s3 down {SCALE.s3_long_outage:.0f}s")
    with running_stack(tmp_path / "stack", _env(proxy, 1.0)) as stack:
        before = UploadStream(stack.gateway_url, _uploads("p", 8), out, clients=2).start()
        before.join(60)
        during = UploadStream(
            stack.gateway_url, _uploads("d", 500), out, clients=2, interval=0.2
        ).start()
        _outage(proxy, SCALE.s3_long_outage, out)
        during.stop()
        during.join(60)
        after = _uploads("a", 6)
        later = Outcomes("after")
        UploadStream(stack.gateway_url, after, later, clients=2).start().join(60)
        assert len(later.accepted) == len(after), f"after the outage: {later.line()}"
        for job_id in later.accepted:
            out.accept(job_id, "after")
        settle(stack.gateway_url, out, timeout=SCALE.test_timeout / 2)
        stored = Stored.read(stack, moto)
    report(out)
    assert out.refused, "no upload met the outage"
    assert not later.refused, f"uploads after the outage were refused: {later.refused}"
    check(out, STORAGE_FAILURES, allowed_refusals={"503 blob_upload_failed"})
    stored.check(out)
    assert all(out.final[j].status == "completed" for j in out.jobs_labelled("after")), out.line()


def test_s3_restart_that_loses_its_data_is_reported_clearly(
    tmp_path: Path, moto: RunningServer, proxy: TcpProxy
) -> None:
    """moto restarted on the same port comes back empty: the bucket and every object are gone.

    That is data loss in the store, which no retry can undo; the system must say so, not crash:
    uploads get a 202 or a 503 `blob_upload_failed` (never a 500), jobs whose input vanished fail
    with `blob_download_failed` and their error.json, and uploads after it complete.
    """
    out = Outcomes("4c s3 restarted empty")
    with running_stack(tmp_path / "stack", _env(proxy, 1.0)) as stack:
        UploadStream(stack.gateway_url, _uploads("q", 8), out, clients=2).start().join(60)
        during = UploadStream(
            stack.gateway_url, _uploads("d", 500), out, clients=2, interval=0.2
        ).start()
        moto.process.stop()
        moto.process.start()
        wait_tcp("127.0.0.1", moto.port, 30, moto.process)
        sent = during.sent
        wait_until(lambda: during.sent >= sent + 4, 60, "uploads to meet the emptied store")
        during.stop()
        during.join(60)
        after = _uploads("a", 6)
        later = Outcomes("after")
        UploadStream(stack.gateway_url, after, later, clients=2).start().join(60)
        assert len(later.accepted) == len(after), f"after the restart: {later.line()}"
        for job_id in later.accepted:
            out.accept(job_id, "after")
        settle(stack.gateway_url, out, timeout=SCALE.test_timeout / 2)
        reconcile(stack, out)  # Redis kept its records; only the objects are gone
        dead = stack.dead()
    report(out)
    assert not dead, f"processes died: {dead}"
    assert not later.refused, f"uploads after the restart were refused: {later.refused}"
    check(out, STORAGE_FAILURES, allowed_refusals={"503 blob_upload_failed"})
    assert all(out.final[j].status == "completed" for j in out.jobs_labelled("after")), out.line()
