"""Compute the deterministic, JSON-ready KPI report (schema in docs/kpi-report.md) for a Table."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis_svc.engine import SCHEMA_VERSION
from analysis_svc.engine.column_profile import ColumnProfile, profile_column
from analysis_svc.engine.kpis.columns import column_report, percent
from analysis_svc.engine.kpis.correlations import correlations
from analysis_svc.engine.kpis.quality import alerts
from analysis_svc.engine.kpis.timeseries import time_series
from analysis_svc.engine.readers.common import Table

_LOGGER = logging.getLogger(__name__)

_KEY_LIMIT = 2**62
TYPES = ("numeric", "id", "datetime", "boolean", "categorical", "text", "constant", "empty")


def compute_report(table: Table, *, roles: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the KPI report for ``table`` (same table -> identical dict, keys in fixed order).

    `roles`: the uploader's role overrides. TODO(h4-engine): the engine branch applies them
    (kpis.roles with `overridden: true`); until it lands they are accepted and not used.
    """
    del roles
    frame = table.frame
    rows = int(frame.shape[0])
    profiles = [
        profile_column(str(frame.columns[index]), frame.iloc[:, index])
        for index in range(int(frame.shape[1]))
    ]
    columns = [column_report(profile, rows) for profile in profiles]
    dataset = _dataset_report(table, profiles, columns)
    _LOGGER.debug("profiled %d columns", len(columns))
    return {
        "schemaVersion": SCHEMA_VERSION,
        "dataset": dataset,
        "columns": columns,
        "timeSeries": time_series(profiles),
        "correlations": correlations(profiles),
        "alerts": alerts(dataset, columns),
    }


def _dataset_report(
    table: Table, profiles: list[ColumnProfile], columns: list[dict[str, Any]]
) -> dict[str, Any]:
    frame = table.frame
    rows, width = int(frame.shape[0]), int(frame.shape[1])
    missing_cells = sum(int(column["missing"]) for column in columns)
    duplicates = duplicate_rows(profiles, rows)
    kinds = [str(column["type"]) for column in columns]
    return {
        "format": str(table.source_format),
        "rows": rows,
        "columns": width,
        "missingCells": missing_cells,
        "missingCellsPct": percent(missing_cells, rows * width),
        "duplicateRows": duplicates,
        "duplicateRowsPct": percent(duplicates, rows),
        "memoryBytes": int(frame.memory_usage(index=False, deep=True).sum()),
        "skippedRows": int(table.skipped_rows),
        "headerRow": bool(table.header),
        "columnTypes": {kind: kinds.count(kind) for kind in TYPES},
    }


def duplicate_rows(profiles: list[ColumnProfile], rows: int) -> int:
    """Rows equal (missing = missing) to an earlier row, computed exactly from column codes.

    Columns with known codes are combined first into one int64 key per row (re-factorised
    when the key space would overflow); only rows whose partial key repeats are candidates,
    and the remaining columns are then coded on those candidate rows only.
    """
    if rows == 0 or not profiles:
        return 0
    ordered = sorted(profiles, key=lambda p: p.known_codes is None)
    candidates = np.arange(rows)
    key = np.zeros(rows, dtype=np.int64)
    size = 1
    for number, profile in enumerate(ordered):
        codes = profile.codes_at(candidates) if profile.known_codes is None else None
        if codes is None:
            codes = profile.codes[candidates]
        cardinality = int(codes.max(initial=-1)) + 2
        if size * cardinality >= _KEY_LIMIT:
            key, uniques = pd.factorize(key)
            key = key.astype(np.int64)
            size = len(uniques)
        key = key * cardinality + (codes + 1)
        size *= cardinality
        last_known = number + 1 == len(ordered) or ordered[number + 1].known_codes is None
        if last_known and number + 1 < len(ordered):
            repeated = pd.Series(key).duplicated(keep=False).to_numpy()
            candidates, key = candidates[repeated], key[repeated]
            if candidates.shape[0] == 0:
                return 0
    return int(pd.Series(key).duplicated().sum())
