"""Starts ingest_svc: `python -m ingest_svc`."""

from __future__ import annotations

import uvloop

from datapilot_runtime.gc_tuning import freeze_startup_heap
from datapilot_runtime.logs import configure_logging
from datapilot_runtime.memory import retain_freed_memory
from datapilot_runtime.tracing import configure_tracing
from ingest_svc.server import serve
from ingest_svc.settings import IngestSettings


def main() -> None:
    retain_freed_memory()  # before any buffer or thread: uploads reuse warm pages
    settings = IngestSettings()
    configure_logging("ingest_svc", settings.log_level)
    configure_tracing("ingest_svc")
    freeze_startup_heap()
    uvloop.run(serve(settings))  # every poll passes through here: the faster loop


if __name__ == "__main__":
    main()
