"""Both blob-store backends against real storage: the filesystem and moto's S3 server."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from minio import Minio

from datapilot_runtime.backoff import BackoffPolicy
from devstack.processes import free_port
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
