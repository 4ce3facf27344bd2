"""KPI engine benchmarks: a generated 20 MB CSV against its peers, a 20 MB XLSX, peak RSS."""

from __future__ import annotations

import gc
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import openpyxl
import pandas as pd

from bench.figures import BenchContext, Figure
from bench.peers import close_children, csv_figures, fresh_child_peak_rss_mib, report_in_child

CSV_ROWS = 200_000
XLSX_ROWS = 420_000
REPEATS = 5
TARGET_RSS_MB = 400.0


def run(ctx: BenchContext) -> list[Figure]:
    """Generate the files, then measure report time (CSV, XLSX) and the child's peak RSS.

    The report is what a job computes, charts included, in an analysis child forked from the
    worker's warmed forkserver (`analysis_svc.sandbox`), with the worker's memory limit.
    """
    csv_path = ctx.work_dir / "sales_20mb.csv"
    xlsx_path = ctx.work_dir / "sales_20mb.xlsx"
    sales_frame(CSV_ROWS, seed=7).to_csv(csv_path, index=False)
    csv_mb = csv_path.stat().st_size / 1e6
    gc.collect()
    # The CSV figures first, while this process is small (a large heap slows the GC).
    what = f"a {csv_mb:.1f} MB CSV ({CSV_ROWS} rows x 20 columns, generated)"
    figures = csv_figures("kpi.csv_report", csv_path, what, REPEATS)
    rss_mb = figures[0].peak_rss_mib
    assert rss_mb is not None
    write_xlsx(sales_frame(XLSX_ROWS, seed=8), xlsx_path)
    gc.collect()
    xlsx_mb = xlsx_path.stat().st_size / 1e6
    xlsx_baseline = _best(lambda: _openpyxl_scan(xlsx_path), repeats=1)
    xlsx_time = _best(lambda: report_in_child(xlsx_path, "sales.xlsx"), repeats=1)
    xlsx_rss = fresh_child_peak_rss_mib(xlsx_path, "sales.xlsx")
    close_children()
    return [
        *figures,
        Figure(
            id="kpi.xlsx_report",
            what=f"KPI report and charts of a {xlsx_mb:.1f} MB XLSX ({XLSX_ROWS} rows x 20 "
            "columns) in an analysis child",
            value=xlsx_time,
            unit="s",
            target="report (no target)",
            met=None,
            baseline=xlsx_baseline,
            baseline_what="openpyxl read-only scan of every cell of the same file",
            peak_rss_mib=xlsx_rss,
        ),
        Figure(
            id="kpi.csv_peak_rss",
            what=f"peak RSS of a fresh analysis child (forked from the warmed forkserver) "
            f"computing the report and charts of the {csv_mb:.1f} MB CSV",
            value=rss_mb,
            unit="MB",
            target=f"<= {TARGET_RSS_MB:g} MB",
            met=rss_mb <= TARGET_RSS_MB,
        ),
    ]


def _best(action: Callable[[], object], repeats: int = REPEATS) -> float:
    """Best wall time of ``repeats`` runs (after one warm-up run when repeating)."""
    if repeats > 1:
        action()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def _openpyxl_scan(path: Path) -> int:
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    cells = 0
    for row in workbook.worksheets[0].iter_rows(values_only=True):
        cells += len(row)
    workbook.close()
    return cells


# --------------------------------------------------------------------------- data


def sales_frame(rows: int, seed: int) -> pd.DataFrame:
    """≈100 bytes a row of CSV: ids, two dates, categories, measures, flags, sparse values."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 3 * 365, rows)
    order = pd.Timestamp("2022-01-01") + pd.to_timedelta(days, unit="D")
    ship = order + pd.to_timedelta(rng.integers(1, 9, rows), unit="D")
    frame = pd.DataFrame(
        {
            "order_id": np.arange(100_000, 100_000 + rows),
            "order_date": order.strftime("%Y-%m-%d"),
            "region": rng.choice(["North", "South", "East", "West", "Central"], rows),
            "country": rng.choice([f"K{i}" for i in range(30)], rows),
            "product": rng.choice([f"P{i:03d}" for i in range(200)], rows),
            "channel": rng.choice(["web", "store", "phone"], rows),
            "amount": rng.gamma(2.0, 50.0, rows).round(2),
            "qty": rng.integers(1, 20, rows),
            "discount": np.where(rng.random(rows) < 0.6, 0.0, rng.random(rows).round(2)),
            "unit_price": rng.normal(30.0, 5.0, rows).round(2),
            "cost": rng.normal(20.0, 4.0, rows).round(1),
            "customer": np.char.add("C", rng.integers(0, 150_000, rows).astype(str)),
            "returned": rng.choice(["yes", "no"], rows, p=[0.05, 0.95]),
            "status": rng.choice(["ok", "late", "lost"], rows, p=[0.9, 0.08, 0.02]),
            "rating": rng.integers(1, 6, rows).astype(float),
            "score": rng.normal(0.0, 1.0, rows).round(2),
            "tax": rng.gamma(2.0, 5.0, rows).round(1),
            "ship_date": ship.strftime("%Y-%m-%d"),
            "segment": rng.choice(["A", "B", "C", "D"], rows),
            "weight": (rng.random(rows) * 10).round(1),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "rating"] = np.nan
    return frame


def write_xlsx(frame: pd.DataFrame, path: Path) -> None:
    """A minimal, valid XLSX (shared strings, numbers) written directly, fast and streaming."""
    strings: dict[str, int] = {}
    columns = list(frame.columns)
    letters = [openpyxl.utils.get_column_letter(i + 1) for i in range(len(columns))]
    text_columns = {name for name in columns if frame[name].dtype.kind not in "fi"}
    for name in text_columns:
        for value in pd.unique(frame[name].astype(str)):
            strings.setdefault(str(value), len(strings))
    for name in columns:
        strings.setdefault(str(name), len(strings))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        shared = "".join(f"<si><t>{escape(text)}</t></si>" for text in strings)
        archive.writestr(
            "xl/sharedStrings.xml",
            f'{_HEAD}<sst xmlns="{_NS}" count="{len(strings)}" '
            f'uniqueCount="{len(strings)}">{shared}</sst>',
        )
        cells_by_column = []
        for letter, name in zip(letters, columns, strict=True):
            series = frame[name]
            if name in text_columns:
                codes = series.astype(str).map(strings).astype(str)
                cells = '<c t="s"><v>' + codes + "</v></c>"
            else:
                text = series.astype(str)
                cells = ("<c><v>" + text + "</v></c>").where(series.notna(), "<c/>")
            del letter
            cells_by_column.append(cells.to_numpy(dtype=object))
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(f'{_HEAD}<worksheet xmlns="{_NS}"><sheetData>'.encode())
            header = "".join(f'<c t="s"><v>{strings[str(name)]}</v></c>' for name in columns)
            sheet.write(f"<row>{header}</row>".encode())
            block = 10_000
            for start in range(0, len(frame), block):
                stop = min(start + block, len(frame))
                body = "".join(
                    "<row>" + "".join(column[i] for column in cells_by_column) + "</row>"
                    for i in range(start, stop)
                )
                sheet.write(body.encode())
            sheet.write(b"</sheetData></worksheet>")


_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_ML = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
_CONTENT_TYPES = (
    _HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_ML}.sheet.main+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_ML}.worksheet+xml"/>'
    f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_ML}.sharedStrings+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    f'{_HEAD}<Relationships xmlns="{_PKG_RELS}">'
    f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK = (
    f'{_HEAD}<workbook xmlns="{_NS}" xmlns:r="{_REL_NS}">'
    '<sheets><sheet name="Sales" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    f'{_HEAD}<Relationships xmlns="{_PKG_RELS}">'
    f'<Relationship Id="rId1" Type="{_REL_NS}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_REL_NS}/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)
