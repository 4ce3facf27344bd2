"""The analysis child process: results, refusals, the memory limit, and kill-on-cancel."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import openpyxl
import pytest

from analysis_svc.sandbox.pool import POOL, AnalysisRefused, run_in_child
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
