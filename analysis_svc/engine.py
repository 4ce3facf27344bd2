"""The KPI engine entry point: a file on disk in, a KPI report out (CPU-bound, blocking)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis_svc.kpis import compute_report
from analysis_svc.table_reader import read_table


def analyze_file(path: Path, filename_hint: str = "") -> dict[str, Any]:
    """Parse the file and compute its KPI report; raises table_reader.InvalidInput."""
    return compute_report(read_table(path, filename_hint))
