"""The peers a report is measured against, and a report's time and peak RSS in an analysis child.

Peers: DuckDB `SUMMARIZE`, polars read + `describe`, `pyarrow.csv.read_csv` for CSV; fastexcel
(to Arrow) and python-calamine for XLSX. Each is run on the same file as the report, in rounds
that take turns (`interleaved_best`), so that a noisy neighbour slows every peer alike.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import fastexcel
import polars
import pyarrow.csv as pacsv
import python_calamine

from analysis_svc.sandbox.pool import POOL, run_in_child
from analysis_svc.settings import AnalysisSettings
from bench.figures import Figure
from bench.procstats import peak_rss_mib
from devstack.processes import descendant_pids


def interleaved_best(
    actions: dict[str, Callable[[], object]], repeats: int, *, warm_up: bool = True
) -> dict[str, float]:
    """Best wall time of each action over `repeats` rounds, after one untimed warm-up round
    (first-call costs such as page-cache misses or a first fork are not what a peer costs)."""
    best = dict.fromkeys(actions, math.inf)
    for round_number in range(repeats + int(warm_up)):
        for name, action in actions.items():
            gc.collect()
            start = time.perf_counter()
            action()
            if round_number or not warm_up:
                best[name] = min(best[name], time.perf_counter() - start)
    return best


# --------------------------------------------------------------------------- CSV peers


def duckdb_summarize(path: Path) -> list[tuple[Any, ...]]:
    """DuckDB's one-statement profile of a CSV (min, max, unique count, mean, std, quartiles,
    null share of every column), in a fresh in-memory database as a one-off query would run."""
    quoted = str(path).replace("'", "''")
    with duckdb.connect() as connection:
        return connection.sql(f"SUMMARIZE SELECT * FROM read_csv('{quoted}')").fetchall()


def polars_describe(path: Path) -> polars.DataFrame:
    # "NA" is told as a null marker: polars does not take it as one by default and then fails
    # on the real file (R's export writes NA), where pandas, pyarrow and DuckDB read it as null.
    return polars.read_csv(path, null_values=["", "NA"]).describe()


def pyarrow_read(path: Path) -> Any:
    return pacsv.read_csv(path)


# --------------------------------------------------------------------------- XLSX peers


def fastexcel_read(path: Path) -> Any:
    # From bytes, as the reader does (calamine is faster on an in-memory cursor than a file).
    return fastexcel.read_excel(path.read_bytes()).load_sheet(0, eager=True)


def calamine_read(path: Path) -> list[Any]:
    workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    return workbook.get_sheet_by_index(0).to_python()


# --------------------------------------------------------------------------- the report


def report_in_child(path: Path, filename: str) -> None:
    """The report and charts as a job computes them: in a (reused) analysis child."""
    asyncio.run(_analyse(path, filename))


async def _analyse(path: Path, filename: str) -> None:
    max_memory_mb = AnalysisSettings().analysis_max_memory_mb
    await run_in_child(path, filename, max_memory_mb=max_memory_mb)


def fresh_child_peak_rss_mib(path: Path, filename: str) -> float:
    """Peak RSS (VmHWM) of a new analysis child after it has analysed `path` once.

    The child is forked from the forkserver that preloaded pandas and the engine, so its RSS
    starts with the pages it shares with that process, as every job's child does; VmHWM is
    read from the child itself, the process that ran the engine, while it waits idle.
    """
    return asyncio.run(_fresh_child_peak_rss_mib(path, filename))


async def _fresh_child_peak_rss_mib(path: Path, filename: str) -> float:
    await POOL.close()  # no idle child: the job below gets a child of its own
    await _analyse(path, filename)
    children = [pid for pid in descendant_pids(os.getpid()) if _forkserver_child(pid)]
    assert len(children) == 1, f"expected one idle analysis child, found {children}"
    return peak_rss_mib(children[0])


def _forkserver_child(pid: int) -> bool:
    parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    return b"forkserver" in Path(f"/proc/{parent}/cmdline").read_bytes()


def close_children() -> None:
    asyncio.run(POOL.close())


# --------------------------------------------------------------------------- figures

CSV_TARGET_PYARROW = 5.0  # the full report within 5 x a bare pyarrow read (issue 13)
CSV_TARGET_DUCKDB = 1.0  # ... and no slower than DuckDB's SUMMARIZE of the same file
XLSX_TARGET_FASTEXCEL = 1.5  # the full XLSX report within 1.5 x a bare fastexcel read


def csv_figures(report_id: str, path: Path, what: str, repeats: int) -> list[Figure]:
    """The CSV report in an analysis child against each CSV peer on the same file.

    `report_id` is the report against the pyarrow read; `/duckdb` and `/polars` are
    the same report time against those peers. The report row carries the child's peak RSS.
    """
    best = interleaved_best(
        {
            "pyarrow": lambda: pyarrow_read(path),
            "duckdb": lambda: duckdb_summarize(path),
            "polars": lambda: polars_describe(path),
            "report": lambda: report_in_child(path, path.name),
        },
        repeats,
    )
    rss = fresh_child_peak_rss_mib(path, path.name)
    report = best["report"]
    label = f"KPI report and charts of {what} in an analysis child, best of {repeats}"
    return _side_by_side(
        [
            Figure(
                id=report_id,
                what=label,
                value=report,
                unit="s",
                target=f"<= {CSV_TARGET_PYARROW:g}x baseline",
                met=report <= CSV_TARGET_PYARROW * best["pyarrow"],
                baseline=best["pyarrow"],
                baseline_what="pyarrow.csv.read_csv of the same file",
                peak_rss_mib=rss,
            ),
            Figure(
                id=f"{report_id}/duckdb",
                what=f"the same report against DuckDB SUMMARIZE of {what}",
                value=report,
                unit="s",
                target=f"<= {CSV_TARGET_DUCKDB:g}x baseline",
                met=report <= CSV_TARGET_DUCKDB * best["duckdb"],
                baseline=best["duckdb"],
                baseline_what="DuckDB SUMMARIZE of read_csv of the same file",
            ),
            Figure(
                id=f"{report_id}/polars",
                what=f"the same report against polars read_csv + describe of {what}",
                value=report,
                unit="s",
                target="report (no target)",
                baseline=best["polars"],
                baseline_what="polars read_csv + describe of the same file",
            ),
        ]
    )


def xlsx_figures(report_id: str, path: Path, what: str, repeats: int) -> list[Figure]:
    """The XLSX report in an analysis child against fastexcel and python-calamine."""
    best = interleaved_best(
        {
            "fastexcel": lambda: fastexcel_read(path),
            "calamine": lambda: calamine_read(path),
            "report": lambda: report_in_child(path, path.name),
        },
        repeats,
    )
    rss = fresh_child_peak_rss_mib(path, path.name)
    report = best["report"]
    return _side_by_side(
        [
            Figure(
                id=report_id,
                what=f"KPI report and charts of {what} in an analysis child, best of {repeats}",
                value=report,
                unit="s",
                target=f"<= {XLSX_TARGET_FASTEXCEL:g}x baseline",
                met=report <= XLSX_TARGET_FASTEXCEL * best["fastexcel"],
                baseline=best["fastexcel"],
                baseline_what="fastexcel read of the same file to Arrow",
                peak_rss_mib=rss,
            ),
            Figure(
                id=f"{report_id}/calamine",
                what=f"the same report against a python-calamine read of {what}",
                value=report,
                unit="s",
                target="report (no target)",
                baseline=best["calamine"],
                baseline_what="python-calamine read of the same file to Python rows",
            ),
        ]
    )


def _side_by_side(figures: list[Figure]) -> list[Figure]:
    for figure in figures:  # each ratio beside its goal, as the table shows them
        ratio = f" = {figure.ratio:.2f} x {figure.baseline_what}" if figure.ratio else ""
        sys.stderr.write(f"  {figure.id}: {figure.value:.3f} s{ratio}; goal {figure.target}\n")
    return figures
