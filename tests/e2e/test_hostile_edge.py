"""Hostile requests at the real gateway, over plain sockets: never a 5xx, each cut where due.

Slow, trickling and over-long bodies (Content-Length and chunked) are cut with 408; oversized ones
with 413 whatever their framing; bad boundaries and part headers are 400; a full ingest spool is a
503 `overloaded` with Retry-After; a foreign list cursor is 400. Hypothesis fuzzes the multipart
parser through the whole gateway.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.stack import Stack, StackConfig

MAX_UPLOAD = 1024 * 1024
DEADLINE_SECONDS = 4
MIN_RATE = 2000
BOUNDARY = "edge-test-boundary"
CSV_ROW = b"region,units\r\nNorth,3\r\n"
ENV = {
    "RETRY_INITIAL_DELAY": "0.05",
    "RATE_LIMIT_PER_MINUTE": "0",
    "MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
    "UPLOAD_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
    "UPLOAD_MIN_BYTES_PER_SECOND": str(MIN_RATE),
    "UPLOAD_MIN_RATE_GRACE_SECONDS": "1",
    # Each upload reserves its Content-Length (chunked: MAX_UPLOAD_BYTES): one chunked upload
    # fits, a 600 KiB one beside another does not.
    "INGEST_SPOOL_MAX_BYTES": str(MAX_UPLOAD + MAX_UPLOAD // 2),
}


@pytest.fixture(scope="module")
def edge_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(StackConfig(run_dir=tmp_path_factory.mktemp("edge"), env=ENV, workers=0))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, object]:
        assert self.headers.get("content-type") == "application/problem+json", self.headers
        parsed: dict[str, object] = json.loads(self.body)
        return parsed


def _address(stack: Stack) -> tuple[str, int]:
    host, _, port = stack.gateway_url.removeprefix("http://").rpartition(":")
    return host, int(port)


def _head(
    length: int | None, content_type: str = f"multipart/form-data; boundary={BOUNDARY}"
) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST /api/upload HTTP/1.1\r\nHost: edge\r\nContent-Type: {content_type}\r\n"
        f"{framing}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")


def _file_part_head(name: str = "file", filename: str = "a.csv") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"'
        "\r\nContent-Type: text/csv\r\n\r\n"
    ).encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _read_response(sock: socket.socket, timeout: float) -> RawResponse:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"connection closed before a response: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return RawResponse(status, headers, body[:length])


def _answered(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _send(
    stack: Stack, head: bytes, pieces: Iterable[bytes], pause: float = 0.0, timeout: float = 30
) -> tuple[RawResponse, float]:
    """Send `head`, then each piece (`pause` seconds apart) until the server answers; returns
    the response and how long after the head it came."""
    with socket.create_connection(_address(stack), timeout=timeout) as sock:
        sock.sendall(head)
        started = time.monotonic()
        for piece in pieces:
            if _answered(sock):
                break
            try:
                sock.sendall(piece)
            except OSError:  # the server answered and closed while we were sending
                break
            if pause:
                time.sleep(pause)
        response = _read_response(sock, timeout)
        return response, time.monotonic() - started


def _trickle(count: int) -> Iterator[bytes]:
    yield _file_part_head()
    for _ in range(count):
        yield b"1"


def test_a_trickling_body_is_cut_with_408(edge_stack: Stack) -> None:
    response, after = _send(edge_stack, _head(100_000), _trickle(200), pause=0.1)
    assert response.status == 408
    assert "UPLOAD_MIN_BYTES_PER_SECOND" in str(response.problem()["detail"])
    assert response.problem()["code"] == "request_timeout"
    assert after < DEADLINE_SECONDS  # the rate bound cut it, not the total deadline


def test_a_trickling_chunked_body_is_cut_with_408(edge_stack: Stack) -> None:
    pieces = (_chunk(piece) for piece in _trickle(200))
    response, _ = _send(edge_stack, _head(None), pieces, pause=0.1)
    assert response.status == 408
    assert response.problem()["code"] == "request_timeout"


def test_a_steady_body_that_outlasts_the_deadline_is_cut_with_408(edge_stack: Stack) -> None:
    # 8 KB a second is above the minimum rate: the total deadline ends it.
    pieces = [_file_part_head(), *([CSV_ROW * 170] * 40)]
    response, after = _send(edge_stack, _head(MAX_UPLOAD), pieces, pause=0.5)
    assert response.status == 408
    assert "UPLOAD_DEADLINE_SECONDS" in str(response.problem()["detail"])
    assert after >= DEADLINE_SECONDS - 0.5


def test_a_declared_oversize_is_refused_before_the_body(edge_stack: Stack) -> None:
    response, _ = _send(edge_stack, _head(50 * MAX_UPLOAD), [])
    assert response.status == 413
    assert response.problem()["code"] == "payload_too_large"


def test_an_oversized_chunked_body_is_refused_at_the_limit(edge_stack: Stack) -> None:
    block = CSV_ROW * 2000  # ~46 KB
    pieces = [_chunk(_file_part_head()), *(_chunk(block) for _ in range(60))]
    response, _ = _send(edge_stack, _head(None), pieces)
    assert response.status == 413


def test_a_large_text_field_is_not_read(edge_stack: Stack) -> None:
    field = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
        + b"n" * (200 * 1024)
    )
    response, _ = _send(edge_stack, _head(len(field) + 1000), [field])
    assert response.status == 413
    assert "form field" in str(response.problem()["detail"])


def test_many_text_fields_count_toward_the_body_limit(edge_stack: Stack) -> None:
    field = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
        + b"n" * (60 * 1024)
        + b"\r\n"
    )
    # Each under the 64 KiB field cap, together past MAX_UPLOAD_BYTES: chunked, so no
    # Content-Length gives it away up front.
    response, _ = _send(edge_stack, _head(None), [_chunk(field) for _ in range(25)])
    assert response.status == 413
    assert response.problem()["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=" + "b" * 300,
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary="a\tb<c>"',
    ],
)
def test_bad_boundaries_are_400(edge_stack: Stack, content_type: str) -> None:
    response, _ = _send(edge_stack, _head(10, content_type), [b"0123456789"])
    assert response.status == 400
    assert response.problem()["code"] == "malformed_multipart"


def test_an_oversized_part_header_is_400(edge_stack: Stack) -> None:
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=file\r\nX-Pad: ".encode()
        + b"p" * 20_000
        + b"\r\n\r\ndata\r\n"
    )
    response, _ = _send(edge_stack, _head(len(body)), [body])
    assert response.status == 400
    assert response.problem()["code"] == "malformed_multipart"


def test_broken_chunked_framing_is_no_5xx(edge_stack: Stack) -> None:
    response, _ = _send(edge_stack, _head(None), [b"zz\r\nnot a chunk\r\n"])
    assert 400 <= response.status < 500


def _csv(kib: int) -> bytes:
    return CSV_ROW * (kib * 1024 // len(CSV_ROW))


def _spool_bytes(stack: Stack) -> float:
    """The bytes ingest reports reserved by uploads in flight."""
    url = f"http://127.0.0.1:{stack.metrics_ports['ingest']}/metrics"
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line.startswith("datapilot_ingest_spool_bytes "):
            return float(line.split()[1])
    return 0.0


def _await_spool(stack: Stack, admitted: Callable[[float], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if admitted(_spool_bytes(stack)):
            return
        time.sleep(0.05)
    pytest.fail(what)


def test_a_full_spool_is_503_overloaded_then_frees_up(edge_stack: Stack) -> None:
    rest = b"\r\n--" + BOUNDARY.encode() + b"--\r\n"
    # An earlier test's refused upload keeps its reservation until ingest sees the gateway's
    # cancel, a few milliseconds after its client had the answer: start from an empty spool.
    _await_spool(edge_stack, lambda used: used == 0, "the spool never emptied")
    held = socket.create_connection(_address(edge_stack), timeout=30)
    try:
        body = _file_part_head() + _csv(700)
        held.sendall(_head(len(body) + len(rest)) + body)
        # Admitted: its ~700 KiB are reserved (of 1.5 MiB).
        _await_spool(edge_stack, lambda used: used >= len(body), "the held upload was refused")
        second = _file_part_head() + _csv(900) + rest
        response, _ = _send(edge_stack, _head(len(second)), [second])
        assert response.status == 503
        assert response.problem()["code"] == "overloaded"
        assert response.headers["retry-after"] == "2"
        held.sendall(rest)
        assert _read_response(held, 30).status == 202  # the held upload completes
    finally:
        held.close()
    response, _ = _send(edge_stack, _head(len(second)), [second])
    assert response.status == 202  # the spool was given back


@pytest.mark.parametrize("cursor", ["bmFu", "aW5m", "LTE=", "MWU5", "%%%", "bm9wZQ", "AAAA"])
def test_a_foreign_cursor_is_400_invalid_page_token(edge_stack: Stack, cursor: str) -> None:
    reply = httpx.get(f"{edge_stack.gateway_url}/api/jobs", params={"cursor": cursor}, timeout=30)
    assert reply.status_code == 400, reply.text
    assert reply.json()["code"] == "invalid_page_token"


def _mutate(body: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, cut, insert in edits:
        at = position % (len(body) + 1)
        body = body[:at] + insert + body[at + cut :]
    return body


_VALID = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="options"\r\n\r\n{{}}\r\n'.encode()
    + _file_part_head()
    + CSV_ROW * 3
    + f"\r\n--{BOUNDARY}--\r\n".encode()
)
_TOKENS = [b"\r\n", b"--", BOUNDARY.encode(), b'"', b";", b":", b"\x00", b"=", b"\xff"]
_bodies = st.one_of(
    st.binary(max_size=2048),
    st.builds(
        _mutate,
        st.just(_VALID),
        st.lists(
            st.tuples(
                st.integers(0, 10_000),
                st.integers(0, 40),
                st.one_of(st.sampled_from(_TOKENS), st.binary(max_size=20)),
            ),
            max_size=6,
        ),
    ),
)
_content_types = st.one_of(
    st.just(f"multipart/form-data; boundary={BOUNDARY}"),
    st.builds(
        lambda b: f"multipart/form-data; boundary={b}",
        st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=300),
    ),
    st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=80),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_bodies, content_type=_content_types)
def test_fuzzed_multipart_never_gets_a_5xx(
    edge_stack: Stack, body: bytes, content_type: str
) -> None:
    response, _ = _send(edge_stack, _head(len(body), content_type), [body])
    assert response.status < 500, (response.status, response.body)


def test_the_stack_survived(edge_stack: Stack, tmp_path: Path) -> None:
    assert edge_stack.dead() == []
    ok = httpx.post(
        f"{edge_stack.gateway_url}/api/upload",
        files={"file": ("ok.csv", CSV_ROW * 3, "text/csv")},
        timeout=30,
    )
    assert ok.status_code == 202
