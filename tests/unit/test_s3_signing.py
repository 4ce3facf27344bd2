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


def test_without_a_known_hash_minio_decides() -> None:
    body = b"abc"
    plain = _KnownPayloadMinio("127.0.0.1:9000", "test", "secret", secure=False)
    own, _ = plain._build_headers("h", None, body, CREDS)
    assert own["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    tls = _KnownPayloadMinio("127.0.0.1:9000", "test", "secret", secure=True)
    own, _ = tls._build_headers("h", None, body, CREDS)
    assert (own["x-amz-content-sha256"], "Content-MD5" in own) == ("UNSIGNED-PAYLOAD", True)


def test_over_https_a_known_hash_is_signed_instead_of_an_md5() -> None:
    tls = _KnownPayloadMinio("127.0.0.1:9000", "test", "secret", secure=True)
    data = os.urandom(9_000)
    pieces = [data[:4_000], memoryview(data)[4_000:]]
    sha = hashlib.sha256(data).hexdigest()
    told, _ = tls._build_headers("h", {_PAYLOAD_SHA256_HEADER: sha}, pieces, CREDS)  # type: ignore[arg-type]
    assert told["x-amz-content-sha256"] == sha
    assert "Content-MD5" not in told and _PAYLOAD_SHA256_HEADER not in told
    assert told["Content-Length"] == "9000"


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
