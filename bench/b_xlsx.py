"""XLSX against its peers: the full report vs a bare fastexcel read, python-calamine, openpyxl."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl

from analysis_svc.engine.readers.dispatch import read_table
from bench.figures import BenchContext, Figure
from bench.peers import close_children, fastexcel_read, interleaved_best, xlsx_figures

ROWS = 150_000
REPEATS = 3
COLUMNS = (
    "order_id",
    "ordered_at",
    "ship_date",
    "region",
    "country",
    "product",
    "channel",
    "amount",
    "qty",
    "discount",
    "unit_price",
    "customer",
    "returned",
    "status",
    "rating",
    "score",
    "note",
    "weight",
    "segment",
)


def run(ctx: BenchContext) -> list[Figure]:
    """Write the workbook, then time the report and each peer on the same file."""
    path = ctx.work_dir / "orders.xlsx"
    write_workbook(path, ROWS)
    size_mb = path.stat().st_size / 1e6
    what = f"{size_mb:.1f} MB XLSX ({ROWS} rows x {len(COLUMNS)} mixed columns)"
    figures = xlsx_figures("xlsx.report", path, f"a {what} (generated)", REPEATS)
    close_children()
    best = interleaved_best(
        {"fastexcel": lambda: fastexcel_read(path), "read": lambda: read_table(path, path.name)},
        REPEATS,
    )
    openpyxl_s = interleaved_best({"openpyxl": lambda: _openpyxl_scan(path)}, 1, warm_up=False)[
        "openpyxl"
    ]
    return [
        *figures,
        Figure(
            id="xlsx.read",
            what=f"read_table of the {what} in process (header finding and typing included)",
            value=best["read"],
            unit="s",
            target="report (no target)",
            baseline=best["fastexcel"],
            baseline_what="fastexcel read of the same file to Arrow",
        ),
        Figure(
            id="xlsx.openpyxl_scan",
            what=f"openpyxl read-only scan of every cell of the {what} (the former reader)",
            value=openpyxl_s,
            unit="s",
            target="report (no target)",
            baseline=figures[0].value,
            baseline_what="the full report of the same file",
        ),
    ]


def _openpyxl_scan(path: Path) -> int:
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    cells = 0
    for row in workbook.worksheets[0].iter_rows(values_only=True):
        cells += len(row)
    workbook.close()
    return cells


def write_workbook(path: Path, rows: int, seed: int = 11) -> None:
    """About 100 bytes a row: ids, timestamps, dates, categories, measures, flags, blanks."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2022, 1, 1)
    days = rng.integers(0, 3 * 365, rows)
    seconds = rng.integers(0, 86_400, rows)
    columns: list[list[Any]] = [
        np.arange(100_000, 100_000 + rows).tolist(),
        [
            start + dt.timedelta(days=int(d), seconds=int(s))
            for d, s in zip(days, seconds, strict=False)
        ],
        [
            (start + dt.timedelta(days=int(d) + int(k))).date()
            for d, k in zip(days, days % 9, strict=False)
        ],
        rng.choice(["North", "South", "East", "West", "Central"], rows).tolist(),
        rng.choice([f"Country {i}" for i in range(30)], rows).tolist(),
        rng.choice([f"P{i:03d}" for i in range(200)], rows).tolist(),
        rng.choice(["web", "store", "phone"], rows).tolist(),
        rng.gamma(2.0, 50.0, rows).round(2).tolist(),
        rng.integers(1, 20, rows).tolist(),
        np.where(rng.random(rows) < 0.6, 0.0, rng.random(rows).round(2)).tolist(),
        rng.normal(30.0, 5.0, rows).round(2).tolist(),
        np.char.add("C", rng.integers(0, 150_000, rows).astype(str)).tolist(),
        (rng.random(rows) < 0.05).tolist(),
        rng.choice(["ok", "late", "lost"], rows, p=[0.9, 0.08, 0.02]).tolist(),
        [
            None if gap else float(v)
            for gap, v in zip(rng.random(rows) < 0.05, days % 5 + 1, strict=False)
        ],
        rng.normal(0.0, 1.0, rows).round(3).tolist(),
        [
            f"note {v}" if kept else None
            for kept, v in zip(rng.random(rows) < 0.02, days, strict=False)
        ],
        (rng.random(rows) * 10).round(1).tolist(),
        rng.choice(["A", "B", "C", "D"], rows).tolist(),
    ]
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Orders")
    sheet.append(list(COLUMNS))
    for row in zip(*columns, strict=True):
        sheet.append(list(row))
    workbook.save(path)
