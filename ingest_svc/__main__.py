"""Starts ingest_svc: `python -m ingest_svc`."""

from __future__ import annotations

import asyncio

from datapilot_runtime.logs import configure_logging
from ingest_svc.server import serve
from ingest_svc.settings import IngestSettings


def main() -> None:
    settings = IngestSettings()
    configure_logging("ingest_svc", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
