"""The S3 client told a part's sha256 signs the same request minio signs when it hashes it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

from minio.credentials.credentials import Credentials

from ingest_svc.blob_store import _PAYLOAD_SHA256_HEADER, _KnownPayloadMinio

CREDS = Credentials("test", "secret")


def _without_date(headers: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in headers.items() if k != "x-amz-date"}


def test_a_known_payload_hash_gives_minios_own_headers() -> None:
    client = _KnownPayloadMinio("127.0.0.1:9000", "test", "secret", secure=False)
    body = os.urandom(70_001)
    told, _ = client._build_headers(
        "h", {_PAYLOAD_SHA256_HEADER: hashlib.sha256(body).hexdigest()}, body, CREDS
    )
    own, _ = client._build_headers("h", {}, body, CREDS)
    assert _without_date(told) == _without_date(own)
    assert told["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert _PAYLOAD_SHA256_HEADER not in told  # never sent


def test_without_a_known_hash_or_over_https_minio_decides() -> None:
    body = b"abc"
    plain = _KnownPayloadMinio("127.0.0.1:9000", "test", "secret", secure=False)
    own, _ = plain._build_headers("h", None, body, CREDS)
    assert own["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    tls = _KnownPayloadMinio("127.0.0.1:9000", "test", "secret", secure=True)
    told, _ = tls._build_headers("h", {_PAYLOAD_SHA256_HEADER: "0" * 64}, body, CREDS)
    assert told["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert _PAYLOAD_SHA256_HEADER not in told


def test_a_body_in_pieces_is_framed_and_signed_as_the_joined_bytes() -> None:
    client = _KnownPayloadMinio("127.0.0.1:9000", "test", "secret", secure=False)
    data = os.urandom(9_000)
    pieces = [data[:10], memoryview(data)[10:5_000], data[5_000:]]
    own, _ = client._build_headers("h", {}, data, CREDS)
    sha = hashlib.sha256(data).hexdigest()
    told, _ = client._build_headers("h", {_PAYLOAD_SHA256_HEADER: sha}, pieces, CREDS)  # type: ignore[arg-type]
    untold, _ = client._build_headers("h", {}, pieces, CREDS)  # type: ignore[arg-type]
    assert _without_date(told) == _without_date(own) == _without_date(untold)
    assert own["Content-Length"] == "9000"


def test_the_callers_headers_survive_for_a_resend() -> None:
    client = _KnownPayloadMinio("127.0.0.1:9000", "test", "secret", secure=False)
    headers: dict[str, str | list[str] | tuple[str]] = {_PAYLOAD_SHA256_HEADER: "ab" * 32}
    client._build_headers("h", headers, b"x", CREDS)
    assert headers == {_PAYLOAD_SHA256_HEADER: "ab" * 32}
