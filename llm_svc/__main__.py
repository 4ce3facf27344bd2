"""Starts llm_svc: `python -m llm_svc`."""

from __future__ import annotations

import asyncio
import logging
import sys

from datapilot_runtime.logs import configure_logging
from datapilot_runtime.tracing import configure_tracing
from llm_svc.server import StartupError, serve
from llm_svc.settings import LlmSettings

_LOGGER = logging.getLogger("llm_svc")


def main() -> None:
    settings = LlmSettings()
    configure_logging("llm_svc", settings.log_level)
    configure_tracing("llm_svc")
    try:
        asyncio.run(serve(settings))
    except StartupError as exc:
        _LOGGER.error("llm_svc cannot start: %s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
