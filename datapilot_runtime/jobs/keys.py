"""Every Redis key and channel of the job system, built in one place with its cluster hash tag.

Redis Cluster puts a key in the slot of the text between its first `{` and the next `}` (its
hash tag); a Lua script or MULTI may only touch keys of one slot. So:

- all keys of one job share the tag `{job:<id>}` (its record; issue 17's event stream goes here);
- per-tenant keys (idempotency keys, the tenant's job index, the rate-limit bucket) share
  `{tenant:<tenant>}`, so the idempotency check and the tenant index are one script;
- each stream shard has its own tag `{jobs:<n>}`, shared by its stream and its index of
  non-terminal jobs (the sweeper's), so the queue is not one hot key.

A job's stream shard is a stable hash of its id (`shard_of`), so every entry of a job is in the
same shard whoever writes it. Key names changed when the cluster layout came in (no migration: a
standalone Redis of an older version is started empty, see the README's queue section).
"""

from __future__ import annotations

import zlib

# The consumer group on every shard's stream.
CONSUMER_GROUP = "dp-workers"
# Where a transition to cancelled is announced (PUBLISH reaches every node of a cluster).
CANCEL_CHANNEL = "dp:jobs:cancel"
# One sweeper at a time across all workers (a plain key: its slot does not matter).
SWEEPER_LOCK_KEY = "dp:jobs:sweeper-lock"
# The blob janitor (ingest_svc): its short lock (one pass per interval across all ingest pods)
# and its progress through the store (cursor, running totals, last round's totals), one hash.
BLOB_JANITOR_LOCK_KEY = "dp:blobs:janitor-lock"
BLOB_JANITOR_STATE_KEY = "dp:blobs:janitor"
# SCAN pattern of the job records (tests and operators; the service never scans).
JOB_KEY_PATTERN = "dp:{job:*}"


def job_key(job_id: str) -> str:
    """The job's record (a hash)."""
    return f"dp:{{job:{job_id}}}"


def job_id_of_key(key: str) -> str:
    """The job id in a key matching JOB_KEY_PATTERN."""
    return key.removeprefix("dp:{job:").removesuffix("}")


def events_key(job_id: str) -> str:
    """A job's change feed (live job events): in its record's slot, so the script that changes
    the record appends to it."""
    return job_key(job_id) + ":events"


def job_sync_key(job_id: str) -> str:
    """A short-lived key in the job's slot, written right before WAIT on that slot's master."""
    return f"dp:{{job:{job_id}}}:sync"


def _tenant_tag(tenant: str) -> str:
    return f"{{tenant:{tenant}}}"


def idempotency_key(tenant: str, digest: str) -> str:
    """An idempotency key of `tenant` (digest: a hash of the tenant and the client's key)."""
    return f"dp:{_tenant_tag(tenant)}:idem:{digest}"


def tenant_sync_key(tenant: str) -> str:
    """A short-lived key in the tenant's slot, written right before WAIT on that slot's master."""
    return f"dp:{_tenant_tag(tenant)}:sync"


def tenant_index_key(tenant: str) -> str:
    """The tenant's jobs, scored by createdAt (the job list)."""
    return f"dp:{_tenant_tag(tenant)}:jobs"


def rate_limit_key(tenant: str) -> str:
    """The tenant's token bucket."""
    return f"dp:{_tenant_tag(tenant)}:ratelimit"


def shard_of(job_id: str, shards: int) -> int:
    """The stream shard of a job: CRC32 of its id (stable across processes, unlike hash())."""
    return zlib.crc32(job_id.encode()) % shards


def stream_key(shard: int) -> str:
    """The work stream of one shard."""
    return f"dp:{{jobs:{shard}}}:stream"


def active_index_key(shard: int) -> str:
    """The shard's jobs that may still be non-terminal, scored by timeoutAt (the sweeper's)."""
    return f"dp:{{jobs:{shard}}}:active"


def shard_sync_key(shard: int) -> str:
    """A short-lived key in the shard's slot, written right before WAIT on that slot's master."""
    return f"dp:{{jobs:{shard}}}:sync"
