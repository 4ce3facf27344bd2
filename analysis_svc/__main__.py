"""Starts analysis_svc: `python -m analysis_svc serve` (Analyze RPC) or `... worker` (jobs)."""

from __future__ import annotations

import argparse
import asyncio

from analysis_svc.jobs.worker import run_worker
from analysis_svc.rpc.server import serve
from analysis_svc.settings import AnalysisSettings, WorkerSettings
from datapilot_runtime.logs import configure_logging
from datapilot_runtime.tracing import configure_tracing


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m analysis_svc")
    parser.add_argument("role", choices=("serve", "worker"), nargs="?", default="serve")
    role = parser.parse_args().role
    if role == "worker":
        worker_settings = WorkerSettings()
        configure_logging("analysis_worker", worker_settings.log_level)
        configure_tracing("analysis_worker")
        asyncio.run(run_worker(worker_settings))
    else:
        settings = AnalysisSettings()
        configure_logging("analysis_svc", settings.log_level)
        configure_tracing("analysis_svc")
        asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
