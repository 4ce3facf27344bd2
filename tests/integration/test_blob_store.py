"""Both blob-store backends against real storage: the filesystem and moto's S3 server."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule

from datapilot_runtime.backoff import BackoffPolicy
from devstack.processes import free_port
from ingest_svc import blob_store
from ingest_svc.blob_store import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    FilesystemBlobStore,
    S3BlobStore,
    check_key,
)
from ingest_svc.settings import BlobSettings
from tests.support.servers import RunningServer

REPO = Path(__file__).resolve().parents[2]
POLICY = BackoffPolicy(attempts=3, initial_delay=0.01, factor=2, max_delay=0.05)


def _s3(endpoint: str, bucket: str) -> S3BlobStore:
    settings = BlobSettings(
        blob_backend="s3",
        s3_endpoint=endpoint,
        s3_access_key="test",
        s3_secret_key="test",
        s3_bucket=bucket,
    )
    return S3BlobStore.from_settings(settings, POLICY)


@pytest.fixture(params=["fs", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, moto_server: RunningServer
) -> AsyncIterator[BlobStore]:
    if request.param == "fs":
        yield FilesystemBlobStore(tmp_path / "blobs", POLICY)
    else:
        yield _s3(moto_server.url, "blob-tests")


async def _read_all(store: BlobStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.read_chunks(key)])


async def test_round_trip_of_a_multi_chunk_blob(store: BlobStore) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    stored = await store.put_stream("jobs/abc/input", io.BytesIO(payload))
    assert stored.size_bytes == len(payload)
    assert stored.sha256 == hashlib.sha256(payload).hexdigest()
    assert await _read_all(store, "jobs/abc/input") == payload


async def test_put_replaces_idempotently(store: BlobStore) -> None:
    await store.put_stream("jobs/x/result.json", io.BytesIO(b"first"))
    await store.put_stream("jobs/x/result.json", io.BytesIO(b"second"))
    assert await _read_all(store, "jobs/x/result.json") == b"second"


async def test_missing_blob_raises_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await _read_all(store, "jobs/none/input")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../b", "a//b", ""])
def test_keys_cannot_escape_the_store(key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        check_key(key)


async def test_unreachable_s3_fails_after_its_retries() -> None:
    store = _s3(f"http://127.0.0.1:{free_port()}", "nowhere")
    with pytest.raises(BlobStoreError, match="after 3 attempts"):
        await store.put_stream("jobs/a/input", io.BytesIO(b"data"))


async def test_s3_bucket_that_vanished_is_recreated(moto_server: RunningServer) -> None:
    store = _s3(moto_server.url, "vanishing")
    await store.put_stream("jobs/v/input", io.BytesIO(b"first"))
    raw = Minio(moto_server.url.removeprefix("http://"), "test", "test", secure=False)
    raw.remove_object("vanishing", "jobs/v/input")
    raw.remove_bucket("vanishing")  # as when an S3 endpoint comes back empty
    stored = await store.put_stream("jobs/v/input", io.BytesIO(b"second"))
    assert stored.size_bytes == 6
    assert await _read_all(store, "jobs/v/input") == b"second"


async def test_a_listing_is_in_key_order_page_by_page(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both backends list in S3's order (`a.x` before `a/b`), from a cursor on, in pages."""
    monkeypatch.setattr(blob_store, "LIST_PAGE", 3)  # several pages out of a few keys
    prefix = f"jobs-{uuid.uuid4().hex[:8]}/"
    names = ["a.x", "a/b", "a/c/d", "b", "b-1/z", "c", "c0/y"]
    for size, name in enumerate(names, start=1):
        await store.put_stream(prefix + name, io.BytesIO(b"x" * size))
    await store.put_stream("elsewhere/a", io.BytesIO(b"outside the prefix"))
    listed = [info async for info in store.list_blobs(prefix)]
    assert [info.key for info in listed] == sorted(prefix + name for name in names)
    assert {info.key: info.size_bytes for info in listed} == {
        prefix + name: size for size, name in enumerate(names, start=1)
    }
    rest = [info.key async for info in store.list_blobs(prefix, start_after=prefix + "a/c/d")]
    assert rest == sorted(prefix + name for name in ("b", "b-1/z", "c", "c0/y"))


async def test_a_listing_skips_writes_in_progress(store: BlobStore) -> None:
    prefix = f"jobs-{uuid.uuid4().hex[:8]}/"
    writer = await store.open_writer(prefix + "input")
    await writer.write(b"not yet complete")
    assert [info async for info in store.list_blobs(prefix)] == []
    await writer.complete()
    assert [info.key async for info in store.list_blobs(prefix)] == [prefix + "input"]


async def test_stat_gives_size_and_write_time(store: BlobStore) -> None:
    before = time.time()
    await store.put_stream("jobs/s/input", io.BytesIO(b"12345"))
    info = await store.stat("jobs/s/input")
    assert info.size_bytes == 5
    assert before - 5 <= info.modified_at <= time.time() + 5  # S3 dates are to the second
    with pytest.raises(BlobNotFound):
        await store.stat("jobs/s/missing")


def _rules(moto: RunningServer, bucket: str) -> list[Rule]:
    raw = Minio(moto.url.removeprefix("http://"), "test", "test", secure=False)
    config = raw.get_bucket_lifecycle(bucket)
    return list(config.rules) if config is not None else []


async def test_a_new_bucket_gets_the_abort_incomplete_uploads_rule(
    moto_server: RunningServer,
) -> None:
    bucket = f"lifecycle-{uuid.uuid4().hex[:8]}"
    await _s3(moto_server.url, bucket).check()  # creates the bucket, as ingest does at start
    (rule,) = await asyncio.to_thread(_rules, moto_server, bucket)
    assert rule.rule_id == blob_store.LIFECYCLE_RULE_ID
    assert rule.status == ENABLED
    assert rule.abort_incomplete_multipart_upload is not None
    assert rule.abort_incomplete_multipart_upload.days_after_initiation == 1


async def test_a_bucket_with_lifecycle_rules_of_its_own_is_left_alone(
    moto_server: RunningServer,
) -> None:
    bucket = f"owned-{uuid.uuid4().hex[:8]}"
    raw = Minio(moto_server.url.removeprefix("http://"), "test", "test", secure=False)
    raw.make_bucket(bucket)
    theirs = LifecycleConfig(
        [
            Rule(
                ENABLED,
                rule_filter=Filter(prefix="tmp/"),
                rule_id="theirs",
                expiration=Expiration(days=3),
            )
        ]
    )
    raw.set_bucket_lifecycle(bucket, theirs)
    await _s3(moto_server.url, bucket).check()
    (rule,) = await asyncio.to_thread(_rules, moto_server, bucket)
    assert rule.rule_id == "theirs"


async def test_no_lifecycle_rule_when_turned_off(moto_server: RunningServer) -> None:
    bucket = f"no-lifecycle-{uuid.uuid4().hex[:8]}"
    settings = BlobSettings(
        blob_backend="s3",
        s3_endpoint=moto_server.url,
        s3_access_key="test",
        s3_secret_key="test",
        s3_bucket=bucket,
        s3_abort_incomplete_uploads_days=0,
    )
    await S3BlobStore.from_settings(settings, POLICY).check()
    assert await asyncio.to_thread(_rules, moto_server, bucket) == []


def test_the_documented_lifecycle_is_the_one_ingest_applies() -> None:
    """deploy/s3/lifecycle.json (for `aws s3api put-bucket-lifecycle-configuration`) = code."""
    document = json.loads((REPO / "deploy" / "s3" / "lifecycle.json").read_text())
    (rule,) = blob_store.lifecycle_config(1).rules
    assert document == {
        "Rules": [
            {
                "ID": rule.rule_id,
                "Status": rule.status,
                "Filter": {"Prefix": ""},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            }
        ]
    }


async def test_delete_many_removes_those_named_and_no_other(store: BlobStore) -> None:
    prefix = f"jobs-{uuid.uuid4().hex[:8]}/"
    for name in ("a", "b", "c"):
        await store.put_stream(prefix + name, io.BytesIO(name.encode()))
    await store.delete_many([prefix + "a", prefix + "c", prefix + "never-stored"])
    await store.delete_many([])
    assert [info.key async for info in store.list_blobs(prefix)] == [prefix + "b"]
