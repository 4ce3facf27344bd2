"""Imported once by the analysis forkserver: loads the engine and runs it once on a tiny table.

Every analysis child is forked from that warmed process, so the lazy imports and first-call
costs of pandas, pyarrow and the engine are paid once, not per job.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from analysis_svc.engine import analyze as engine

_SAMPLE = "date,region,units,revenue\n" + "".join(
    f"2025-{m:02d}-{d:02d},{('North', 'South', 'East')[d % 3]},{d},{d * 2.5}\n"
    for m in range(1, 13)
    for d in (1, 9, 17, 25)
)


def _warm() -> None:
    with tempfile.TemporaryDirectory(prefix="dp-warm-") as folder:
        sample = Path(folder) / "warm.csv"
        sample.write_text(_SAMPLE)
        with contextlib.suppress(Exception):  # warming is best effort, never fatal
            engine.analyze(sample, "warm.csv")


_warm()
