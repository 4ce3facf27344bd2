"""Job store on a real Redis, standalone and cluster: atomic transitions, terminal states."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import cast

import pytest

from datapilot_runtime.jobs.keys import CANCEL_CHANNEL, events_key, job_key, stream_key
from datapilot_runtime.jobs.queue import JobQueue
from datapilot_runtime.jobs.store import ACTIVE, EVENTS_TTL_SECONDS, JobRecord, JobStore, Status
from tests.support.servers import RedisTarget


@pytest.fixture()
async def store(job_redis: RedisTarget) -> AsyncIterator[JobStore]:
    client = await job_redis.connect()
    yield JobStore(client, record_ttl_seconds=3600)
    await client.aclose()


async def _new_job(store: JobStore) -> str:
    job_id = uuid.uuid4().hex
    now = time.time()
    await JobQueue(store.redis).submit(
        JobRecord(job_id=job_id, status=Status.QUEUED, created_at=now, timeout_at=now + 60)
    )
    return job_id


async def test_create_stores_record_and_enqueues(store: JobStore) -> None:
    job_id = await _new_job(store)
    record = await store.get(job_id)
    assert record is not None and record.status is Status.QUEUED
    entries = cast(list[tuple[str, dict[str, str]]], await store.redis.xrange(stream_key(0)))
    assert any(fields["job_id"] == job_id for _id, fields in entries)


async def test_terminal_state_never_changes(store: JobStore) -> None:
    job_id = await _new_job(store)
    assert (await store.transition(job_id, (Status.QUEUED,), Status.PROCESSING)).applied
    done = await store.transition(job_id, (Status.PROCESSING,), Status.COMPLETED)
    assert done.applied and done.status is Status.COMPLETED
    for target in (Status.FAILED, Status.CANCELLED, Status.PROCESSING, Status.QUEUED):
        refused = await store.transition(job_id, ACTIVE, target)
        assert not refused.applied
        assert refused.status is Status.COMPLETED
    record = await store.get(job_id)
    assert record is not None and record.progress == 100
    assert await store.redis.ttl(job_key(job_id)) > 0


async def test_unknown_job_transition_reports_missing(store: JobStore) -> None:
    result = await store.transition("0" * 32, ACTIVE, Status.CANCELLED)
    assert not result.applied and result.status is None


async def test_racing_terminal_transitions_have_exactly_one_winner(store: JobStore) -> None:
    for _ in range(20):
        job_id = await _new_job(store)
        await store.transition(job_id, (Status.QUEUED,), Status.PROCESSING)
        targets = [Status.COMPLETED, Status.FAILED, Status.CANCELLED] * 10
        results = await asyncio.gather(
            *(store.transition(job_id, ACTIVE, target) for target in targets)
        )
        winners = [r for r in results if r.applied]
        assert len(winners) == 1
        final = await store.get(job_id)
        assert final is not None and final.status is winners[0].status


async def test_progress_only_rises_and_only_while_processing(store: JobStore) -> None:
    job_id = await _new_job(store)
    assert not await store.set_progress(job_id, 50)
    await store.transition(job_id, (Status.QUEUED,), Status.PROCESSING)
    assert await store.set_progress(job_id, 40)
    assert not await store.set_progress(job_id, 20)
    record = await store.get(job_id)
    assert record is not None and record.progress == 40


async def test_cancel_is_announced_on_pub_sub(store: JobStore, job_redis: RedisTarget) -> None:
    listener = await job_redis.connect()
    pubsub = listener.pubsub()
    await pubsub.subscribe(CANCEL_CHANNEL)
    await pubsub.get_message(timeout=1)
    job_id = await _new_job(store)
    await store.transition(job_id, ACTIVE, Status.CANCELLED)
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert message is not None and message["data"] == f"{job_id} cancelled"
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await listener.aclose()


async def _feed(store: JobStore, job_id: str) -> list[tuple[str, int]]:
    changes = await store.changes(job_id, "0-0", block_ms=1)
    return [(c.record.status.value, c.record.progress) for c in changes]


async def test_every_change_is_in_the_jobs_feed_and_nothing_else(store: JobStore) -> None:
    job_id = await _new_job(store)
    claim = await store.claim(job_id, "token-1", 3, take_over=False, message_id="1-0")
    assert claim.outcome.value == "claimed"
    assert await store.set_progress(job_id, 40)
    assert not await store.set_progress(job_id, 30)  # refused: not a change, no event
    assert not (await store.transition(job_id, (Status.QUEUED,), Status.FAILED)).applied
    done = await store.transition(
        job_id, (Status.PROCESSING,), Status.COMPLETED, lease_token="token-1"
    )
    assert done.applied
    assert await _feed(store, job_id) == [
        ("queued", 0),
        ("processing", 0),
        ("processing", 40),
        ("completed", 100),
    ]
    # Short-lived, and the snapshot read with it names its latest change.
    assert 0 < await store.redis.ttl(events_key(job_id)) <= EVENTS_TTL_SECONDS
    record, latest = await store.snapshot(job_id)
    assert record is not None and record.status is Status.COMPLETED
    changes = await store.changes(job_id, "0-0", block_ms=1)
    assert latest == changes[-1].event_id
    assert await store.changes(job_id, latest, block_ms=1) == []


async def test_a_requeued_job_announces_its_return_to_the_queue(store: JobStore) -> None:
    job_id = await _new_job(store)
    queue = JobQueue(store.redis)
    await queue.ensure_group()
    record = await store.get(job_id)
    assert record is not None
    await store.claim(job_id, "token-2", 3, take_over=False, message_id=record.message_id)
    assert await queue.requeue(job_id, "token-2", record.message_id)
    assert [status for status, _ in await _feed(store, job_id)] == [
        "queued",
        "processing",
        "queued",
    ]
