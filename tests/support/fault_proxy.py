"""An asyncio TCP proxy that can drop the server's next replies or blackhole its connections.

Unlike `tests.support.chaos.TcpProxy` (which refuses and cuts connections), this one keeps the
sockets open and silently stops delivering bytes: the faults a client cannot see coming, a reply
lost on its way back (the command ran) and a half-open connection (the peer is gone, no FIN).
"""

from __future__ import annotations

import asyncio
import contextlib

PUMP_BYTES = 64 * 1024


class FaultProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port` inside the running event loop."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.drop_replies = 0  # the next N chunks the server sends are discarded
        self.dropped = asyncio.Event()  # set when a reply was discarded
        self.blackholed = False  # nothing is forwarded either way (connections stay open)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers.update((client_w, server_w))
        await asyncio.gather(
            self._pump(client_r, server_w, replies=False),
            self._pump(server_r, client_w, replies=True),
            return_exceptions=True,
        )
        for writer in (client_w, server_w):
            self._writers.discard(writer)
            writer.close()

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, replies: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(PUMP_BYTES):
                if self.blackholed:
                    continue
                if replies and self.drop_replies > 0:
                    self.drop_replies -= 1
                    self.dropped.set()
                    continue
                sink.write(data)
                await sink.drain()
        sink.close()
