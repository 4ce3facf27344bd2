"""Runs the CPU-bound analysis in child processes that can be killed at once and are bounded.

Children are forked from a forkserver that has imported pandas and the KPI engine and run it
once (`child_preload`), and each child serves jobs one after another, so a job pays neither an
interpreter start nor cold imports. Cancelling the awaiting task kills the child running it
(SIGKILL); a child is also replaced after a memory refusal, an error, or `MAX_JOBS_PER_CHILD`
jobs. Memory is bounded twice: RLIMIT_AS inside the child (headroom over what the forked child
already maps) turns a large allocation into MemoryError, and the parent polls the child's RSS
and kills it when a job grows it past the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import pickle
import resource
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from datapilot_runtime.error_codes import ErrorCode

_LOGGER = logging.getLogger(__name__)
MIB = 1024 * 1024
RSS_POLL_SECONDS = 0.05
MAX_JOBS_PER_CHILD = 200
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["analysis_svc.sandbox.preload"])


# Told each phase the child starts and when it started (the child's clock, Unix ns).
PhaseCallback = Callable[[str, int], Awaitable[None]]


class AnalysisRefused(Exception):
    """The input cannot be analysed; `code` is the job error code, str() the message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AnalysisOutput:
    """What the child computed."""

    report: dict[str, Any]
    charts: list[dict[str, Any]]
    # When the child finished (its clock, Unix ns): where its last phase ends in a trace.
    finished_ns: int = 0


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


def _child_loop(conn: Connection, max_memory_mb: int) -> None:
    """A child's life: analyse each request from `conn` until told to stop (None) or killed."""
    with contextlib.suppress(OSError, ValueError):
        _limit_address_space(max_memory_mb)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        _path, path, filename, slow_seconds, roles = request
        _analyse_one(conn, path, filename, float(slow_seconds), max_memory_mb, roles)


def _analyse_one(
    conn: Connection,
    path: str,
    filename: str,
    slow_seconds: float,
    max_memory_mb: int,
    roles: dict[str, str],
) -> None:
    """One job in the child: phases, then the outcome, go back through `conn`."""
    from analysis_svc.engine import analyze as engine
    from analysis_svc.engine.readers.dispatch import InvalidInput

    try:
        if slow_seconds:  # SIMULATED_SLOW_PROCESSING_SECONDS: a dev toggle
            time.sleep(slow_seconds)
        # Each phase with the child's own time: the worker records the child's phases as spans
        # (an exporter does not survive a fork, and the child has none).
        output = engine.analyze(
            Path(path),
            filename,
            lambda phase: conn.send(("phase", phase, time.time_ns())),
            roles=roles,
        )
        document = {"report": output[0], "charts": output[1], "finishedNs": time.time_ns()}
        conn.send_bytes(json.dumps(document).encode())
    except InvalidInput as exc:
        if _caused_by_memory(exc):
            conn.send(
                ("refused", ErrorCode.RESOURCE_EXHAUSTED.value, _memory_message(max_memory_mb))
            )
        else:
            conn.send(("refused", ErrorCode.INVALID_INPUT.value, str(exc)))
    except MemoryError:
        conn.send(("refused", ErrorCode.RESOURCE_EXHAUSTED.value, _memory_message(max_memory_mb)))
    except Exception as exc:  # reported to the parent, which logs it
        if _caused_by_memory(exc):
            conn.send(
                ("refused", ErrorCode.RESOURCE_EXHAUSTED.value, _memory_message(max_memory_mb))
            )
        else:
            conn.send(("error", type(exc).__name__, traceback.format_exc(limit=5)))


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


@dataclass
class _Child:
    """A live analysis child and the parent's end of its pipe."""

    process: BaseProcess
    conn: Connection
    max_memory_mb: int
    jobs: int = 0


class ChildPool:
    """Idle analysis children, reused job after job; at most `max_idle` are kept."""

    def __init__(self, max_idle: int = 4) -> None:
        self._idle: list[_Child] = []
        self._max_idle = max_idle

    async def _spawn(self, max_memory_mb: int) -> _Child:
        parent_end, child_end = _CONTEXT.Pipe(duplex=True)
        process = _CONTEXT.Process(target=_child_loop, args=(child_end, max_memory_mb), daemon=True)
        await asyncio.to_thread(process.start)
        child_end.close()
        return _Child(process, parent_end, max_memory_mb)

    async def _take(self, max_memory_mb: int) -> _Child:
        while self._idle:
            child = self._idle.pop()
            if child.process.is_alive() and child.max_memory_mb == max_memory_mb:
                return child
            await self._retire(child)
        return await self._spawn(max_memory_mb)

    async def _give_back(self, child: _Child) -> None:
        if child.jobs < MAX_JOBS_PER_CHILD and len(self._idle) < self._max_idle:
            self._idle.append(child)
        else:
            await self._retire(child)

    @staticmethod
    async def _retire(child: _Child) -> None:
        if child.process.is_alive():
            child.process.kill()
        child.conn.close()
        await asyncio.to_thread(child.process.join)
        child.process.close()

    async def close(self) -> None:
        """Stop every idle child."""
        idle, self._idle = self._idle, []
        for child in idle:
            await self._retire(child)

    async def run(
        self,
        path: Path,
        filename: str,
        *,
        max_memory_mb: int,
        on_phase: PhaseCallback | None,
        slow_seconds: float,
        roles: Mapping[str, str],
    ) -> AnalysisOutput:
        child = await self._take(max_memory_mb)
        reusable = False
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(child.conn.fileno(), readable.set)
        try:
            pid = child.process.pid
            assert pid is not None
            baseline = _rss_bytes(pid)  # what the child holds before this job
            child.conn.send(("analyze", str(path), filename, slow_seconds, dict(roles)))
            while True:
                readable.clear()
                while not child.conn.poll():
                    if _rss_bytes(pid) - baseline > max_memory_mb * MIB:
                        raise AnalysisRefused(
                            ErrorCode.RESOURCE_EXHAUSTED, _memory_message(max_memory_mb)
                        )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(readable.wait(), RSS_POLL_SECONDS)
                    readable.clear()
                try:
                    message = child.conn.recv_bytes()
                except EOFError as exc:
                    code = child.process.exitcode
                    raise RuntimeError(f"analysis child died (exit code {code})") from exc
                if message.startswith(b"{"):
                    document = json.loads(message)
                    reusable = True
                    return AnalysisOutput(
                        document["report"], document["charts"], int(document["finishedNs"])
                    )
                event = _unpickle(message)
                if event[0] == "phase":
                    if on_phase is not None:
                        await on_phase(str(event[1]), int(event[2]))
                elif event[0] == "refused":
                    refusal = ErrorCode(event[1])
                    reusable = refusal is ErrorCode.INVALID_INPUT
                    raise AnalysisRefused(refusal, str(event[2]))
                else:
                    _LOGGER.error("analysis child failed: %s\n%s", event[1], event[2])
                    raise RuntimeError(f"analysis failed: {event[1]}")
        finally:
            loop.remove_reader(child.conn.fileno())
            child.jobs += 1
            if reusable:
                await self._give_back(child)
            else:  # cancelled, over its memory, or broken: it goes
                await self._retire(child)


POOL = ChildPool()


async def run_in_child(
    path: Path,
    filename: str,
    *,
    max_memory_mb: int,
    on_phase: PhaseCallback | None = None,
    slow_seconds: float = 0.0,
    roles: Mapping[str, str] | None = None,
) -> AnalysisOutput:
    """Analyse `path` in a child; cancelling this coroutine kills that child at once.

    `on_phase(phase, started_ns)` hears each phase the child starts, with the child's clock.

    `roles`: the uploader's column role overrides, handed to the engine's `analyze()`.
    """
    return await POOL.run(
        path,
        filename,
        max_memory_mb=max_memory_mb,
        on_phase=on_phase,
        slow_seconds=slow_seconds,
        roles=roles or {},
    )


def _unpickle(message: bytes) -> tuple[Any, ...]:
    event: tuple[Any, ...] = pickle.loads(message)  # from our own child, over our own pipe
    return event


def warm_up() -> None:
    """Start the forkserver (it imports pandas once) so that the first job does not wait."""
    process = _CONTEXT.Process(target=_noop, daemon=True)
    process.start()
    process.join()


def _noop() -> None:
    return None
