"""Starts llm_svc: `python -m llm_svc`."""

from __future__ import annotations

import asyncio

from datapilot_runtime.logs import configure_logging
from llm_svc.server import serve
from llm_svc.settings import LlmSettings


def main() -> None:
    settings = LlmSettings()
    configure_logging("llm_svc", settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
