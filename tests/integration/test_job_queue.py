"""The job queue on a real Redis, standalone and cluster: read, renew, reclaim, ack, requeue."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from datapilot_runtime.jobs.keys import CANCEL_CHANNEL, CONSUMER_GROUP, stream_key
from datapilot_runtime.jobs.queue import Delivery, JobQueue
from datapilot_runtime.jobs.store import ACTIVE, JobRecord, JobStore, Status
from datapilot_runtime.redis_client import RedisClient
from tests.support.servers import RedisTarget

LEASE_MS = 1000


@pytest.fixture()
async def parts(job_redis: RedisTarget) -> AsyncIterator[tuple[JobQueue, JobStore]]:
    client = await job_redis.connect()
    await client.flushdb()
    queue = JobQueue(client, job_redis.shards)
    await queue.ensure_group()
    yield queue, JobStore(client, record_ttl_seconds=3600)
    await client.aclose()


def _record() -> JobRecord:
    now = time.time()
    return JobRecord(
        job_id=uuid.uuid4().hex, status=Status.QUEUED, created_at=now, timeout_at=now + 60
    )


async def test_a_submitted_job_is_read_once(parts: tuple[JobQueue, JobStore]) -> None:
    queue, store = parts
    record = _record()
    await queue.submit(record)
    stored = await store.get(record.job_id)
    assert stored is not None and stored.status is Status.QUEUED
    first = await queue.read("a", count=10, block_ms=100)
    assert [d.job_id for d in first] == [record.job_id]
    assert await queue.read("b", count=10, block_ms=10) == []
    stats = await queue.stats()
    assert stats is not None and (stats.lag, stats.pending) == (0, 1)


async def test_ensure_group_twice_is_harmless(parts: tuple[JobQueue, JobStore]) -> None:
    queue, _store = parts
    await queue.ensure_group()
    assert await queue.stats() is not None


async def _idle_ms(queue_client: RedisClient, delivery: Delivery) -> int:
    (entry,) = await queue_client.xpending_range(
        stream_key(delivery.shard),
        CONSUMER_GROUP,
        min=delivery.message_id,
        max=delivery.message_id,
        count=1,
    )
    return int(entry["time_since_delivered"])


async def test_renewal_keeps_an_entry_from_reclaim(parts: tuple[JobQueue, JobStore]) -> None:
    queue, store = parts
    await queue.submit(_record())
    (delivery,) = await queue.read("dead", count=1, block_ms=100)
    await asyncio.sleep(LEASE_MS / 1000 + 0.1)  # the entry's idle time must pass the lease
    assert await _idle_ms(store.redis, delivery) >= LEASE_MS
    await queue.renew("dead", [delivery])
    assert await _idle_ms(store.redis, delivery) < LEASE_MS
    assert await queue.reclaim("alive", idle_ms=LEASE_MS, count=10) == []
    assert await queue.reclaim("alive", idle_ms=0, count=10) == [delivery]


async def test_acknowledged_entries_are_gone(parts: tuple[JobQueue, JobStore]) -> None:
    queue, _store = parts
    await queue.submit(_record())
    (delivery,) = await queue.read("a", count=1, block_ms=100)
    await queue.acknowledge(delivery)
    stats = await queue.stats()
    assert stats is not None and stats.pending == 0
    assert await queue.reclaim("b", idle_ms=0, count=10) == []


async def test_requeue_needs_the_lease_and_makes_a_new_entry(
    parts: tuple[JobQueue, JobStore],
) -> None:
    queue, store = parts
    record = _record()
    await queue.submit(record)
    (delivery,) = await queue.read("a", count=1, block_ms=100)
    claim = await store.claim(record.job_id, "token-a", max_attempts=3, take_over=False)
    assert claim.attempt == 1
    assert not await queue.requeue(record.job_id, "someone-else", delivery.message_id)
    assert await queue.requeue(record.job_id, "token-a", delivery.message_id)
    again = await store.get(record.job_id)
    assert again is not None and again.status is Status.QUEUED and again.lease_token == ""
    (redelivered,) = await queue.read("b", count=1, block_ms=100)
    assert redelivered.job_id == record.job_id
    assert redelivered.message_id != delivery.message_id


async def test_idempotent_submission_keeps_the_first_job(
    parts: tuple[JobQueue, JobStore],
) -> None:
    queue, _store = parts
    first, second = _record(), _record()
    assert await queue.submit_idempotent("key", first, 60) == (first.job_id, first.sha256)
    assert await queue.submit_idempotent("key", second, 60) == (first.job_id, first.sha256)
    assert await queue.find_idempotent("", "key") == (first.job_id, first.sha256)
    assert await queue.find_idempotent("", "other") is None
    assert await _store_has(_store, second.job_id) is False  # the loser's record is undone
    deliveries = await queue.read("a", count=10, block_ms=100)
    assert [d.job_id for d in deliveries] == [first.job_id]


async def _store_has(store: JobStore, job_id: str) -> bool:
    return await store.get(job_id) is not None


async def test_cancellations_are_announced(parts: tuple[JobQueue, JobStore]) -> None:
    queue, store = parts
    record = _record()
    await queue.submit(record)
    received: asyncio.Queue[str] = asyncio.Queue()
    subscribed = asyncio.Event()

    async def listen() -> None:
        stream = queue.cancellations()
        # The subscription is made when the generator first runs; poll until it is in place.
        first = asyncio.ensure_future(anext(stream))
        subscribed.set()
        received.put_nowait(await first)

    listener = asyncio.create_task(listen())
    await subscribed.wait()
    for _ in range(1000):  # Redis announces no subscription: look until it is there
        if (await store.redis.pubsub_numsub(CANCEL_CHANNEL))[0][1]:
            break
        await asyncio.sleep(0.01)
    assert (await store.transition(record.job_id, ACTIVE, Status.CANCELLED)).applied
    assert await asyncio.wait_for(received.get(), 5) == record.job_id
    await listener
