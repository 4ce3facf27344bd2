"""A fake OpenAI-compatible server (real HTTP, scripted faults) and llm_svc as a process."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.processes import ManagedProcess, free_port, wait_grpc_serving


@dataclass
class Reply:
    """One scripted answer.

    `status`/`body`/`headers` make an ordinary response (`raw` replaces the JSON body by
    these bytes). `delay` answers after that many seconds (a slow answer). `hang` never
    answers: the handler waits until the client closes the connection (recorded in
    `FakeLlm.disconnects`) or the server stops. `drop` closes the connection without
    answering (a network error on the client side).
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    delay: float = 0.0
    hang: bool = False
    drop: bool = False


Responder = Callable[[Any], Reply]


def completion(content: str, **message: Any) -> Reply:
    """A 200 chat-completion whose first choice holds `content`."""
    return Reply(
        200, {"choices": [{"message": {"role": "assistant", "content": content, **message}}]}
    )


def insights_reply(*insights: dict[str, Any], **message: Any) -> Reply:
    """A 200 chat-completion answering the given insights as JSON."""
    return completion(json.dumps({"insights": list(insights)}), **message)


def hang() -> Reply:
    return Reply(hang=True)


def drop() -> Reply:
    return Reply(drop=True)


class FakeLlm:
    """Serves scripted replies in order (the last one repeats); records every request.

    A scripted item may be a function of the request's JSON body returning the Reply.
    """

    def __init__(self) -> None:
        self.replies: deque[Reply | Responder] = deque([Reply(500, {"error": "not scripted"})])
        self.requests: list[dict[str, Any]] = []
        self.disconnects: list[float] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._changed = threading.Condition(self._lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One segment per answer, sent at once (no Nagle / delayed-ACK stalls).
            disable_nagle_algorithm = True
            wbufsize = 64 * 1024

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length) or b"{}"
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with fake._changed:
                    fake.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                            "at": time.monotonic(),
                        }
                    )
                    scripted = fake.replies.popleft() if len(fake.replies) > 1 else fake.replies[0]
                    fake._changed.notify_all()
                reply = scripted if isinstance(scripted, Reply) else scripted(body)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.hang:
                    self._wait_for_close()
                    self.close_connection = True
                    return
                if reply.delay and fake._stopping.wait(reply.delay):
                    return
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    self.close_connection = True

            def _wait_for_close(self) -> None:
                """Block until the peer closes the connection (EOF) or the server stops."""
                while not fake._stopping.is_set():
                    readable, _, _ = select.select([self.connection], [], [], 0.02)
                    if not readable:
                        continue
                    try:
                        data = self.connection.recv(1, socket.MSG_PEEK)
                    except OSError:
                        data = b""
                    if not data:
                        with fake._changed:
                            fake.disconnects.append(time.monotonic())
                            fake._changed.notify_all()
                        return

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def script(self, *replies: Reply | Responder) -> None:
        """Answer the next requests with these replies (or functions of the request body)."""
        with self._lock:
            self.replies = deque(replies)
            self.requests.clear()
            self.disconnects.clear()

    def wait_requests(self, count: int, timeout: float = 5.0) -> None:
        """Wait until `count` requests have arrived since the last `script`."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} requests after {timeout}s")

    def wait_disconnects(self, count: int, timeout: float = 5.0) -> None:
        """Wait until `count` hanging requests have seen their connection closed."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.disconnects) >= count, timeout):
                raise TimeoutError(f"{len(self.disconnects)} of {count} disconnects")

    def start(self) -> FakeLlm:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


@dataclass
class LlmProcess:
    """`python -m llm_svc` as a real process on a free port, with its log file."""

    address: str
    log: Path
    process: ManagedProcess

    @classmethod
    def start(cls, run_dir: Path, env: dict[str, str], *, wait: bool = True) -> LlmProcess:
        address = f"127.0.0.1:{free_port()}"
        run_dir.mkdir(parents=True, exist_ok=True)
        log = run_dir / f"llm-{address.rsplit(':', 1)[1]}.log"
        full_env = {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens: no cache
            "METRICS_PORT": "0",
            **env,
            "GRPC_LISTEN_ADDR": address,
            "PYTHONUNBUFFERED": "1",
        }
        process = ManagedProcess("llm", [sys.executable, "-m", "llm_svc"], full_env, log)
        process.start()
        started = cls(address, log, process)
        if wait:
            try:
                wait_grpc_serving(address, 30, process)
            except BaseException:
                process.stop()
                raise
        return started

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records

    def stop(self) -> int | None:
        return self.process.stop()
