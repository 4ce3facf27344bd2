"""A loopback TCP forwarder that a test can take down (connection refused) and bring back up."""

from __future__ import annotations

import contextlib
import socket
import threading

from devstack.processes import free_port

ACCEPT_POLL_SECONDS = 0.05
PUMP_BYTES = 64 * 1024


class TcpProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port`; `down()` refuses and cuts traffic.

    The server behind it keeps running (and keeps its data): this is the endpoint becoming
    unreachable, as in a network partition or a load balancer without healthy targets.
    """

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._acceptor: threading.Thread | None = None

    def up(self) -> TcpProxy:
        """Listen again on the same port."""
        with self._lock:
            if self._listener is not None:
                return self
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            listener.settimeout(ACCEPT_POLL_SECONDS)
            self._listener = listener
            self._stop = threading.Event()
            self._acceptor = threading.Thread(
                target=self._accept, args=(listener, self._stop), name="proxy-accept", daemon=True
            )
            self._acceptor.start()
        return self

    def down(self) -> None:
        """Stop listening (new connections are refused) and cut every open connection."""
        with self._lock:
            listener, acceptor = self._listener, self._acceptor
            self._listener, self._acceptor = None, None
            self._stop.set()
            connections = list(self._connections)
            self._connections.clear()
        if acceptor is not None:
            acceptor.join(5)
        if listener is not None:
            listener.close()
        for connection in connections:
            _close(connection)

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if stop.is_set():
                    _close(client)
                    _close(upstream)
                    return
                self._connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy bytes one way until EOF or an error, then close both sides (HTTP needs no more)."""
        try:
            while data := source.recv(PUMP_BYTES):
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._connections.difference_update((source, sink))
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
