"""The gateway's pure helpers: timeout headers, API keys, the multipart reader, content sniffing,
upload chunk messages."""

from __future__ import annotations

import hashlib

import pytest
from datapilot.ingest.v1 import ingest_pb2

from gateway.auth import ApiKeyError, ApiKeys, hash_key, presented_key
from gateway.content_sniff import SNIFF_BYTES, check_allowed, kind_of
from gateway.deadlines import parse_grpc_timeout, parse_request_timeout
from gateway.multipart_stream import MAX_FIELD_BYTES, MultipartFileReader, UploadTooLarge
from gateway.problems import ProblemError
from gateway.upload import ChunkMessages, serialize_upload_request

BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1H", 3600.0),
        ("2M", 120.0),
        ("3S", 3.0),
        ("100m", 0.1),
        ("250u", 250e-6),
        ("7n", 7e-9),
        (" 5S ", 5.0),
        ("99999999S", 99999999.0),
    ],
)
def test_grpc_timeout_units(value: str, seconds: float) -> None:
    assert parse_grpc_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "S", "5", "5s", "1.5S", "-1S", "123456789S", "5 S", "5SS"])
def test_grpc_timeout_rejects_what_grpc_does_not_define(value: str) -> None:
    with pytest.raises(ProblemError) as raised:
        parse_grpc_timeout(value)
    assert (raised.value.status, raised.value.code) == (400, "invalid_timeout")


def test_request_timeout_is_positive_seconds() -> None:
    assert parse_request_timeout("0.25") == 0.25
    for value in ("0", "-1", "abc", "nan", "inf", "1e7"):
        with pytest.raises(ProblemError):
            parse_request_timeout(value)


def test_api_keys_map_plain_and_hashed_keys_to_tenants() -> None:
    digest = hashlib.sha256(b"beta-secret").hexdigest()
    keys = ApiKeys.parse(f" acme:acme-secret , beta:sha256:{digest},,team_2-x:k ")
    assert keys.enabled
    assert keys.tenant_for("acme-secret") == "acme"
    assert keys.tenant_for("beta-secret") == "beta"
    assert keys.tenant_for("k") == "team_2-x"
    assert keys.tenant_for(f"sha256:{digest}") is None  # the digest itself is not a key
    assert keys.tenant_for("acme") is None
    assert "acme-secret" not in repr(keys)  # only digests are kept
    assert hash_key("acme-secret") in keys.digests


def test_a_key_may_contain_colons() -> None:
    assert ApiKeys.parse("acme:a:b:c").tenant_for("a:b:c") == "acme"


def test_no_keys_means_anonymous() -> None:
    assert not ApiKeys.parse("").enabled
    assert not ApiKeys.parse(" , ").enabled


@pytest.mark.parametrize(
    "spec",
    ["acme", ":key", "acme:", "ac me:key", "a/b:key", f"{'t' * 65}:key", "acme:sha256:abc"],
)
def test_malformed_key_specs_are_refused(spec: str) -> None:
    with pytest.raises(ApiKeyError):
        ApiKeys.parse(spec)


def test_presented_key_prefers_bearer_then_x_api_key() -> None:
    assert presented_key("Bearer  k1 ", "k2") == "k1"
    assert presented_key("bearer k1", "") == "k1"
    assert presented_key("Basic k1", " k2 ") == "k2"
    assert presented_key("Bearer ", "") == ""


def _body(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += (
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\nContent-Type: text/csv\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def _feed_in_pieces(reader: MultipartFileReader, body: bytes, size: int) -> bytes:
    return b"".join(b"".join(reader.feed(body[i : i + size])) for i in range(0, len(body), size))


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_multipart_reader_yields_only_the_file_field(piece: int) -> None:
    data = b"a,b\r\n1,2\r\n--not-the-boundary\r\n"
    body = _body(("note", None, b"ignored"), ("file", "s\u00e4les.csv", data))
    reader = MultipartFileReader(CONTENT_TYPE, limit=1024)
    assert _feed_in_pieces(reader, body, piece) == data
    assert reader.started and reader.finished and reader.ended
    assert reader.filename == "s\u00e4les.csv"
    assert reader.content_type == "text/csv"
    assert reader.size == len(data)


def test_multipart_reader_takes_the_first_file_part_only() -> None:
    body = _body(("file", "one.csv", b"first"), ("file", "two.csv", b"second"))
    reader = MultipartFileReader(CONTENT_TYPE, limit=1024)
    assert b"".join(reader.feed(body)) == b"first"
    assert reader.filename == "one.csv"


def test_multipart_reader_without_the_field_never_starts() -> None:
    reader = MultipartFileReader(CONTENT_TYPE, limit=1024)
    assert reader.feed(_body(("upload", "a.csv", b"x"))) == []
    assert reader.ended and not reader.started


def test_multipart_reader_stops_one_byte_past_the_limit() -> None:
    reader = MultipartFileReader(CONTENT_TYPE, limit=10)
    assert b"".join(reader.feed(_body(("file", "a.csv", b"x" * 10)))) == b"x" * 10
    reader = MultipartFileReader(CONTENT_TYPE, limit=10)
    with pytest.raises(UploadTooLarge):
        reader.feed(_body(("file", "a.csv", b"x" * 11)))


@pytest.mark.parametrize("content_type", ["application/json", "multipart/mixed; boundary=x", ""])
def test_multipart_reader_needs_form_data(content_type: str) -> None:
    with pytest.raises(ProblemError) as raised:
        MultipartFileReader(content_type, limit=10)
    assert (raised.value.status, raised.value.code) == (415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=" + "b" * 257,
        'multipart/form-data; boundary="a\x1bb"',
        "multipart/form-data; boundary=a<b>",
    ],
)
def test_a_missing_or_bad_boundary_is_a_400(content_type: str) -> None:
    with pytest.raises(ProblemError) as raised:
        MultipartFileReader(content_type, limit=10)
    assert (raised.value.status, raised.value.code) == (400, "malformed_multipart")


def test_a_256_character_boundary_is_fine() -> None:
    boundary = "b" * 256
    reader = MultipartFileReader(f"multipart/form-data; boundary={boundary}", limit=100)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        f"x,y\r\n--{boundary}--\r\n"
    ).encode()
    assert b"".join(reader.feed(body)) == b"x,y" and reader.ended


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Disposition: form-data; name=file\r\nX-Pad: " + b"p" * 9000 + b"\r\n",
        b"".join(b"X-H%d: v\r\n" % n for n in range(17))
        + b"Content-Disposition: form-data; name=file\r\n",
        b"Content-Type: text/csv\r\n",  # no Content-Disposition
        b"Content-Disposition: attachment; name=file\r\n",
        b"Content-Disposition: form-data\r\n",  # no name
    ],
)
def test_bad_part_headers_are_a_400(head: bytes) -> None:
    reader = MultipartFileReader(CONTENT_TYPE, limit=1024)
    with pytest.raises(ProblemError) as raised:
        reader.feed(f"--{BOUNDARY}\r\n".encode() + head + b"\r\ndata\r\n")
    assert (raised.value.status, raised.value.code) == (400, "malformed_multipart")


def test_a_large_text_field_is_refused_at_its_cap() -> None:
    reader = MultipartFileReader(CONTENT_TYPE, limit=1024)
    reader.feed(_body(("note", None, b"n" * MAX_FIELD_BYTES), ("file", "a.csv", b"x")))
    reader = MultipartFileReader(CONTENT_TYPE, limit=1024)
    with pytest.raises(ProblemError) as raised:
        # Fed in pieces, as it arrives: refused before the field's end, never buffered.
        _feed_in_pieces(reader, _body(("note", None, b"n" * (MAX_FIELD_BYTES + 1))), 4096)
    assert (raised.value.status, raised.value.code) == (413, "payload_too_large")


def test_multipart_reader_refuses_a_malformed_body() -> None:
    reader = MultipartFileReader(CONTENT_TYPE, limit=1024)
    with pytest.raises(ProblemError) as raised:
        reader.feed(f"--{BOUNDARY}\r\nno colon in this header line\r\n\r\n".encode())
    assert (raised.value.status, raised.value.code) == (400, "malformed_multipart")


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"PK\x03\x04rest-of-a-zip", "xlsx"),
        (b"PAR1\x15\x00", "parquet"),
        (b"\xff\xfea\x00,\x00b\x00", "text"),  # UTF-16 LE: NULs are fine after a BOM
        (b"\xfe\xff\x00a", "text"),
        (b"", "text"),
        (b"region,revenue\r\nNorth,10\tx\n", "text"),
        ('{"a": "caf\u00e9"}'.encode(), "text"),
        (b"a,b\n\x00\n", "binary"),
        (b"\x89PNG\r\n\x1a\n", "binary"),
    ],
)
def test_kind_is_judged_by_content(head: bytes, kind: str) -> None:
    assert kind_of(head) == kind


def test_a_few_control_bytes_are_text_more_are_binary() -> None:
    text = b"a" * 1000
    assert kind_of(text[:-10] + b"\x01" * 10) == "text"  # 1 %: still text
    assert kind_of(text[:-11] + b"\x01" * 11) == "binary"


def test_check_allowed_refuses_binaries_and_looks_only_at_the_head() -> None:
    with pytest.raises(ProblemError) as raised:
        check_allowed(b"\x00\x01\x02")
    assert (raised.value.status, raised.value.code) == (415, "unsupported_file_type")
    assert check_allowed(b"a" * SNIFF_BYTES + b"\x00") == "text"


@pytest.mark.parametrize("sizes", [[1], [127], [128], [3, 5, 200], [70_000, 1, 2_000_000]])
def test_chunk_messages_are_upload_requests_of_the_bytes_in_order(sizes: list[int]) -> None:
    pieces = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    everything = b"".join(pieces)
    pending = ChunkMessages()
    pending.add(pieces)
    assert pending.head(4) == everything[:4]
    relayed = b""
    for cut in (1, 127, 128, 16_384, 1 << 20):
        if not pending.size:
            break
        message = ingest_pb2.UploadRequest.FromString(pending.take(cut))
        assert message.WhichOneof("payload") == "chunk"
        assert len(message.chunk) == min(cut, len(everything) - len(relayed))
        relayed += message.chunk
    if pending.size:
        relayed += ingest_pb2.UploadRequest.FromString(pending.take(pending.size)).chunk
    assert relayed == everything and pending.size == 0


def test_the_upload_serializer_takes_messages_and_wire_forms() -> None:
    message = ingest_pb2.UploadRequest(metadata=ingest_pb2.UploadMetadata(filename="a.csv"))
    assert serialize_upload_request(message) == message.SerializeToString()
    assert serialize_upload_request(b"\x12\x01x") == b"\x12\x01x"
