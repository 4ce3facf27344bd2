"""Runs every benchmark module `bench/b*.py` (or those named) and writes JSON and Markdown."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.figures import BenchContext, Figure
from datapilot_runtime.logs import configure_logging

_LOGGER = logging.getLogger("bench")
BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR.parent / "bench-results"
BENCHMARKS_MD = BENCH_DIR.parent / "BENCHMARKS.md"
_INTRO = """# Benchmarks

Written by `make bench` (`python -m bench`); every figure is measured in one run on the machine
named below, with its baseline measured in the same run. None of this is a pass/fail test:
the machines are shared and noisy, so read the ratios, not the third digit. `met` compares a
figure with the target the issue set; **no** marks a target missed. The last column is the
peak RSS (VmHWM) of the analysis child that computed a report: a fresh child forked from the
warmed forkserver, read after it has analysed the file once.

"""


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _markdown(figures: list[Figure]) -> str:
    lines = [
        f"Machine: {_machine()}; run {datetime.now(UTC).isoformat(timespec='seconds')}",
        "",
        "| id | what | value | baseline | ratio | target | met | analysis child peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        baseline = f"{f.baseline:.4g} {f.unit} ({f.baseline_what})" if f.baseline else "—"
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "—"
        met = {True: "yes", False: "**no**", None: "—"}[f.met]
        rss = f"{f.peak_rss_mib:.0f} MiB" if f.peak_rss_mib is not None else "—"
        lines.append(
            f"| {f.id} | {f.what} | {f.value:.4g} {f.unit} | {baseline} | {ratio} | {f.target} "
            f"| {met} | {rss} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("only", nargs="*", help="module names, e.g. b_jobs")
    args = parser.parse_args()
    configure_logging("bench", os.environ.get("LOG_LEVEL", "WARNING"))
    names = args.only or sorted(p.stem for p in BENCH_DIR.glob("b_*.py"))
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="dp-bench-") as tmp:
        for name in names:
            module = importlib.import_module(f"bench.{name}")
            _LOGGER.warning("running %s", name)
            work = Path(tmp) / name
            work.mkdir()
            produced: list[Figure] = module.run(BenchContext(work))
            for figure in produced:
                sys.stderr.write(
                    f"{figure.id}: {figure.what}: {figure.value:.4g} {figure.unit}"
                    + (f" (ratio {figure.ratio:.2f})" if figure.ratio is not None else "")
                    + f" target {figure.target}\n"
                )
            figures += produced
    OUT_DIR.mkdir(exist_ok=True)
    document = {"machine": _machine(), "figures": [f.as_dict() for f in figures]}
    (OUT_DIR / "results.json").write_text(json.dumps(document, indent=2))
    (OUT_DIR / "results.md").write_text(_markdown(figures))
    if not args.only:  # only a complete run replaces the published table
        BENCHMARKS_MD.write_text(_INTRO + _markdown(figures))
    sys.stderr.write(_markdown(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
