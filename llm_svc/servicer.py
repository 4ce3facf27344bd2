"""LlmService: insights from the LLM when configured and answering, else from the fallback."""

from __future__ import annotations

import json
import logging
import time

import grpc
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc

from llm_svc.fallback import InsightDraft, fallback_insights
from llm_svc.llm_client import LlmClient, LlmFailure

_LOGGER = logging.getLogger(__name__)
DEFAULT_DEADLINE_SECONDS = 120.0


def _to_proto(drafts: list[InsightDraft], source: llm_pb2.InsightSource) -> list[llm_pb2.Insight]:
    return [
        llm_pb2.Insight(
            title=d.title, text=d.text, evidence=d.evidence, severity=d.severity, source=source
        )
        for d in drafts
    ]


class LlmServicer(llm_pb2_grpc.LlmServiceServicer):  # type: ignore[misc]
    """Answers from the LLM when a key is set; any failure falls back to templates."""

    def __init__(self, client: LlmClient | None, model: str) -> None:
        self._client = client
        self._model = model

    async def GenerateInsights(
        self, request: llm_pb2.GenerateInsightsRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.GenerateInsightsResponse:
        try:
            report = json.loads(request.kpi_report_json)
            if not isinstance(report, dict):
                raise ValueError("not an object")
        except ValueError:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "kpi_report_json is not a JSON object"
            )
        if self._client is not None:
            remaining = context.time_remaining()
            budget = DEFAULT_DEADLINE_SECONDS if remaining is None else remaining - 0.05
            try:
                drafts = await self._client.generate(report, time.monotonic() + budget)
            except LlmFailure as exc:
                _LOGGER.warning("LLM failed, using fallback insights: %s", exc)
            else:
                source = llm_pb2.INSIGHT_SOURCE_LLM
                return llm_pb2.GenerateInsightsResponse(
                    insights=_to_proto(drafts, source), source=source, model=self._model
                )
        source = llm_pb2.INSIGHT_SOURCE_FALLBACK
        return llm_pb2.GenerateInsightsResponse(
            insights=_to_proto(fallback_insights(report), source), source=source, model="fallback"
        )
