"""The blob-store interface, its two backends (local filesystem, S3 via minio) and its retries."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import logging
import os
import re
import stat
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol, TypeVar, cast

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.credentials.credentials import Credentials
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.helpers import DictType
from minio.lifecycleconfig import AbortIncompleteMultipartUpload, LifecycleConfig, Rule
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from datapilot_runtime.backoff import BackoffPolicy, retry_async
from ingest_svc.metrics import BLOB_BYTES, BLOB_LATENCY
from ingest_svc.settings import BlobSettings

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
CHUNK_SIZE = 256 * 1024
# S3's smallest part (all but the last); at 20 MiB an upload is 4 parts, the last one sent as
# soon as the stream ends.
PART_BYTES = 5 * 1024 * 1024
# Every part of a 20 MiB upload may travel at once: the last one is not held back behind the
# first (which the S3 server may still be digesting), and memory stays at four parts.
PARTS_IN_FLIGHT = 4
# A writer hashes what it has received in batches of this much, in a thread, while the next
# bytes arrive: when the stream ends, at most one batch is left to hash before the last part
# can go (a whole part was, 5 MiB, hashed twice: for the blob and for the request signature).
HASH_BATCH_BYTES = 1024 * 1024
# The multipart upload is started once the first part is this full, so that its round trip
# overlaps the rest of the part's arrival instead of holding up the stream when the part is
# full. A blob that stays under one part is still a single PUT (its started upload aborted).
START_UPLOAD_BYTES = PART_BYTES // 2
# A header that is never sent: it tells `_KnownPayloadMinio` the request body's sha256.
_PAYLOAD_SHA256_HEADER = "x-datapilot-payload-sha256"
FS_WRITE_BYTES = 1024 * 1024
# Keys per listing request: S3's own page size (ListObjectsV2 returns at most 1000).
LIST_PAGE = 1000
# The id of the one lifecycle rule ingest puts on a bucket that has none
# (deploy/s3/lifecycle.json is the same rule, for operators who apply it themselves).
LIFECYCLE_RULE_ID = "datapilot-abort-incomplete-multipart-uploads"
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


@dataclass(frozen=True)
class BlobInfo:
    """A blob as a listing sees it: its key, size and when it was last written (Unix seconds)."""

    key: str
    size_bytes: int
    modified_at: float


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


class BlobWriter(Protocol):
    """A blob being written as its bytes arrive; nothing exists under its key until `complete`.

    `size` and `sha256()` cover the bytes written so far, so the caller knows the whole file's
    digest before it decides to keep it (`complete`) or drop it (`abort`).
    """

    size: int

    async def sha256(self) -> str:
        """The digest of every byte written so far (waits for the hashing still under way)."""
        ...

    async def write(self, chunk: bytes) -> None:
        """Add bytes; they may be sent to the store at once."""
        ...

    async def complete(self) -> StoredBlob:
        """Make the blob visible under its key, replacing any blob there."""
        ...

    async def abort(self) -> None:
        """Drop whatever was sent (best effort, never raises); a no-op once completed."""
        ...


class BlobStore(Protocol):
    """What ingest_svc needs of a blob store."""

    async def put_stream(
        self, key: str, stream: IO[bytes], digest: tuple[int, str] | None = None
    ) -> StoredBlob:
        """Store a seekable stream (rewound on each retry); replaces any blob with that key.

        `digest` is the stream's (size, sha256) when the caller computed it while writing it.
        """
        ...

    async def open_writer(self, key: str) -> BlobWriter:
        """Start writing the blob `key` from a stream of chunks (an upload as it arrives)."""
        ...

    def read_chunks(self, key: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks of at most CHUNK_SIZE; raises BlobNotFound."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob if it exists."""
        ...

    async def delete_many(self, keys: list[str]) -> None:
        """Remove these blobs (those that exist); S3: a DeleteObjects request per 1000 keys."""
        ...

    def list_blobs(self, prefix: str, start_after: str = "") -> AsyncGenerator[BlobInfo, None]:
        """The blobs whose key starts with `prefix` and sorts after `start_after`, in key order.

        Read a page (LIST_PAGE keys) at a time, so a caller that stops early reads no further.
        Only whole blobs: an S3 multipart upload in progress or a temp file is not listed.
        """
        ...

    async def stat(self, key: str) -> BlobInfo:
        """Size and write time of one blob; raises BlobNotFound."""
        ...

    async def check(self) -> None:
        """Raise if the store cannot be reached (readiness)."""
        ...


class _Lane:
    """Runs blocking steps in a thread one at a time, in order, while the caller goes on.

    A writer hashes (and writes) the bytes it has while the event loop receives the next ones:
    hashlib and file writes release the GIL, so the two overlap on a second core. At most one
    step is under way; the next waits for it, which bounds the bytes held to two batches.
    """

    def __init__(self) -> None:
        self._running: asyncio.Future[None] | None = None

    async def run(self, step: Callable[[], None]) -> None:
        """Start `step` once the one before it is done; raises what the one before raised."""
        await self.drain()
        self._running = asyncio.ensure_future(asyncio.to_thread(step))

    async def drain(self) -> None:
        """Wait for the step under way; a caller cancelled meanwhile leaves it to the next."""
        running = self._running
        if running is None:
            return
        try:
            await asyncio.shield(running)  # the thread cannot be interrupted
        finally:
            if running.done():
                self._running = None


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

    async def open_writer(self, key: str) -> BlobWriter:
        target = self._path(key)

        def open_tmp() -> tuple[Path, IO[bytes]]:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            return tmp, tmp.open("wb")

        tmp, handle = await _with_retry(
            lambda: asyncio.to_thread(open_tmp), self._policy, f"fs put {key}", (OSError,)
        )
        return _FsWriter(key, target, tmp, handle)

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

    async def delete_many(self, keys: list[str]) -> None:
        paths = [self._path(key) for key in keys]

        def remove() -> None:
            for path in paths:
                path.unlink(missing_ok=True)

        await _with_retry(
            lambda: asyncio.to_thread(remove), self._policy, "fs delete-many", (OSError,)
        )

    def list_blobs(self, prefix: str, start_after: str = "") -> AsyncGenerator[BlobInfo, None]:
        async def page(after: str) -> list[BlobInfo]:
            return await _with_retry(
                lambda: asyncio.to_thread(self._list_page, prefix, after),
                self._policy,
                f"fs list {prefix}",
                (OSError,),
            )

        return _paged(page, start_after)

    def _list_page(self, prefix: str, after: str) -> list[BlobInfo]:
        return list(itertools.islice(self._walk(self._root, "", prefix, after), LIST_PAGE))

    def _walk(self, folder: Path, base: str, prefix: str, after: str) -> Iterator[BlobInfo]:
        """The files under `folder` in the order S3 lists keys (byte order of the whole key).

        A folder sorts as its key plus `/`, so `a.x` comes before `a/b` as it does in S3; a
        folder whose every key sorts before `after`, or lies outside `prefix`, is not entered.
        Dot-files (temp files of writes in progress, the readiness probe) are no blobs.
        """
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:  # removed while we walked
            return
        named: list[tuple[str, os.DirEntry[str]]] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            named.append((f"{base}{entry.name}/" if is_dir else base + entry.name, entry))
        named.sort(key=lambda item: item[0])
        for key, entry in named:
            if key.endswith("/"):
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    continue
                if after > key and not after.startswith(key):
                    continue
                yield from self._walk(Path(entry.path), key, prefix, after)
                continue
            if not key.startswith(prefix) or key <= after or not _KEY_RE.match(key):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                yield BlobInfo(key, info.st_size, info.st_mtime)

    async def stat(self, key: str) -> BlobInfo:
        path = self._path(key)
        try:
            info = await asyncio.to_thread(path.stat)
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        if not stat.S_ISREG(info.st_mode):
            raise BlobNotFound(key)
        return BlobInfo(key, info.st_size, info.st_mtime)

    async def check(self) -> None:
        probe = self._root / ".ready"
        await asyncio.to_thread(probe.write_bytes, b"ok")


class _FsWriter:
    """Writes into a temp file beside the target; `complete` fsyncs and renames it in place.

    Bytes are hashed and written a batch (FS_WRITE_BYTES) at a time in a thread, in order, while
    the next batch arrives; the batch is the received chunks themselves, never joined.
    """

    def __init__(self, key: str, target: Path, tmp: Path, handle: IO[bytes]) -> None:
        self._key = key
        self._target = target
        self._tmp = tmp
        self._handle = handle
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._lane = _Lane()
        self._hasher = hashlib.sha256()
        self._started = time.perf_counter()
        self._done = False
        self.size = 0

    async def sha256(self) -> str:
        await self._flush()
        await self._settled()
        return self._hasher.hexdigest()

    def _write_batch(self, batch: list[bytes]) -> None:
        for piece in batch:
            self._hasher.update(piece)
        self._handle.writelines(batch)

    async def _settled(self) -> None:
        try:
            await self._lane.drain()
        except OSError as exc:
            raise BlobStoreError(f"fs put {self._key} failed: {type(exc).__name__}") from exc

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        try:
            await self._lane.run(lambda: self._write_batch(batch))
        except OSError as exc:
            raise BlobStoreError(f"fs put {self._key} failed: {type(exc).__name__}") from exc

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= FS_WRITE_BYTES:
            await self._flush()

    async def complete(self) -> StoredBlob:
        sha = await self.sha256()

        def finish() -> None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.replace(self._tmp, self._target)

        try:
            await asyncio.to_thread(finish)
        except OSError as exc:
            raise BlobStoreError(f"fs put {self._key} failed: {type(exc).__name__}") from exc
        self._done = True
        BLOB_LATENCY.labels("fs", "put").observe(time.perf_counter() - self._started)
        BLOB_BYTES.labels("fs", "put").inc(self.size)
        return StoredBlob(self._key, self.size, sha)

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True

        def drop() -> None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._tmp.unlink(missing_ok=True)

        try:
            # A batch still being written finishes before the file is closed and removed.
            with contextlib.suppress(OSError):
                await self._lane.drain()
            await asyncio.to_thread(drop)
        except OSError:
            _LOGGER.warning("could not remove an abandoned upload's temp file")


class _S3ServerError(Exception):
    """A retryable S3 error answer (5xx-like codes)."""


_S3_RETRYABLE: tuple[type[BaseException], ...] = (OSError, Urllib3HTTPError, _S3ServerError)


# A request body as the pieces it arrived in: urllib3 sends them one after the other.
Pieces = Sequence[bytes | memoryview]


class _KnownPayloadMinio(Minio):
    """minio's client, told a request body's sha256 by the caller who computed it already.

    Over plain http a SigV4 request signs its payload's sha256, and minio hashes each part
    again for that (after it is full, on the critical path for the last one); the S3 writer
    hashes every part as it arrives and names the digest in `_PAYLOAD_SHA256_HEADER`. The
    signed request is the same as minio's own. Over https minio would sign UNSIGNED-PAYLOAD and
    hash the part again for a Content-MD5 (slower than sha256, and joined into one copy first):
    the known sha256 is signed there too, which S3 checks as it checks Content-MD5.

    Such a body may also be `Pieces` rather than bytes (sent as they are, never joined).
    """

    def _build_headers(
        self,
        host: str,
        headers: DictType | None = None,
        body: bytes | None = None,
        creds: Credentials | None = None,
    ) -> tuple[DictType, datetime]:
        known = headers.get(_PAYLOAD_SHA256_HEADER) if headers else None
        if known is not None:  # never sent; the caller's dict stays whole for a resend
            headers = {k: v for k, v in (headers or {}).items() if k != _PAYLOAD_SHA256_HEADER}
        pieces = None if isinstance(body, bytes | None) else cast(Pieces, body)
        if not isinstance(known, str) or creds is None:
            whole = body if pieces is None else b"".join(pieces)  # minio hashes it (sha256, MD5)
            return super()._build_headers(host, headers, whole, creds)
        built, date = super()._build_headers(host, headers, None, creds)  # hashes no body
        if pieces is not None:  # always framed by its length (urllib3 would chunk it)
            built["Content-Length"] = str(sum(len(piece) for piece in pieces))
        elif body:
            built["Content-Length"] = str(len(body))
        built["x-amz-content-sha256"] = known
        return built, date


class S3BlobStore:
    """Blobs as objects in one bucket of MinIO or any S3 endpoint, through the minio client."""

    def __init__(
        self,
        client: _KnownPayloadMinio,
        bucket: str,
        policy: BackoffPolicy,
        abort_incomplete_uploads_days: int = 0,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._policy = policy
        self._bucket_ready = False
        self._abort_days = abort_incomplete_uploads_days
        self._lifecycle_checked = False

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
        client = _KnownPayloadMinio(
            endpoint,
            http_client=http_client,
            access_key=settings.s3_access_key or None,
            secret_key=settings.s3_secret_key or None,
            secure=secure,
            region=settings.s3_region,
        )
        return cls(client, settings.s3_bucket, policy, settings.s3_abort_incomplete_uploads_days)

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
            if self._abort_days and not self._lifecycle_checked:
                self._ensure_lifecycle()
                self._lifecycle_checked = True

        await _with_retry(
            lambda: asyncio.to_thread(create), self._policy, "s3 bucket", _S3_RETRYABLE
        )
        self._bucket_ready = True

    def _ensure_lifecycle(self) -> None:
        """Give a bucket without lifecycle rules ours: abort incomplete multipart uploads.

        A bucket that has any lifecycle configuration is left alone (putting one replaces them
        all, and its owner chose them). A store that refuses the rule (MinIO drops this action
        and sweeps stale uploads itself) is logged, not fatal; docs/operate.md says what to do.
        """
        try:
            if self._client.get_bucket_lifecycle(self._bucket) is not None:
                _LOGGER.info("the bucket has lifecycle rules of its own; left as they are")
                return
            self._client.set_bucket_lifecycle(self._bucket, lifecycle_config(self._abort_days))
        except S3Error as exc:
            _LOGGER.warning("the bucket's lifecycle rule could not be set (%s)", exc.code)
            return
        _LOGGER.info(
            "bucket lifecycle set: incomplete multipart uploads aborted after %d day(s)",
            self._abort_days,
        )

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

    async def open_writer(self, key: str) -> BlobWriter:
        check_key(key)
        await self._ensure_bucket()
        return _S3Writer(self, key)

    async def _retried(self, name: str, fn: Callable[[], T]) -> T:
        """`fn` (a blocking S3 call) in a thread, under the blob-store retry policy."""

        async def attempt() -> T:
            await self._ensure_bucket()
            return cast(T, await asyncio.to_thread(self._call_sync, fn))

        return await _with_retry(attempt, self._policy, name, _S3_RETRYABLE)

    async def create_multipart(self, key: str) -> str:
        return await self._retried(
            f"s3 create-multipart {key}",
            lambda: self._client._create_multipart_upload(self._bucket, key, {}),
        )

    async def upload_part(
        self, key: str, upload_id: str, number: int, data: Pieces, sha256: str
    ) -> Part:
        """Send one part (its pieces, whose sha256 is `sha256`); `data` is kept by the caller,
        so a retry re-sends it, not the stream."""
        body = cast(bytes, data)  # `_KnownPayloadMinio` takes pieces where minio says bytes
        etag = await self._retried(
            f"s3 upload-part {key}",
            lambda: self._client._upload_part(
                self._bucket, key, body, {_PAYLOAD_SHA256_HEADER: sha256}, upload_id, number
            ),
        )
        return Part(number, etag)

    async def complete_multipart(self, key: str, upload_id: str, parts: list[Part]) -> None:
        await self._retried(
            f"s3 complete-multipart {key}",
            lambda: self._client._complete_multipart_upload(self._bucket, key, upload_id, parts),
        )

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await self._retried(
            f"s3 abort-multipart {key}",
            lambda: self._client._abort_multipart_upload(self._bucket, key, upload_id),
        )

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

    async def delete_many(self, keys: list[str]) -> None:
        for key in keys:
            check_key(key)

        def remove() -> None:
            # minio sends the list in DeleteObjects requests of 1000 keys; a missing key is no
            # error (S3 reports it deleted).
            refused = list(
                self._client.remove_objects(self._bucket, [DeleteObject(key) for key in keys])
            )
            if refused:
                raise BlobStoreError(f"S3 refused to delete {len(refused)} blob(s)")

        if keys:
            await self._retried("s3 delete-many", remove)

    def list_blobs(self, prefix: str, start_after: str = "") -> AsyncGenerator[BlobInfo, None]:
        async def page(after: str) -> list[BlobInfo]:
            return await self._retried(f"s3 list {prefix}", lambda: self._list_page(prefix, after))

        return _paged(page, start_after)

    def _list_page(self, prefix: str, after: str) -> list[BlobInfo]:
        """One ListObjectsV2 request (its page is LIST_PAGE keys) from `after` on."""
        objects = self._client.list_objects(
            self._bucket, prefix=prefix, recursive=True, start_after=after or None
        )
        return [
            BlobInfo(obj.object_name, obj.size or 0, _written_at(obj.last_modified))
            for obj in itertools.islice(objects, LIST_PAGE)
            if obj.object_name is not None and not obj.is_dir
        ]

    async def stat(self, key: str) -> BlobInfo:
        check_key(key)
        found = await self._retried(
            f"s3 stat {key}", lambda: self._client.stat_object(self._bucket, key)
        )
        return BlobInfo(key, found.size or 0, _written_at(found.last_modified))

    async def check(self) -> None:
        self._bucket_ready = False
        await self._ensure_bucket()


def _written_at(moment: datetime | None) -> float:
    # A listing without a date counts as written now: too young for the janitor to delete.
    return moment.timestamp() if moment is not None else time.time()


def lifecycle_config(abort_after_days: int) -> LifecycleConfig:
    """The bucket lifecycle ingest applies (deploy/s3/lifecycle.json holds the same rule)."""
    return LifecycleConfig(
        [
            Rule(
                ENABLED,
                rule_filter=Filter(prefix=""),
                rule_id=LIFECYCLE_RULE_ID,
                abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(abort_after_days),
            )
        ]
    )


class _S3Writer:
    """An S3 multipart upload fed as the bytes arrive: each full part is sent at once.

    Up to PARTS_IN_FLIGHT parts travel while the next one fills. A blob smaller than one part is
    a single PUT at `complete` (no multipart round trips for the common small file). The bytes
    are hashed as they arrive (for the blob, and for the part's request signature), a batch at a
    time in a thread (in order), so a full part goes out at once, already hashed. The first part
    starts the blob, so its digest is the blob hasher's at the part's end: those bytes (all of a
    blob under one part, the common case) are hashed once.
    """

    def __init__(self, store: S3BlobStore, key: str) -> None:
        self._store = store
        self._key = key
        self._part: list[bytes | memoryview] = []  # the part being filled, as received
        self._part_bytes = 0
        self._unhashed: list[bytes | memoryview] = []  # its pieces not handed to the hashing yet
        self._unhashed_bytes = 0
        self._hasher = hashlib.sha256()
        self._part_hasher: hashlib._Hash | None = None  # None: the first part, the blob's hasher
        self._hashing = _Lane()
        self._upload: asyncio.Task[str] | None = None  # CreateMultipartUpload, its upload id
        self._upload_id = ""
        self._sent: list[Part] = []
        self._in_flight: list[asyncio.Task[Part]] = []
        self._started = time.perf_counter()
        self._done = False
        self.size = 0

    async def sha256(self) -> str:
        await self._hash_received()
        await self._hashing.drain()
        return self._hasher.hexdigest()

    async def _hash_received(self) -> None:
        """Hand the bytes not hashed yet to the hashing thread (the blob's and the part's)."""
        if not self._unhashed:
            return
        batch, self._unhashed, self._unhashed_bytes = self._unhashed, [], 0
        blob, part = self._hasher, self._part_hasher

        def step() -> None:
            for piece in batch:
                blob.update(piece)
                if part is not None:
                    part.update(piece)

        await self._hashing.run(step)

    def _add(self, piece: bytes | memoryview) -> None:
        self._part.append(piece)
        self._part_bytes += len(piece)
        self._unhashed.append(piece)
        self._unhashed_bytes += len(piece)

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        data: bytes | memoryview = chunk
        while len(data) >= PART_BYTES - self._part_bytes:
            # The chunk that crosses the part's end is split by views, not copied.
            room = PART_BYTES - self._part_bytes
            view = memoryview(data)
            self._add(view[:room])
            data = view[room:]
            await self._send(await self._take_part())
        if data:
            self._add(data)
            if self._upload is None and self._part_bytes >= START_UPLOAD_BYTES:
                self._start_upload()
            if self._unhashed_bytes >= HASH_BATCH_BYTES:
                await self._hash_received()

    def _start_upload(self) -> asyncio.Task[str]:
        if self._upload is None:
            self._upload = asyncio.create_task(self._store.create_multipart(self._key))
        return self._upload

    async def _take_part(self) -> tuple[Pieces, str]:
        """The part filled so far (the pieces received, never joined), its sha256; starts the
        next part."""
        await self._hash_received()
        await self._hashing.drain()  # its last batch (at most HASH_BATCH_BYTES) is hashed
        taken = self._part, (self._part_hasher or self._hasher).hexdigest()
        self._part, self._part_bytes, self._part_hasher = [], 0, hashlib.sha256()
        return taken

    async def _oldest_sent(self) -> None:
        """Wait for the oldest part in flight. Shielded: a cancelled caller must not cancel the
        task, whose request S3 may already have carried out (`abort` waits for it)."""
        part = await asyncio.shield(self._in_flight[0])
        self._in_flight.pop(0)
        self._sent.append(part)

    async def _send(self, part: tuple[Pieces, str]) -> None:
        # Shielded for the same reason: an upload created in S3 whose reply came after the
        # caller was cancelled must still be known to `abort`, or it is left behind.
        self._upload_id = await asyncio.shield(self._start_upload())
        while len(self._in_flight) >= PARTS_IN_FLIGHT:  # bounded memory: wait for the oldest
            await self._oldest_sent()
        number = len(self._sent) + len(self._in_flight) + 1
        data, sha = part
        self._in_flight.append(
            asyncio.create_task(
                self._store.upload_part(self._key, self._upload_id, number, data, sha)
            )
        )

    async def complete(self) -> StoredBlob:
        sha = await self.sha256()
        rest = await self._take_part()
        if not self._sent and not self._in_flight:  # at most one part: a single PUT
            whole = io.BytesIO(b"".join(rest[0]))
            blob = await self._store.put_stream(self._key, whole, (self.size, sha))
            self._done = True
            await self._drop_upload()  # started in case the blob grew past one part
            return blob
        if rest[0]:
            await self._send(rest)
        while self._in_flight:
            await self._oldest_sent()
        await self._store.complete_multipart(self._key, self._upload_id, self._sent)
        self._done = True
        BLOB_LATENCY.labels("s3", "put").observe(time.perf_counter() - self._started)
        BLOB_BYTES.labels("s3", "put").inc(self.size)
        return StoredBlob(self._key, self.size, sha)

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        # A part still travelling could land after the abort and keep the upload alive:
        # let the threads finish (they cannot be interrupted) before aborting.
        await asyncio.gather(*self._in_flight, self._hashing.drain(), return_exceptions=True)
        self._in_flight.clear()
        await self._drop_upload()

    async def _drop_upload(self) -> None:
        """Abort the multipart upload if one was started (best effort, never raises)."""
        if self._upload is None:
            return
        await asyncio.wait([self._upload])  # unlike gather, never cancels it
        if self._upload.cancelled() or self._upload.exception() is not None:
            return  # never created: nothing to abort
        try:
            await self._store.abort_multipart(self._key, self._upload.result())
        except (BlobStoreError, BlobNotFound):
            _LOGGER.warning("could not abort an abandoned multipart upload")


async def _paged(
    fetch: Callable[[str], Awaitable[list[BlobInfo]]], start_after: str
) -> AsyncGenerator[BlobInfo, None]:
    """A listing read page by page: each page starts after the last key of the one before."""
    after = start_after
    while True:
        page = await fetch(after)
        for info in page:
            yield info
        if len(page) < LIST_PAGE:
            return
        after = page[-1].key


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
