"""What only a replicated or sharded Redis needs: WAIT before answering, repairable crash steps."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from datapilot.ingest.v1 import ingest_pb2_grpc
from datapilot.llm.v1 import llm_pb2_grpc

from analysis_svc.jobs.runner import JobRunner
from analysis_svc.jobs.sweeper import Sweeper
from analysis_svc.settings import WorkerSettings
from datapilot_runtime.jobs.keys import active_index_key, idempotency_key, job_key
from datapilot_runtime.jobs.queue import JobQueue, ReplicationLagging
from datapilot_runtime.jobs.store import JobRecord, JobStore, Status
from datapilot_runtime.redis_client import RedisClient
from tests.support.redis_cluster import RedisClusterNodes
from tests.support.servers import RedisTarget, RunningServer

LEASE_SECONDS = 0.2


def _record(tenant: str = "t") -> JobRecord:
    now = time.time()
    return JobRecord(
        job_id=uuid.uuid4().hex,
        status=Status.QUEUED,
        created_at=now,
        timeout_at=now + 60,
        tenant=tenant,
        sha256="s",
    )


@pytest.fixture()
async def cluster_client(redis_cluster: RedisClusterNodes) -> AsyncIterator[RedisClient]:
    redis_cluster.flush()
    client = await RedisTarget(redis_cluster.url, cluster=True).connect()
    yield client
    await client.aclose()


async def test_an_upload_on_a_cluster_returns_once_a_replica_has_it(
    cluster_client: RedisClient,
) -> None:
    queue = JobQueue(cluster_client, 3, wait_replicas=1)
    await queue.ensure_group()
    record = _record()
    await queue.submit(record)  # each master has one replica: WAIT 1 is met
    stored = await JobStore(cluster_client, 3600).get(record.job_id)
    assert stored is not None and stored.message_id


async def test_many_job_reads_in_one_pipeline_span_the_cluster_slots(
    cluster_client: RedisClient,
) -> None:
    """GetJobs' read: records on every master come back in the order asked, missing as None."""
    queue = JobQueue(cluster_client, 3)
    await queue.ensure_group()
    records = [_record(f"t{i}") for i in range(12)]  # 12 random ids: all three masters
    for record in records:
        await queue.submit(record)
    store = JobStore(cluster_client, 3600)
    asked = [r.job_id for r in records] + [uuid.uuid4().hex]
    found = await store.get_many(asked)
    assert [f.job_id if f else None for f in found] == [*asked[:-1], None]
    assert [f.tenant for f in found if f] == [f"t{i}" for i in range(12)]


async def test_too_few_replicas_refuse_the_upload_but_keep_the_job(
    cluster_client: RedisClient,
) -> None:
    """WAIT 2 with one replica a master: refused (a retryable store error), job not undone."""
    queue = JobQueue(cluster_client, 3, wait_replicas=2)
    await queue.ensure_group()
    record = _record()
    with pytest.raises(ReplicationLagging):
        await queue.submit(record)
    stored = await JobStore(cluster_client, 3600).get(record.job_id)
    assert stored is not None and stored.status is Status.QUEUED and stored.message_id


async def test_a_replica_that_stops_acknowledging_refuses_the_upload(
    cluster_client: RedisClient, redis_cluster: RedisClusterNodes
) -> None:
    """WAIT counts what this upload wrote: a frozen replica of the job's master refuses it."""
    queue = JobQueue(cluster_client, 3, wait_replicas=1)
    await queue.ensure_group()
    record = _record()
    replica = redis_cluster.processes[
        redis_cluster.replica_of(redis_cluster.master_of(job_key(record.job_id)))
    ]
    replica.signal(signal.SIGSTOP)
    try:
        with pytest.raises(ReplicationLagging):
            await queue.submit(record)
    finally:
        replica.signal(signal.SIGCONT)
    redis_cluster.wait_healthy()
    await queue.submit(_record())


async def test_wait_on_a_standalone_redis_without_replicas_refuses(
    redis_server: RunningServer,
) -> None:
    client = await RedisTarget(redis_server.url, cluster=False).connect()
    try:
        with pytest.raises(ReplicationLagging):
            await JobQueue(client, wait_replicas=1).submit(_record())
        await JobQueue(client, wait_replicas=0).submit(_record())  # the standalone default
    finally:
        await client.aclose()


async def test_an_idempotent_upload_on_a_cluster_keeps_the_first_job(
    cluster_client: RedisClient,
) -> None:
    queue = JobQueue(cluster_client, 3, wait_replicas=1)
    await queue.ensure_group()
    first, second = _record("acme"), _record("acme")
    assert await queue.submit_idempotent("k", first, 60) == (first.job_id, "s")
    assert await queue.submit_idempotent("k", second, 60) == (first.job_id, "s")
    store = JobStore(cluster_client, 3600)
    assert await store.get(second.job_id) is None  # the loser's record was undone
    assert await cluster_client.exists(idempotency_key("acme", "k")) == 1
    listed, _cursor = await store.list_for_tenant("acme", None, 10, "")
    assert [r.job_id for r in listed] == [first.job_id]


def _sweeper(client: RedisClient, queue: JobQueue) -> Sweeper:
    settings = WorkerSettings(job_lease_seconds=LEASE_SECONDS)
    jobs = JobStore(client, 3600)
    nowhere = grpc.aio.insecure_channel("127.0.0.1:9")  # the sweeps below fail no job
    runner = JobRunner(
        settings,
        jobs,
        queue,
        ingest_pb2_grpc.IngestServiceStub(nowhere),
        llm_pb2_grpc.LlmServiceStub(nowhere),
    )
    return Sweeper(settings, jobs, queue, runner, owner="test")


@pytest.mark.parametrize("crashed_after", ["record", "active index"])
async def test_an_upload_that_crashed_between_its_steps_is_repaired(
    cluster_client: RedisClient, crashed_after: str
) -> None:
    """The state each crash point of the split creation leaves: the sweeper's to repair.

    After the record alone: nothing indexes it (its TTL removes it; the client got no 202).
    After the active index: a queued job without a delivery, which the sweeper enqueues once
    it is older than a lease.
    """
    queue = JobQueue(cluster_client, 3)
    await queue.ensure_group()
    record = _record()
    record.created_at -= 10 * LEASE_SECONDS
    await cluster_client.hset(job_key(record.job_id), mapping=dict(record.to_hash()))  # type: ignore[arg-type]
    await cluster_client.expire(job_key(record.job_id), 3600)
    if crashed_after == "active index":
        shard = queue.shard_of(record.job_id)
        await cluster_client.zadd(active_index_key(shard), {record.job_id: record.timeout_at})
    report = await _sweeper(cluster_client, queue).sweep()
    deliveries = await queue.read("w", count=10, block_ms=100)
    if crashed_after == "record":
        assert report.checked == 0 and deliveries == []
        assert await cluster_client.ttl(job_key(record.job_id)) > 0
        return
    assert report.requeued == 1
    assert [d.job_id for d in deliveries] == [record.job_id]
    stored = await JobStore(cluster_client, 3600).get(record.job_id)
    assert stored is not None and stored.message_id == deliveries[0].message_id


async def test_a_young_job_without_a_delivery_is_left_to_its_upload(
    cluster_client: RedisClient,
) -> None:
    queue = JobQueue(cluster_client, 3)
    await queue.ensure_group()
    record = _record()
    record.created_at += 3600  # "just now", for any lease
    await cluster_client.hset(job_key(record.job_id), mapping=dict(record.to_hash()))  # type: ignore[arg-type]
    shard = queue.shard_of(record.job_id)
    await cluster_client.zadd(active_index_key(shard), {record.job_id: record.timeout_at})
    report = await _sweeper(cluster_client, queue).sweep()
    assert (report.checked, report.requeued) == (1, 0)


async def test_a_handed_back_job_on_a_cluster_is_delivered_again(
    cluster_client: RedisClient,
) -> None:
    queue = JobQueue(cluster_client, 3)
    await queue.ensure_group()
    store = JobStore(cluster_client, 3600)
    record = _record()
    await queue.submit(record)
    (d,) = await queue.read("a", count=1, block_ms=100)
    await store.claim(d.job_id, "ta", 3, take_over=False, owner="a", message_id=d.message_id)
    assert not await queue.requeue(d.job_id, "other", d.message_id)
    assert await queue.requeue(d.job_id, "ta", d.message_id)
    (again,) = await queue.read("b", count=10, block_ms=100)
    assert again.job_id == d.job_id and again.message_id != d.message_id
    stats = await queue.stats()
    assert stats is not None and stats.pending == 1  # the old entry went, the new one is b's
