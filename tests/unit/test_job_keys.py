"""The key layout: each job's keys, each tenant's keys and each shard's keys share one slot."""

from __future__ import annotations

import uuid

from redis.crc import key_slot

from datapilot_runtime.jobs import keys


def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


def test_the_keys_of_one_job_share_a_slot_and_two_jobs_spread() -> None:
    ids = [uuid.uuid4().hex for _ in range(50)]
    for job_id in ids:
        assert _slot(keys.job_key(job_id)) == _slot(keys.job_sync_key(job_id))
        assert keys.job_id_of_key(keys.job_key(job_id)) == job_id
    assert len({_slot(keys.job_key(job_id)) for job_id in ids}) > 40  # not one hot slot


def test_a_tenants_keys_share_a_slot() -> None:
    for tenant in ("", "acme", "tenant-with-{brace}"):
        slot = _slot(keys.tenant_index_key(tenant))
        assert _slot(keys.idempotency_key(tenant, "d" * 64)) == slot
        assert _slot(keys.rate_limit_key(tenant)) == slot


def test_each_shard_has_its_own_slot_for_its_stream_and_index() -> None:
    slots = set()
    for shard in range(8):
        slot = _slot(keys.stream_key(shard))
        assert _slot(keys.active_index_key(shard)) == slot == _slot(keys.shard_sync_key(shard))
        slots.add(slot)
    assert len(slots) == 8


def test_a_job_always_goes_to_the_same_shard_and_jobs_spread_over_all() -> None:
    ids = [uuid.uuid4().hex for _ in range(400)]
    assert all(keys.shard_of(job_id, 1) == 0 for job_id in ids)
    shards = [keys.shard_of(job_id, 4) for job_id in ids]
    assert shards == [keys.shard_of(job_id, 4) for job_id in ids]
    assert set(shards) == {0, 1, 2, 3}
