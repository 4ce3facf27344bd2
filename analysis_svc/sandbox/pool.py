"""Runs the CPU-bound analysis in child processes that can be killed at once and are bounded.

Children are forked from a forkserver that has imported pandas and the KPI engine and run it
once (`child_preload`), and each child serves jobs one after another, so a job pays neither an
interpreter start nor cold imports. Cancelling the awaiting task kills the child running it
(SIGKILL); a child is also replaced after a memory refusal, an error, or `MAX_JOBS_PER_CHILD`
jobs. Memory is bounded twice: RLIMIT_AS inside the child (headroom over what the forked child
already maps) turns a large allocation into MemoryError, and the parent polls the child's RSS
and kills it when a job grows it past the limit. CPU is bounded twice too, per job (children are
reused, so the bound is on the CPU used since the job started): the parent polls the child's
user+system time (every thread) in /proc and kills it past `ANALYSIS_MAX_CPU_SECONDS`, and a
RLIMIT_CPU soft limit set at each job start is the backstop (SIGXCPU) should the parent stall.

The sandbox holds nothing worth stealing: the forkserver is started with an allow-listed
environment (no tokens, keys or store URLs), a child closes the descriptors multiprocessing
hands it besides its pipe, and what a child sends back is JSON, never pickle. At most
`max_children` children live at once; a job waits for a free one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import re
import resource
import signal
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from multiprocessing import forkserver, resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from datapilot_runtime.error_codes import ErrorCode, parse

_LOGGER = logging.getLogger(__name__)
MIB = 1024 * 1024
RSS_POLL_SECONDS = 0.05
MAX_JOBS_PER_CHILD = 200
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["analysis_svc.sandbox.preload"])
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# RLIMIT_CPU is whole seconds and only a backstop behind the parent's poll: it fires later.
_RLIMIT_CPU_MARGIN_SECONDS = 2
# What the forkserver (and so every child) may see of this process's environment: locale,
# time zone, temp folder and thread-count knobs. Tokens, keys and store URLs stay out.
_ENVIRONMENT_ALLOWED = re.compile(
    r"PATH|HOME|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|PYTHONPATH|PYTHONHASHSEED|PYTHONDONTWRITEBYTECODE"
    r"|OMP_NUM_THREADS|OPENBLAS_NUM_THREADS|MKL_NUM_THREADS|NUMEXPR_(?:MAX|NUM)_THREADS"
    r"|VECLIB_MAXIMUM_THREADS|RAYON_NUM_THREADS|POLARS_MAX_THREADS|ARROW_[A-Z_]*THREADS?"
)
_FORKSERVER_LOCK = threading.Lock()
_TRACKER: object = getattr(resource_tracker, "_resource_tracker", None)
# Messages from a child start with a tag byte: the result document, or an event.
_RESULT_TAG = b"R"
_EVENT_TAG = b"E"
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


class _ChildEvent(BaseModel):
    """A child's message other than the result: a phase, a refusal (code) or an error."""

    kind: Literal["phase", "refused", "error"]
    text: str = ""  # the phase, the refusal's message, or the exception's type name
    code: str = ""
    detail: str = ""  # an error's traceback (for the parent's log)
    ns: int = 0  # when a phase started (the child's clock, Unix ns)


def _send_event(conn: Connection, event: _ChildEvent) -> None:
    conn.send_bytes(_EVENT_TAG + event.model_dump_json().encode())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of `pid` (fields 14 and 15 of /proc/pid/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return 0.0


def decode_child_message(message: bytes) -> AnalysisOutput | _ChildEvent:
    """A child's message: JSON only (a child is not trusted: its bytes are never unpickled).

    Raises ValueError for anything else.
    """
    if message.startswith(_RESULT_TAG):
        document = json.loads(message[1:])
        if not isinstance(document, dict) or not {"report", "charts"} <= document.keys():
            raise ValueError("analysis child sent a result that is not a result document")
        finished = document.get("finishedNs", 0)
        return AnalysisOutput(
            document["report"], document["charts"], finished if isinstance(finished, int) else 0
        )
    if message.startswith(_EVENT_TAG):
        return _ChildEvent.model_validate_json(message[1:])
    raise ValueError("analysis child sent a message of unknown kind")


def cpu_limit_message(max_cpu_seconds: float) -> str:
    """The refusal of a job that used more CPU than its bound."""
    return (
        f"The analysis used more than the {max_cpu_seconds:g} s CPU limit "
        "(ANALYSIS_MAX_CPU_SECONDS) and was stopped; try a smaller or simpler file."
    )


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


def _close_inherited_descriptors() -> None:
    """Close what multiprocessing hands a forked child besides its pipe.

    Those are the forkserver's "alive" pipe, the resource tracker's pipe and the parent
    sentinel; none is needed by the analysis. Descriptors that libraries opened in the
    forkserver itself (Arrow's wake-up pipe) stay: they hold nothing of the service's.
    """
    # Private attributes of multiprocessing (CPython 3.11), read defensively.
    holders = ((forkserver._forkserver, "_forkserver_alive_fd"), (_TRACKER, "_fd"))
    inherited = [getattr(holder, name, None) for holder, name in holders]
    inherited.append(getattr(multiprocessing.parent_process(), "_sentinel", None))
    for fd in inherited:
        if isinstance(fd, int) and fd > 2:
            with contextlib.suppress(OSError):
                os.close(fd)
    for holder, name in holders:
        if holder is not None:
            setattr(holder, name, None)


def _limit_cpu(max_cpu_seconds: float) -> None:
    """RLIMIT_CPU soft limit: this job's allowance on top of what the child has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + max_cpu_seconds) + _RLIMIT_CPU_MARGIN_SECONDS
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _child_loop(conn: Connection, max_memory_mb: int) -> None:
    """A child's life: analyse each request from `conn` until told to stop (None) or killed."""
    _close_inherited_descriptors()
    with contextlib.suppress(OSError, ValueError):
        _limit_address_space(max_memory_mb)
    while True:
        try:
            request = conn.recv()  # from the parent, which the child trusts (not the reverse)
        except (EOFError, OSError):
            return
        if request is None:
            return
        _path, path, filename, slow_seconds, roles, max_cpu_seconds = request
        with contextlib.suppress(OSError, ValueError):
            _limit_cpu(float(max_cpu_seconds))
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
        output = engine.analyze(
            Path(path),
            filename,
            # Each phase with the child's own time: the worker records the child's phases as
            # spans (an exporter does not survive a fork, and the child has none).
            lambda phase: _send_event(
                conn, _ChildEvent(kind="phase", text=phase, ns=time.time_ns())
            ),
            roles=roles,
        )
        conn.send_bytes(
            _RESULT_TAG
            + json.dumps(
                {"report": output[0], "charts": output[1], "finishedNs": time.time_ns()}
            ).encode()
        )
    except InvalidInput as exc:
        if _caused_by_memory(exc):
            _send_event(conn, _memory_refusal(max_memory_mb))
        else:
            refusal = _ChildEvent(kind="refused", code=exc.code.value, text=str(exc))
            _send_event(conn, refusal)
    except MemoryError:
        _send_event(conn, _memory_refusal(max_memory_mb))
    except Exception as exc:  # reported to the parent, which logs it
        if _caused_by_memory(exc):
            _send_event(conn, _memory_refusal(max_memory_mb))
        else:
            error = _ChildEvent(
                kind="error", text=type(exc).__name__, detail=traceback.format_exc(limit=5)
            )
            _send_event(conn, error)


def _memory_refusal(max_memory_mb: int) -> _ChildEvent:
    return _ChildEvent(
        kind="refused",
        code=ErrorCode.RESOURCE_EXHAUSTED.value,
        text=_memory_message(max_memory_mb),
    )


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
    "can't start new thread",
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


@contextlib.contextmanager
def _allow_listed_environment() -> Iterator[None]:
    """os.environ reduced to the allow-list for as long as the block runs (then restored)."""
    saved = dict(os.environ)
    try:
        for name in saved:
            if not _ENVIRONMENT_ALLOWED.fullmatch(name):
                del os.environ[name]
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _ensure_forkserver() -> None:
    """Start the forkserver, if it is not running, with the allow-listed environment only.

    multiprocessing starts it with this process's environment as it is at that moment, and
    every child inherits the forkserver's: so the secrets are removed just for that start.
    """
    with _FORKSERVER_LOCK, _allow_listed_environment():
        forkserver.ensure_running()


class ChildPool:
    """Analysis children reused job after job: at most `max_children` live, `max_idle` idle."""

    def __init__(self, max_idle: int = 4, max_children: int = 4) -> None:
        self._idle: list[_Child] = []
        self._idle_limit = max_idle
        self._max_idle = min(max_idle, max_children)
        self._max_children = max_children
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def set_max_children(self, max_children: int) -> None:
        """Bound the live children (ANALYSIS_MAX_CHILDREN); call before the first job."""
        self._max_children = max_children
        self._max_idle = min(self._idle_limit, max_children)
        self._slots = None

    def _slot(self) -> asyncio.Semaphore:
        # A semaphore belongs to one event loop (tests run one loop each): made on first use.
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self._max_children))
        return self._slots[1]

    @property
    def max_children(self) -> int:
        """How many children may live at once."""
        return self._max_children

    async def _spawn(self, max_memory_mb: int) -> _Child:
        parent_end, child_end = _CONTEXT.Pipe(duplex=True)
        process = _CONTEXT.Process(target=_child_loop, args=(child_end, max_memory_mb), daemon=True)

        def start() -> None:
            _ensure_forkserver()
            process.start()

        started = asyncio.get_running_loop().run_in_executor(None, start)
        try:
            await asyncio.shield(started)
        except asyncio.CancelledError:  # the thread goes on starting it: then it is killed
            await asyncio.wait([started])
            child_end.close()
            await self._retire(_Child(process, parent_end, max_memory_mb))
            raise
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
        child.conn.close()
        if child.process.pid is None:  # never started
            return
        if child.process.is_alive():
            child.process.kill()
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
        max_cpu_seconds: float,
        on_phase: PhaseCallback | None,
        slow_seconds: float,
        roles: Mapping[str, str],
    ) -> AnalysisOutput:
        async with self._slot():  # a job waits here while `max_children` children are busy
            return await self._run(
                path,
                filename,
                max_memory_mb=max_memory_mb,
                max_cpu_seconds=max_cpu_seconds,
                on_phase=on_phase,
                slow_seconds=slow_seconds,
                roles=roles,
            )

    async def _run(
        self,
        path: Path,
        filename: str,
        *,
        max_memory_mb: int,
        max_cpu_seconds: float,
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
            cpu_baseline = _cpu_seconds(pid)  # ... and the CPU it used before it
            request = ("analyze", str(path), filename, slow_seconds, dict(roles), max_cpu_seconds)
            child.conn.send(request)
            while True:
                readable.clear()
                while not child.conn.poll():
                    if _rss_bytes(pid) - baseline > max_memory_mb * MIB:
                        raise AnalysisRefused(
                            ErrorCode.RESOURCE_EXHAUSTED, _memory_message(max_memory_mb)
                        )
                    if _cpu_seconds(pid) - cpu_baseline > max_cpu_seconds:
                        raise AnalysisRefused(
                            ErrorCode.ANALYSIS_LIMIT_EXCEEDED, cpu_limit_message(max_cpu_seconds)
                        )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(readable.wait(), RSS_POLL_SECONDS)
                    readable.clear()
                try:
                    message = child.conn.recv_bytes()
                except EOFError as exc:
                    await asyncio.to_thread(child.process.join, 1.0)
                    code = child.process.exitcode
                    if code == -signal.SIGXCPU:  # the RLIMIT_CPU backstop fired
                        raise AnalysisRefused(
                            ErrorCode.ANALYSIS_LIMIT_EXCEEDED, cpu_limit_message(max_cpu_seconds)
                        ) from exc
                    if code == -signal.SIGABRT:
                        # Native code (calamine, Arrow) aborts the process when an allocation
                        # fails under RLIMIT_AS, where Python would have raised MemoryError.
                        raise AnalysisRefused(
                            ErrorCode.RESOURCE_EXHAUSTED, _memory_message(max_memory_mb)
                        ) from exc
                    raise RuntimeError(f"analysis child died (exit code {code})") from exc
                event = decode_child_message(message)
                if isinstance(event, AnalysisOutput):
                    reusable = True
                    return event
                if event.kind == "phase":
                    if on_phase is not None:
                        await on_phase(event.text, event.ns)
                elif event.kind == "refused":
                    refusal = parse(event.code) or ErrorCode.INVALID_INPUT
                    reusable = refusal is ErrorCode.INVALID_INPUT
                    raise AnalysisRefused(refusal, event.text)
                else:
                    _LOGGER.error("analysis child failed: %s\n%s", event.text, event.detail)
                    raise RuntimeError(f"analysis failed: {event.text}")
        finally:
            loop.remove_reader(child.conn.fileno())
            child.jobs += 1
            if reusable:
                await self._give_back(child)
            else:  # cancelled, over a limit, or broken: it goes
                await self._retire(child)


POOL = ChildPool()


async def run_in_child(
    path: Path,
    filename: str,
    *,
    max_memory_mb: int,
    max_cpu_seconds: float = 60.0,
    on_phase: PhaseCallback | None = None,
    slow_seconds: float = 0.0,
    roles: Mapping[str, str] | None = None,
) -> AnalysisOutput:
    """Analyse `path` in a child; cancelling this coroutine kills that child at once.

    `roles`: the uploader's column role overrides, handed to the engine's `analyze()`.
    `on_phase(phase, started_ns)` hears each phase the child starts, with the child's clock.
    """
    return await POOL.run(
        path,
        filename,
        max_memory_mb=max_memory_mb,
        max_cpu_seconds=max_cpu_seconds,
        on_phase=on_phase,
        slow_seconds=slow_seconds,
        roles=roles or {},
    )


def warm_up() -> None:
    """Start the forkserver (it imports pandas once) so that the first job does not wait."""
    _ensure_forkserver()
    process = _CONTEXT.Process(target=_noop, daemon=True)
    process.start()
    process.join()


def _noop() -> None:
    return None
