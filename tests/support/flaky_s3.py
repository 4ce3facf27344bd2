"""An HTTP forwarder in front of a real S3 server that answers 503 to chosen requests once,
or holds their replies (the request done, its answer late: a reply lost to a cancelled caller).

It also checks what moto does not: a request's declared payload sha256 (SigV4's
`x-amz-content-sha256`) must be its body's, or it is refused as S3 refuses it.
"""

from __future__ import annotations

import hashlib
import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from devstack.processes import free_port

_UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
    b"<Message>injected by the test</Message></Error>"
)
_SHA256_MISMATCH = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>XAmzContentSHA256Mismatch</Code>'
    b"<Message>The provided 'x-amz-content-sha256' header does not match what was computed."
    b"</Message></Error>"
)
# Declared payload hashes that are not the body's digest (nothing to check).
_UNCHECKED_PAYLOADS = ("UNSIGNED-PAYLOAD", "STREAMING-")
_HOP_HEADERS = {"connection", "transfer-encoding", "keep-alive", "content-length"}
# (method, query) -> whether this request is answered 503 (decided once per request).
Chooser = Callable[[str, dict[str, list[str]]], bool]


class FlakyS3:
    """Forwards to `target_port`; a request `fail` picks is answered 503 instead, once each time.

    `seen` records (method, query) of every request that reached the front, failed or not;
    `mismatched` those whose body was not what its `x-amz-content-sha256` declared (answered 400).
    A request `hold` picks is carried out upstream, then its reply waits until `release` is set;
    `held` counts such requests done upstream.
    """

    def __init__(self, target_port: int, fail: Chooser, hold: Chooser | None = None) -> None:
        self.seen: list[tuple[str, dict[str, list[str]]]] = []
        self.mismatched: list[tuple[str, dict[str, list[str]]]] = []
        self.held = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
                with front._lock:
                    front.seen.append((self.command, query))
                    refuse = fail(self.command, query)
                    late = hold is not None and hold(self.command, query)
                if refuse:
                    self._answer(503, _UNAVAILABLE)
                    return
                declared = self.headers.get("x-amz-content-sha256", "")
                if (
                    declared
                    and not declared.startswith(_UNCHECKED_PAYLOADS)
                    and declared != hashlib.sha256(body).hexdigest()
                ):
                    with front._lock:
                        front.mismatched.append((self.command, query))
                    self._answer(400, _SHA256_MISMATCH)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body, dict(self.headers.items()))
                    reply = upstream.getresponse()
                    data = reply.read()
                finally:
                    upstream.close()
                if late:
                    with front._lock:
                        front.held += 1
                    front.release.wait(30)
                self.send_response(reply.status)
                for name, value in reply.getheaders():
                    if name.lower() not in _HOP_HEADERS:
                        self.send_header(name, value)
                length = reply.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyS3:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
