"""The blob-store interface, its two backends (local filesystem, S3 via minio) and its retries."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, TypeVar

import urllib3
from minio import Minio
from minio.error import S3Error
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from datapilot_runtime.backoff import BackoffPolicy, retry_async
from ingest_svc.metrics import BLOB_BYTES, BLOB_LATENCY
from ingest_svc.settings import BlobSettings

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
CHUNK_SIZE = 256 * 1024
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class BlobNotFound(Exception):
    """The key has no blob."""


class BlobStoreError(Exception):
    """The store failed after its retries."""


@dataclass(frozen=True)
class StoredBlob:
    """A blob as stored."""

    key: str
    size_bytes: int
    sha256: str


@dataclass
class _Measured:
    bytes: int = 0


@contextlib.contextmanager
def _measure(backend: str, operation: str) -> Iterator[_Measured]:
    """Time a blob operation and count its bytes (when it succeeds)."""
    started = time.perf_counter()
    measured = _Measured()
    yield measured
    BLOB_LATENCY.labels(backend, operation).observe(time.perf_counter() - started)
    BLOB_BYTES.labels(backend, operation).inc(measured.bytes)


def check_key(key: str) -> str:
    """Refuse keys that could escape the store (`..`, absolute paths, odd characters)."""
    if not _KEY_RE.match(key) or ".." in key:
        raise ValueError(f"invalid blob key {key!r}")
    return key


def file_digest(stream: IO[bytes]) -> tuple[int, str]:
    """Size and sha256 of a seekable stream, read from its start; leaves it at the start."""
    stream.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return size, digest.hexdigest()


class BlobStore(Protocol):
    """What ingest_svc needs of a blob store."""

    async def put_stream(
        self, key: str, stream: IO[bytes], digest: tuple[int, str] | None = None
    ) -> StoredBlob:
        """Store a seekable stream (rewound on each retry); replaces any blob with that key.

        `digest` is the stream's (size, sha256) when the caller computed it while writing it.
        """
        ...

    def read_chunks(self, key: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks of at most CHUNK_SIZE; raises BlobNotFound."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob if it exists."""
        ...

    async def check(self) -> None:
        """Raise if the store cannot be reached (readiness)."""
        ...


class FilesystemBlobStore:
    """Blobs as files under a root folder; writes go to a temp file then an atomic rename."""

    def __init__(self, root: Path, policy: BackoffPolicy) -> None:
        self._root = root.resolve()
        self._policy = policy
        self._root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self._root / check_key(key)

    def _write(self, key: str, stream: IO[bytes], digest: tuple[int, str] | None) -> StoredBlob:
        size, sha = digest or file_digest(stream)
        stream.seek(0)
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("wb") as out:
                while chunk := stream.read(CHUNK_SIZE):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredBlob(key, size, sha)

    async def put_stream(
        self, key: str, stream: IO[bytes], digest: tuple[int, str] | None = None
    ) -> StoredBlob:
        async def attempt() -> StoredBlob:
            stream.seek(0)
            return await asyncio.to_thread(self._write, key, stream, digest)

        with _measure("fs", "put") as measured:
            blob = await _with_retry(attempt, self._policy, f"fs put {key}", (OSError,))
            measured.bytes = blob.size_bytes
        return blob

    async def read_chunks(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
                BLOB_BYTES.labels("fs", "get").inc(len(chunk))
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def check(self) -> None:
        probe = self._root / ".ready"
        await asyncio.to_thread(probe.write_bytes, b"ok")


class _S3ServerError(Exception):
    """A retryable S3 error answer (5xx-like codes)."""


_S3_RETRYABLE: tuple[type[BaseException], ...] = (OSError, Urllib3HTTPError, _S3ServerError)


class S3BlobStore:
    """Blobs as objects in one bucket of MinIO or any S3 endpoint, through the minio client."""

    def __init__(self, client: Minio, bucket: str, policy: BackoffPolicy) -> None:
        self._client = client
        self._bucket = bucket
        self._policy = policy
        self._bucket_ready = False

    @classmethod
    def from_settings(cls, settings: BlobSettings, policy: BackoffPolicy) -> S3BlobStore:
        endpoint = re.sub(r"^https?://", "", settings.s3_endpoint).rstrip("/")
        secure = settings.s3_secure or settings.s3_endpoint.startswith("https://")
        # Our retry policy is the only one: the client's own pool retries nothing.
        http_client = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=urllib3.Retry(total=0, connect=0, read=0, redirect=0),
            maxsize=16,
        )
        client = Minio(
            endpoint,
            http_client=http_client,
            access_key=settings.s3_access_key or None,
            secret_key=settings.s3_secret_key or None,
            secure=secure,
            region=settings.s3_region,
        )
        return cls(client, settings.s3_bucket, policy)

    def _call_sync(self, fn: object, *args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)  # type: ignore[operator]
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise BlobNotFound(str(exc.object_name)) from exc
            if exc.code == "NoSuchBucket":  # e.g. a store that came back empty: recreate, retry
                self._bucket_ready = False
                raise _S3ServerError(exc.code) from exc
            if exc.code in ("InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"):
                raise _S3ServerError(exc.code) from exc
            raise BlobStoreError(f"S3 refused the request ({exc.code})") from exc

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return

        def create() -> None:
            try:
                if not self._client.bucket_exists(self._bucket):
                    self._client.make_bucket(self._bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise BlobStoreError(f"S3 bucket unusable ({exc.code})") from exc

        await _with_retry(
            lambda: asyncio.to_thread(create), self._policy, "s3 bucket", _S3_RETRYABLE
        )
        self._bucket_ready = True

    async def put_stream(
        self, key: str, stream: IO[bytes], digest: tuple[int, str] | None = None
    ) -> StoredBlob:
        check_key(key)
        await self._ensure_bucket()
        if digest is None:
            digest = await asyncio.to_thread(file_digest, stream)
        size, sha = digest

        async def attempt() -> StoredBlob:
            await self._ensure_bucket()
            stream.seek(0)
            await asyncio.to_thread(
                self._call_sync,
                self._client.put_object,
                self._bucket,
                key,
                stream,
                size,
                metadata={"x-amz-meta-sha256": sha},
            )
            return StoredBlob(key, size, sha)

        with _measure("s3", "put") as measured:
            blob = await _with_retry(attempt, self._policy, f"s3 put {key}", _S3_RETRYABLE)
            measured.bytes = blob.size_bytes
        return blob

    async def read_chunks(self, key: str) -> AsyncIterator[bytes]:
        check_key(key)
        await self._ensure_bucket()

        async def open_object() -> object:
            await self._ensure_bucket()
            return await asyncio.to_thread(
                self._call_sync, self._client.get_object, self._bucket, key
            )

        response = await _with_retry(open_object, self._policy, f"s3 get {key}", _S3_RETRYABLE)
        try:
            while chunk := await asyncio.to_thread(response.read, CHUNK_SIZE):  # type: ignore[attr-defined]
                BLOB_BYTES.labels("s3", "get").inc(len(chunk))
                yield chunk
        finally:
            response.close()  # type: ignore[attr-defined]
            response.release_conn()  # type: ignore[attr-defined]

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._ensure_bucket()

        async def attempt() -> None:
            await self._ensure_bucket()
            await asyncio.to_thread(self._call_sync, self._client.remove_object, self._bucket, key)

        await _with_retry(attempt, self._policy, f"s3 delete {key}", _S3_RETRYABLE)

    async def check(self) -> None:
        self._bucket_ready = False
        await self._ensure_bucket()


async def _with_retry(
    operation: Callable[[], Awaitable[T]],
    policy: BackoffPolicy,
    name: str,
    retry_on: tuple[type[BaseException], ...],
) -> T:
    try:
        return await retry_async(operation, policy, retry_on, name=name)
    except retry_on as exc:
        raise BlobStoreError(
            f"{name} failed after {policy.attempts} attempts: {type(exc).__name__}"
        ) from exc


def build_blob_store(settings: BlobSettings, policy: BackoffPolicy) -> BlobStore:
    """The backend the settings name."""
    if settings.backend() == "s3":
        _LOGGER.info("blob store: s3 bucket %s at %s", settings.s3_bucket, settings.s3_endpoint)
        return S3BlobStore.from_settings(settings, policy)
    _LOGGER.info("blob store: filesystem at %s", settings.blob_fs_root)
    return FilesystemBlobStore(Path(settings.blob_fs_root), policy)


def spooled_file(directory: str | None = None) -> IO[bytes]:
    """A temp file for spooling uploads: in memory up to 1 MiB, then on disk."""
    return tempfile.SpooledTemporaryFile(max_size=1024 * 1024, dir=directory)
