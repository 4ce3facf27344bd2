"""uvicorn server that drains on SIGTERM/SIGINT and then exits 0 (no re-raised signal)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Generator

import uvicorn


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises the captured signal after shutdown; a graceful stop here exits 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
