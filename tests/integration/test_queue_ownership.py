"""Queue ownership on a real Redis (cluster too): tokens, renewals, releases, lost replies."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from datapilot_runtime.jobs.keys import CONSUMER_GROUP, job_key, stream_key
from datapilot_runtime.jobs.queue import Delivery, JobQueue
from datapilot_runtime.jobs.store import ACTIVE, ClaimOutcome, JobRecord, JobStore, Status
from datapilot_runtime.redis_client import RedisClient, connect_redis
from tests.support.fault_proxy import FaultProxy
from tests.support.servers import RedisTarget, RunningServer

# Short enough that a blackholed command fails fast here; the production default is 5 s.
TEST_SOCKET_TIMEOUT = 0.5
# Every wait below is for an event; this only turns a hang (the bug) into a failure.
HANG = 60


async def _parts(target: RedisTarget) -> AsyncIterator[tuple[JobQueue, JobStore]]:
    client = await target.connect()
    await client.flushdb()
    queue = JobQueue(client, target.shards)
    await queue.ensure_group()
    yield queue, JobStore(client, record_ttl_seconds=3600)
    await client.aclose()


@pytest.fixture()
async def parts(job_redis: RedisTarget) -> AsyncIterator[tuple[JobQueue, JobStore]]:
    async for made in _parts(job_redis):
        yield made


@pytest.fixture()
async def standalone_parts(
    redis_server: RunningServer,
) -> AsyncIterator[tuple[JobQueue, JobStore]]:
    """For the tests that put a fault proxy in front of the one standalone server."""
    async for made in _parts(RedisTarget(redis_server.url, cluster=False)):
        yield made


@pytest.fixture()
async def proxy(redis_server: RunningServer) -> AsyncIterator[FaultProxy]:
    running = await FaultProxy(redis_server.port).start()
    yield running
    await running.stop()


def _record() -> JobRecord:
    now = time.time()
    return JobRecord(
        job_id=uuid.uuid4().hex, status=Status.QUEUED, created_at=now, timeout_at=now + 60
    )


async def _submitted(queue: JobQueue, consumer: str) -> Delivery:
    await queue.submit(_record())
    (delivery,) = await queue.read(consumer, count=1, block_ms=100)
    return delivery


async def _pending_owner(client: RedisClient, d: Delivery, message_id: str = "") -> str | None:
    message_id = message_id or d.message_id
    rows = await client.xpending_range(
        stream_key(d.shard), CONSUMER_GROUP, min=message_id, max=message_id, count=1
    )
    return str(rows[0]["consumer"]) if rows else None


async def test_a_claim_is_idempotent_for_its_token(parts: tuple[JobQueue, JobStore]) -> None:
    queue, store = parts
    d = await _submitted(queue, "a")
    first = await store.claim(
        d.job_id, "t1", 3, take_over=False, owner="a", message_id=d.message_id
    )
    again = await store.claim(
        d.job_id, "t1", 3, take_over=False, owner="a", message_id=d.message_id
    )
    other = await store.claim(
        d.job_id, "t2", 3, take_over=False, owner="b", message_id=d.message_id
    )
    assert (first.outcome, first.attempt) == (ClaimOutcome.CLAIMED, 1)
    assert (again.outcome, again.attempt) == (ClaimOutcome.CLAIMED, 1)
    assert other.outcome is ClaimOutcome.NOT_CLAIMABLE


async def test_a_claim_resent_after_a_lost_reply_is_ours(
    standalone_parts: tuple[JobQueue, JobStore], proxy: FaultProxy
) -> None:
    """The claim runs, its reply is lost, redis-py re-sends it: the job is claimed once, by us."""
    queue, _store = standalone_parts
    client = await connect_redis(proxy.url, socket_timeout=TEST_SOCKET_TIMEOUT)
    try:
        store = JobStore(client, record_ttl_seconds=3600)
        warm = await _submitted(queue, "a")  # loads the script: the lost reply is not NOSCRIPT
        await store.claim(warm.job_id, "w", 3, take_over=False, owner="a")
        d = await _submitted(queue, "a")
        proxy.drop_replies = 1
        async with asyncio.timeout(HANG):
            claim = await store.claim(
                d.job_id, "tok", 3, take_over=False, owner="a", message_id=d.message_id
            )
        assert proxy.dropped.is_set()
        assert (claim.outcome, claim.attempt) == (ClaimOutcome.CLAIMED, 1)
        record = await store.get(d.job_id)
        assert record is not None and record.attempt == 1 and record.lease_token == "tok"
    finally:
        await client.aclose()


async def test_a_half_open_connection_fails_commands_instead_of_hanging(
    proxy: FaultProxy,
) -> None:
    client = await connect_redis(proxy.url, socket_timeout=TEST_SOCKET_TIMEOUT)
    try:
        proxy.blackholed = True
        async with asyncio.timeout(HANG):
            with pytest.raises(RedisTimeoutError):
                await client.get("anything")
        proxy.blackholed = False  # the link is back: a new connection serves the next command
        async with asyncio.timeout(HANG):
            assert await client.ping()
    finally:
        await client.aclose()


async def test_the_cancel_listener_notices_a_half_open_link(proxy: FaultProxy) -> None:
    """Pub/sub waits are bounded and health-checked: a dead link raises (then resubscribed)."""
    client = await connect_redis(proxy.url, socket_timeout=TEST_SOCKET_TIMEOUT)
    try:
        listener = JobQueue(client).cancellations(poll_seconds=0.1, silence_seconds=0.5)
        first = asyncio.ensure_future(anext(listener))
        await asyncio.sleep(0)  # the subscription is being made
        proxy.blackholed = True
        async with asyncio.timeout(HANG):
            with pytest.raises(RedisError):
                await first
    finally:
        await client.aclose()


async def test_renewal_takes_no_entry_back_from_its_new_holder(
    parts: tuple[JobQueue, JobStore],
) -> None:
    queue, store = parts
    d = await _submitted(queue, "a")
    assert await queue.renew("a", [d]) == {d.message_id}
    assert await queue.reclaim("b", idle_ms=0, count=10) == [d]  # b took it over
    assert await queue.renew("a", [d]) == set()
    assert await _pending_owner(store.redis, d) == "b"


async def test_a_duplicate_entry_never_takes_over_a_held_job(
    parts: tuple[JobQueue, JobStore],
) -> None:
    queue, store = parts
    d = await _submitted(queue, "a")
    claim = await store.claim(
        d.job_id, "ta", 3, take_over=False, owner="a", message_id=d.message_id
    )
    assert claim.outcome is ClaimOutcome.CLAIMED
    duplicate_id = await store.redis.xadd(stream_key(d.shard), {"job_id": d.job_id})
    (dup,) = await queue.read("b", count=1, block_ms=100)
    assert dup.message_id == duplicate_id
    stolen = await store.claim(
        d.job_id, "tb", 3, take_over=True, owner="b", message_id=duplicate_id
    )
    assert stolen.outcome is ClaimOutcome.NOT_CLAIMABLE
    assert await queue.release(dup)  # a duplicate is acknowledged
    assert await _pending_owner(store.redis, d, duplicate_id) is None
    record = await store.get(d.job_id)
    assert record is not None and record.lease_token == "ta"


async def test_a_run_that_lost_its_lease_leaves_the_entry_to_the_new_holder(
    parts: tuple[JobQueue, JobStore],
) -> None:
    """Worker a's run ends after b took the job over: a's release keeps b's entry pending."""
    queue, store = parts
    d = await _submitted(queue, "a")
    await store.claim(d.job_id, "ta", 3, take_over=False, owner="a", message_id=d.message_id)
    (taken,) = await queue.reclaim("b", idle_ms=0, count=10)
    take = await store.claim(
        d.job_id, "tb", 3, take_over=True, owner="b", message_id=taken.message_id
    )
    assert (take.outcome, take.attempt) == (ClaimOutcome.CLAIMED, 2)
    assert not await queue.release(d)
    assert await _pending_owner(store.redis, d) == "b"
    done = await store.transition(d.job_id, ACTIVE, Status.COMPLETED, lease_token="tb")
    assert done.applied
    assert await queue.release(d)
    assert await _pending_owner(store.redis, d) is None


async def test_reclaim_follows_the_cursor(parts: tuple[JobQueue, JobStore]) -> None:
    queue, _store = parts
    # Three jobs of one shard: the cursor is per shard.
    records = (r for r in iter(_record, None) if queue.shard_of(r.job_id) == 0)
    for _ in range(3):
        await queue.submit(next(records))
    delivered = await queue.read("dead", count=3, block_ms=100)
    seen = [d for _ in range(3) for d in await queue.reclaim("alive", idle_ms=0, count=1)]
    assert seen == delivered


async def test_reenqueue_replaces_a_lost_entry_once(parts: tuple[JobQueue, JobStore]) -> None:
    queue, store = parts
    d = await _submitted(queue, "a")
    await store.claim(d.job_id, "ta", 3, take_over=False, owner="a", message_id=d.message_id)
    await store.redis.xdel(stream_key(d.shard), d.message_id)  # evicted, say
    assert not await queue.entry_exists(d.job_id, d.message_id)
    assert [job.job_id for job in await queue.active_jobs()] == [d.job_id]
    assert await queue.reenqueue(d.job_id, d.message_id)
    assert not await queue.reenqueue(d.job_id, d.message_id)  # moved on: a second is refused
    record = await store.get(d.job_id)
    assert record is not None and record.status is Status.QUEUED and record.lease_token == ""
    fresh = await queue.read("b", count=10, block_ms=100)
    assert [x.job_id for x in fresh] == [d.job_id, d.job_id]
    current = [x for x in fresh if x.message_id == record.message_id]
    assert len(current) == 1
    claim = await store.claim(
        d.job_id, "tb", 3, take_over=False, owner="b", message_id=current[0].message_id
    )
    assert claim.outcome is ClaimOutcome.CLAIMED
    (duplicate,) = [x for x in fresh if x.message_id != record.message_id]
    assert await queue.release(duplicate)


async def test_a_lost_group_is_named_nogroup_and_recreated(
    parts: tuple[JobQueue, JobStore],
) -> None:
    from datapilot_runtime.jobs.queue import is_nogroup

    queue, store = parts
    await store.redis.flushall()
    await queue.submit(_record())  # XADD recreates the stream without the group
    with pytest.raises(RedisError) as refused:
        await queue.read("a", count=1, block_ms=10)
    assert is_nogroup(refused.value)
    assert await queue.stats() is None
    await queue.ensure_group()
    assert len(await queue.read("a", count=1, block_ms=100)) == 1


async def test_marking_a_vanished_job_stopped_recreates_nothing(
    parts: tuple[JobQueue, JobStore],
) -> None:
    _queue, store = parts
    job_id = uuid.uuid4().hex
    await store.mark_stopped(job_id)
    assert await store.redis.exists(job_key(job_id)) == 0


async def test_a_completion_resent_after_a_lost_reply_is_ours(
    standalone_parts: tuple[JobQueue, JobStore], proxy: FaultProxy
) -> None:
    queue, _store = standalone_parts
    client = await connect_redis(proxy.url, socket_timeout=TEST_SOCKET_TIMEOUT)
    try:
        store = JobStore(client, record_ttl_seconds=3600)
        warm = await _submitted(queue, "a")  # loads the script: the lost reply is not NOSCRIPT
        await store.transition(warm.job_id, ACTIVE, Status.CANCELLED)
        d = await _submitted(queue, "a")
        await store.claim(d.job_id, "tok", 3, take_over=False, owner="a", message_id=d.message_id)
        proxy.drop_replies = 1
        async with asyncio.timeout(HANG):
            done = await store.transition(
                d.job_id, (Status.PROCESSING,), Status.COMPLETED, lease_token="tok"
            )
        assert proxy.dropped.is_set()
        assert done.applied and done.status is Status.COMPLETED
        stale = await store.transition(
            d.job_id, (Status.PROCESSING,), Status.COMPLETED, lease_token="other"
        )
        assert not stale.applied
    finally:
        await client.aclose()
