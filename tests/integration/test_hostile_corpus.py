"""The hostile corpus in the real sandbox: each file ends as its kind allows, then a normal job.

Each runs under a CPU bound well below the test's timeout: a reader that backtracks or loops over
a declared range ends `analysis_limit_exceeded`, which no file here allows, so the test fails by
outcome. A report's strings stay bounded (labels are cut) and the report stays small.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from analysis_svc.sandbox.pool import AnalysisRefused, run_in_child
from tests.corpus.hostile import COMPLETED, HostileFile, hostile_files

SALES = Path(__file__).resolve().parents[1] / "data" / "sales.csv"
CPU_SECONDS = 20.0
MAX_REPORT_BYTES = 2 * 1024 * 1024
FILES = hostile_files()


def _longest_string(document: Any) -> int:
    if isinstance(document, dict):
        return max([0, *(max(len(k), _longest_string(v)) for k, v in document.items())])
    if isinstance(document, list):
        return max([0, *(_longest_string(item) for item in document)])
    return len(document) if isinstance(document, str) else 0


@pytest.mark.parametrize("hostile", FILES, ids=[item.name for item in FILES])
async def test_hostile_file_ends_as_allowed_and_a_normal_job_follows(
    hostile: HostileFile, tmp_path: Path
) -> None:
    path = tmp_path / hostile.filename
    path.write_bytes(hostile.content)
    try:
        output = await run_in_child(
            path, hostile.filename, max_memory_mb=1024, max_cpu_seconds=CPU_SECONDS
        )
    except AnalysisRefused as exc:
        outcome = f"failed:{exc.code.value}"
        assert outcome in hostile.allowed, f"{outcome}: {exc}"
        assert re.search(hostile.message, str(exc)), str(exc)
    else:
        assert COMPLETED in hostile.allowed, "completed, which this file does not allow"
        assert len(json.dumps(output.report)) < MAX_REPORT_BYTES
        assert _longest_string(output.report) <= 300
        assert _longest_string(output.charts) <= 300
    normal = await run_in_child(SALES, "sales.csv", max_memory_mb=1024)
    assert normal.report["dataset"]["rows"] == 120
