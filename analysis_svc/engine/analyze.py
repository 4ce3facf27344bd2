"""The KPI engine entry point: a file on disk in, a KPI report and charts out (CPU-bound)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from analysis_svc.engine.charts import build_charts
from analysis_svc.engine.kpis.report import compute_report, profile_table
from analysis_svc.engine.readers.dispatch import read_table
from analysis_svc.engine.semantics.long_format import widen


def analyze(
    path: Path,
    filename_hint: str = "",
    on_phase: Callable[[str], None] | None = None,
    roles: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Parse the file, compute its KPI report and charts; raises readers.common.InvalidInput.

    `roles` are the uploader's overrides (column name -> role of OVERRIDE_ROLES).
    """
    notify = on_phase or (lambda _phase: None)
    notify("parse")
    table = widen(read_table(path, filename_hint))
    notify("profile")
    profiles = profile_table(table)
    report = compute_report(table, roles=roles, profiles=profiles)
    notify("charts")
    # The charts take the numbers the report's profiles hold: no column is profiled twice.
    return report, build_charts(table, report, {p.name: p.numbers for p in profiles})


def analyze_file(
    path: Path, filename_hint: str = "", roles: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The KPI report alone."""
    return compute_report(widen(read_table(path, filename_hint)), roles=roles)
