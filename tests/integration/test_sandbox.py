"""The analysis child: results, refusals, memory and CPU limits, kill-on-cancel, no pickle."""

from __future__ import annotations

import asyncio
import os
import pickle
import time
from pathlib import Path

import openpyxl
import pytest

from analysis_svc.sandbox.pool import (
    POOL,
    AnalysisOutput,
    AnalysisRefused,
    decode_child_message,
    run_in_child,
)
from devstack.processes import descendant_pids

SALES = Path(__file__).resolve().parents[1] / "data" / "sales.csv"


def _descendants() -> set[int]:
    """Pids of every live process below this one (the forkserver and its children)."""
    return set(descendant_pids(os.getpid()))


async def test_report_and_phases_come_back_from_the_child() -> None:
    phases: list[str] = []
    times: list[int] = []

    async def on_phase(phase: str, started_ns: int) -> None:
        phases.append(phase)
        times.append(started_ns)

    before = time.time_ns()
    output = await run_in_child(SALES, "sales.csv", max_memory_mb=1024, on_phase=on_phase)
    assert output.report["dataset"]["rows"] == 120
    assert phases[:2] == ["parse", "profile"]
    # The child's own clock: in order, within the call, the finish after the last phase.
    assert before <= times[0] and times == sorted(times)
    assert times[-1] <= output.finished_ns <= time.time_ns()


async def test_unreadable_input_is_refused_as_invalid_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(AnalysisRefused) as info:
        await run_in_child(empty, "empty.csv", max_memory_mb=1024)
    assert info.value.code == "invalid_input"


async def test_memory_limit_refuses_with_resource_exhausted(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    row = ",".join(f"v{i}_{{n}}" for i in range(200))
    with wide.open("w") as out:
        out.write(",".join(f"c{i}" for i in range(200)) + "\n")
        for n in range(20_000):
            out.write(row.format(n=n) + "\n")
    with pytest.raises(AnalysisRefused) as info:
        await run_in_child(wide, "wide.csv", max_memory_mb=64)
    assert info.value.code == "resource_exhausted"
    assert "ANALYSIS_MAX_MEMORY_MB" in str(info.value)


async def test_cancelling_kills_the_child_at_once() -> None:
    await run_in_child(SALES, "sales.csv", max_memory_mb=1024)  # the forkserver is up
    await POOL.close()  # no idle child: the job below gets a child of its own
    before = _descendants()
    task = asyncio.create_task(
        # Longer than the test's timeout: a cancel that waited for the job would never return.
        run_in_child(SALES, "sales.csv", max_memory_mb=1024, slow_seconds=3600)
    )
    for _ in range(1000):
        if _descendants() - before:
            break
        await asyncio.sleep(0.01)
    assert _descendants() - before, "no analysis child started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (_descendants() - before), "the analysis child outlived its cancellation"


def _pool_children() -> set[int]:
    """The pool's children: those of this process's forkserver (stacks of other tests aside)."""
    below = {pid: _parent(pid) for pid in _descendants()}
    forkservers = {
        pid
        for pid, parent in below.items()
        if parent == os.getpid() and b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    }
    return {pid for pid, parent in below.items() if parent in forkservers}


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _bytes_read(pid: int) -> int:
    """What `pid` has read through read(2): a job's request and its input file, for a child."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError(f"no rchar in /proc/{pid}/io")


async def test_children_are_reused_and_replaced_after_a_refusal(tmp_path: Path) -> None:
    await POOL.close()
    await run_in_child(SALES, "sales.csv", max_memory_mb=1024)
    children = _pool_children()
    assert len(children) == 1, f"one idle child after one job, not {children}"
    (child,) = children
    read_before = _bytes_read(child)
    await run_in_child(SALES, "sales.csv", max_memory_mb=1024)
    assert _pool_children() == {child}, "a second job should reuse the idle child"
    # The idle child itself ran the second job: it read the request and the whole input.
    assert _bytes_read(child) - read_before >= SALES.stat().st_size
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(AnalysisRefused):
        await run_in_child(empty, "empty.csv", max_memory_mb=1024)
    assert _pool_children() == {child}, "an invalid input leaves the child usable"


async def test_a_far_cell_below_the_head_is_refused_not_a_dead_child(tmp_path: Path) -> None:
    # calamine allocates the box up to XFD1048576 (17 billion cells) and aborts the process
    # when that fails: the reader refuses the sheet before calamine reads it.
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["a", "b"])
    for n in range(30_000):  # more rows than the head, more XML than its first chunk
        sheet.append([n, 2 * n])
    sheet["XFD1048576"] = 3
    path = tmp_path / "far.xlsx"
    workbook.save(path)
    with pytest.raises(AnalysisRefused) as info:
        await run_in_child(path, "far.xlsx", max_memory_mb=1024)
    assert info.value.code == "invalid_input"
    assert "16384 columns" in str(info.value)


def _busy_csv(path: Path, rows: int = 400_000) -> Path:
    """A plain table that takes the engine a second or more of CPU."""
    with path.open("w") as out:
        out.write("day,region,product,units,revenue\n")
        for n in range(rows):
            day = f"2024-{n % 12 + 1:02d}-{n % 28 + 1:02d}"
            out.write(f"{day},r{n % 7},p{n % 113},{n % 50},{n * 0.37:.2f}\n")
    return path


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_cpu_limit_fails_the_job_and_replaces_the_child(tmp_path: Path) -> None:
    busy = _busy_csv(tmp_path / "busy.csv")
    await POOL.close()
    await run_in_child(SALES, "sales.csv", max_memory_mb=1024)
    (first,) = _pool_children()
    with pytest.raises(AnalysisRefused) as info:
        await run_in_child(busy, "busy.csv", max_memory_mb=1024, max_cpu_seconds=0.2)
    assert info.value.code == "analysis_limit_exceeded"
    assert "ANALYSIS_MAX_CPU_SECONDS" in str(info.value) and "0.2 s" in str(info.value)
    assert first not in _pool_children(), "the child over its CPU limit must be killed"
    output = await run_in_child(SALES, "sales.csv", max_memory_mb=1024, max_cpu_seconds=0.2)
    assert output.report["dataset"]["rows"] == 120, "the pool serves the next job"


async def test_cpu_limit_counts_from_the_job_start_in_a_reused_child(tmp_path: Path) -> None:
    busy = _busy_csv(tmp_path / "busy.csv")
    await POOL.close()
    for _ in range(3):
        await run_in_child(busy, "busy.csv", max_memory_mb=1024, max_cpu_seconds=60)
    (child,) = _pool_children()
    used = _cpu_seconds(child)
    assert used > 0.6, f"the busy jobs used only {used} s"
    # The child's lifetime CPU is over this job's limit; its own use is not.
    output = await run_in_child(SALES, "sales.csv", max_memory_mb=1024, max_cpu_seconds=0.6)
    assert output.report["dataset"]["rows"] == 120
    assert _pool_children() == {child}
    # The RLIMIT_CPU backstop was set relative to what the child had used at that job's start.
    limits = await asyncio.to_thread(Path(f"/proc/{child}/limits").read_text)
    (line,) = [row for row in limits.splitlines() if row.startswith("Max cpu time")]
    soft = int(line.split()[3])
    assert int(used) + 2 <= soft <= int(_cpu_seconds(child)) + 3


async def test_at_most_max_children_live_at_once() -> None:
    await POOL.close()
    POOL.set_max_children(1)
    try:
        jobs = [
            asyncio.create_task(
                run_in_child(SALES, "sales.csv", max_memory_mb=1024, slow_seconds=0.3)
            )
            for _ in range(3)
        ]
        most = 0
        while not all(job.done() for job in jobs):
            most = max(most, len(_pool_children()))
            await asyncio.sleep(0.02)
        outputs = await asyncio.gather(*jobs)
    finally:
        POOL.set_max_children(4)
    assert most == 1, f"{most} children lived at once under ANALYSIS_MAX_CHILDREN=1"
    assert [output.report["dataset"]["rows"] for output in outputs] == [120] * 3


class _Payload:
    """What a compromised child could send if the parent unpickled: code that runs on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("tag", [b"", b"E", b"R"])
def test_child_messages_are_never_unpickled(tmp_path: Path, tag: bytes) -> None:
    marker = tmp_path / "marker"
    message = tag + pickle.dumps(("phase", _Payload(marker)))
    with pytest.raises(ValueError):
        decode_child_message(message)
    assert not marker.exists()
    event = decode_child_message(b'E{"kind": "phase", "text": "parse"}')
    assert not isinstance(event, AnalysisOutput) and event.text == "parse"
