"""Runs the CPU-bound analysis in a child process that can be killed at once and is bounded.

The children are forked from a forkserver that has already imported pandas and the KPI engine, so
starting one costs milliseconds. Cancelling the awaiting task kills the child (SIGKILL). Memory is
bounded twice: RLIMIT_AS inside the child (headroom over what the forked child already maps) turns
a large allocation into MemoryError, and the parent polls the child's RSS and kills it past the
limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import resource
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)
MIB = 1024 * 1024
RSS_POLL_SECONDS = 0.05
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["analysis_svc.engine"])


class AnalysisRefused(Exception):
    """The input cannot be analysed; `code` is the job error code, str() the message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AnalysisOutput:
    """What the child computed."""

    report: dict[str, Any]
    charts: list[dict[str, Any]]


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _limit_address_space(max_memory_mb: int) -> None:
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = mapped + max_memory_mb * MIB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _child_main(
    path: str, filename: str, max_memory_mb: int, slow_seconds: float, conn: Connection
) -> None:
    """Entry point of the child: phases and the outcome go back through `conn`."""
    from analysis_svc import engine
    from analysis_svc.table_reader import InvalidInput

    try:
        with contextlib.suppress(OSError, ValueError):
            _limit_address_space(max_memory_mb)
        if slow_seconds:  # SIMULATED_SLOW_PROCESSING_SECONDS: a dev toggle
            time.sleep(slow_seconds)
        output = engine.analyze(Path(path), filename, lambda phase: conn.send(("phase", phase)))
        conn.send_bytes(json.dumps({"report": output[0], "charts": output[1]}).encode())
    except InvalidInput as exc:
        if _caused_by_memory(exc):
            conn.send(("refused", "resource_exhausted", _memory_message(max_memory_mb)))
        else:
            conn.send(("refused", "invalid_input", str(exc)))
    except MemoryError:
        conn.send(("refused", "resource_exhausted", _memory_message(max_memory_mb)))
    except BaseException as exc:  # reported to the parent, which logs it
        if _caused_by_memory(exc):
            conn.send(("refused", "resource_exhausted", _memory_message(max_memory_mb)))
        else:
            conn.send(("error", type(exc).__name__, traceback.format_exc(limit=5)))
    finally:
        conn.close()


# How the memory limit shows when a library, not Python, hits it first (pandas' C parser,
# Arrow's allocator, or a thread whose stack cannot be mapped under RLIMIT_AS).
_MEMORY_SIGNS = (
    "out of memory",
    "memoryerror",
    "bad_alloc",
    "arrowmemoryerror",
    "failed to allocate",
    "cannot allocate memory",
    "failed to launch worker thread",
    "resource temporarily unavailable",
)


def _caused_by_memory(exc: BaseException) -> bool:
    """True when an error was provoked by the memory limit (parsers re-raise it as their own)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        text = f"{type(seen).__name__} {seen}".lower()
        if isinstance(seen, MemoryError) or any(sign in text for sign in _MEMORY_SIGNS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _memory_message(max_memory_mb: int) -> str:
    return (
        f"The analysis needed more than the {max_memory_mb} MB memory limit "
        "(ANALYSIS_MAX_MEMORY_MB); try a smaller file or fewer columns."
    )


async def run_in_child(
    path: Path,
    filename: str,
    *,
    max_memory_mb: int,
    on_phase: Callable[[str], Awaitable[None]] | None = None,
    slow_seconds: float = 0.0,
) -> AnalysisOutput:
    """Analyse `path` in a fresh child; cancelling this coroutine kills the child at once."""
    loop = asyncio.get_running_loop()
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(
        target=_child_main,
        args=(str(path), filename, max_memory_mb, slow_seconds, sender),
        daemon=True,
    )
    await asyncio.to_thread(process.start)
    sender.close()
    readable = asyncio.Event()
    loop.add_reader(receiver.fileno(), readable.set)
    assert process.pid is not None
    baseline = _rss_bytes(process.pid)  # pages shared with the forkserver (pandas, ...)
    try:
        while True:
            readable.clear()
            while not receiver.poll():
                if _rss_bytes(process.pid) - baseline > max_memory_mb * MIB:
                    raise AnalysisRefused("resource_exhausted", _memory_message(max_memory_mb))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(readable.wait(), RSS_POLL_SECONDS)
                readable.clear()
            try:
                message = receiver.recv_bytes()
            except EOFError as exc:
                raise RuntimeError(f"analysis child died (exit code {process.exitcode})") from exc
            if message.startswith(b"{"):
                document = json.loads(message)
                return AnalysisOutput(document["report"], document["charts"])
            event = _unpickle(message)
            if event[0] == "phase":
                if on_phase is not None:
                    await on_phase(str(event[1]))
            elif event[0] == "refused":
                raise AnalysisRefused(str(event[1]), str(event[2]))
            else:
                _LOGGER.error("analysis child failed: %s\n%s", event[1], event[2])
                raise RuntimeError(f"analysis failed: {event[1]}")
    finally:
        loop.remove_reader(receiver.fileno())
        receiver.close()
        if process.is_alive():
            process.kill()
        await asyncio.to_thread(process.join)
        process.close()


def _unpickle(message: bytes) -> tuple[Any, ...]:
    from multiprocessing.reduction import ForkingPickler

    event: tuple[Any, ...] = ForkingPickler.loads(message)
    return event


def warm_up() -> None:
    """Start the forkserver (it imports pandas once) so that the first job does not wait."""
    process = _CONTEXT.Process(target=_noop, daemon=True)
    process.start()
    process.join()


def _noop() -> None:
    return None
