"""LlmService: cached or grounded LLM insights behind a circuit breaker, else the fallback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

import grpc
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace

from datapilot_runtime import tracing
from datapilot_runtime.error_codes import ErrorCode
from datapilot_runtime.grpc_errors import abort
from llm_svc import metrics
from llm_svc.circuit_breaker import (
    Admission,
    BreakerConfig,
    CircuitBreaker,
    Clock,
    LocalBreaker,
    State,
)
from llm_svc.fallback import INSIGHTS_MAX, MAX_TRAILING_NOTES, InsightDraft, fallback_insights
from llm_svc.grounding import ground
from llm_svc.insight_cache import InsightCache, cache_key
from llm_svc.llm_client import PROMPT_VERSION, LlmClient, LlmFailure

_LOGGER = logging.getLogger(__name__)
DEFAULT_DEADLINE_SECONDS = 120.0
# Kept back from the caller's deadline to build and send the fallback answer in time.
DEADLINE_RESERVE_SECONDS = 0.05
FALLBACK_MODEL = "fallback"
_STATES = {
    State.CLOSED: llm_pb2.CIRCUIT_STATE_CLOSED,
    State.OPEN: llm_pb2.CIRCUIT_STATE_OPEN,
    State.HALF_OPEN: llm_pb2.CIRCUIT_STATE_HALF_OPEN,
}
# The breaker's state as a call finds it (a rejection is an open breaker, or a half-open one
# whose single probe is already in flight).
_BREAKER_STATE = {
    Admission.ALLOWED: State.CLOSED.value,
    Admission.PROBE: State.HALF_OPEN.value,
    Admission.REJECTED: State.OPEN.value,
}
_SOURCE_LABELS = {
    llm_pb2.INSIGHT_SOURCE_LLM: "llm",
    llm_pb2.INSIGHT_SOURCE_FALLBACK: "fallback",
    llm_pb2.INSIGHT_SOURCE_MIXED: "mixed",
}


@dataclass(frozen=True)
class LlmInsights:
    """What the LLM said that survived grounding, and how many of its insights were dropped."""

    kept: list[InsightDraft]
    dropped: int


def compose(
    llm: LlmInsights | None,
    fallback: list[InsightDraft],
    model: str,
    limit: int = INSIGHTS_MAX + MAX_TRAILING_NOTES,
) -> llm_pb2.GenerateInsightsResponse:
    """LLM insights first; fallback insights about other candidates replace the dropped ones.

    Without any kept LLM insight the answer is the whole fallback. Otherwise each LLM
    insight grounding dropped is replaced by the next fallback insight about a candidate no
    kept LLM insight phrases, none of whose evidence keys one uses (no fact twice), up to `limit`.
    """
    kept = llm.kept[:limit] if llm else []
    target = min(limit, len(kept) + llm.dropped) if kept and llm else len(fallback)
    covered = {key for draft in kept for key in draft.evidence}
    fill: list[InsightDraft] = []
    for draft in fallback:
        if len(kept) + len(fill) >= target:
            break
        if not covered.intersection(draft.evidence) and not _cites(covered, draft.key):
            fill.append(draft)
    if kept and fill:
        source = llm_pb2.INSIGHT_SOURCE_MIXED
    elif kept:
        source = llm_pb2.INSIGHT_SOURCE_LLM
    else:
        source = llm_pb2.INSIGHT_SOURCE_FALLBACK
    insights = [_to_proto(d, llm_pb2.INSIGHT_SOURCE_LLM) for d in kept] + [
        _to_proto(d, llm_pb2.INSIGHT_SOURCE_FALLBACK) for d in fill
    ]
    metrics.INSIGHTS.labels(source=_SOURCE_LABELS[source]).inc()
    return llm_pb2.GenerateInsightsResponse(
        insights=insights, source=source, model=model if kept else FALLBACK_MODEL
    )


def _cites(evidence: set[str], key: str) -> bool:
    """Whether evidence keys cite the candidate `key` (itself or one of its fields)."""
    if not key:
        return False
    prefix = f"candidates.{key}"
    return any(e == prefix or e.startswith(prefix + ".") for e in evidence)


def _to_proto(draft: InsightDraft, source: llm_pb2.InsightSource) -> llm_pb2.Insight:
    return llm_pb2.Insight(
        title=draft.title,
        text=draft.text,
        evidence=draft.evidence,
        severity=draft.severity,
        source=source,
        type=draft.type,
        key=draft.key,
        score=draft.score,
    )


class LlmServicer(llm_pb2_grpc.LlmServiceServicer):  # type: ignore[misc]
    """Cache, then breaker, then the LLM (with retries), then grounding; else the fallback."""

    def __init__(
        self,
        client: LlmClient | None,
        model: str,
        breaker: CircuitBreaker | None = None,
        cache: InsightCache | None = None,
        *,
        cache_prefix: str = "datapilot:llm",
        clock: Clock = time.monotonic,
        insights_max: int = INSIGHTS_MAX,
    ) -> None:
        self._insights_max = insights_max
        self._client = client
        self._model = model
        self._breaker: CircuitBreaker = breaker or LocalBreaker(BreakerConfig())
        self._cache = cache
        self._cache_prefix = cache_prefix
        self._clock = clock

    async def GenerateInsights(
        self, request: llm_pb2.GenerateInsightsRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.GenerateInsightsResponse:
        try:
            report = json.loads(request.kpi_report_json)
            if not isinstance(report, dict):
                raise ValueError("not an object")
        except ValueError:
            await abort(context, ErrorCode.INVALID_REPORT, "kpi_report_json is not a JSON object")
        fallback = fallback_insights(report, self._insights_max)
        if self._client is None:
            metrics.LLM_CALLS.labels(outcome="unconfigured").inc()
            return self._compose(None, fallback)
        # The LLM call, with the GenAI semantic conventions; the breaker's state, the attempts
        # (events) and whether the answer fell back are on it too.
        with tracing.tracer().start_as_current_span(
            f"chat {self._model}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": self._model,
            },
        ) as span:
            response = await self._llm_insights(report, fallback, context)
            span.set_attribute("datapilot.insights.source", _SOURCE_LABELS[response.source])
            span.set_attribute(
                "datapilot.llm.fallback", response.source == llm_pb2.INSIGHT_SOURCE_FALLBACK
            )
            return response

    async def _llm_insights(
        self,
        report: dict[str, object],
        fallback: list[InsightDraft],
        context: grpc.aio.ServicerContext,
    ) -> llm_pb2.GenerateInsightsResponse:
        span = trace.get_current_span()
        key = cache_key(self._cache_prefix, report, self._model, PROMPT_VERSION)
        if self._cache is not None:
            cached = await self._cache.get(key)
            if cached is not None:
                metrics.LLM_CALLS.labels(outcome="cached").inc()
                span.set_attribute("datapilot.llm.cached", True)
                kept, dropped = cached
                return self._compose(LlmInsights(kept, dropped), fallback)
        admission = await self._breaker.admit()
        span.set_attribute("datapilot.llm.breaker.state", _BREAKER_STATE[admission])
        span.set_attribute("datapilot.llm.admission", admission.value)
        if admission is Admission.REJECTED:
            metrics.LLM_CALLS.labels(outcome="rejected").inc()
            return self._compose(None, fallback)
        llm = await self._ask(report, admission, context)
        if llm is None:
            return self._compose(None, fallback)
        if llm.kept and self._cache is not None:
            await self._cache.put(key, llm.kept, llm.dropped)
        return self._compose(llm, fallback)

    def _compose(
        self, llm: LlmInsights | None, fallback: list[InsightDraft]
    ) -> llm_pb2.GenerateInsightsResponse:
        return compose(llm, fallback, self._model, self._insights_max + MAX_TRAILING_NOTES)

    async def _ask(
        self, report: dict[str, object], admission: Admission, context: grpc.aio.ServicerContext
    ) -> LlmInsights | None:
        assert self._client is not None
        remaining = context.time_remaining()
        budget = (
            DEFAULT_DEADLINE_SECONDS if remaining is None else remaining - DEADLINE_RESERVE_SECONDS
        )
        try:
            answer = await self._client.generate(
                report,
                self._clock() + budget,
                max_attempts=1 if admission is Admission.PROBE else None,
            )
        except LlmFailure as exc:
            span = trace.get_current_span()
            span.set_attribute("datapilot.llm.attempts", exc.attempts)
            span.set_attribute("error.type", exc.kind.value)
            if exc.counts:
                metrics.LLM_CALLS.labels(outcome="failure").inc()
                await self._breaker.record_failure(admission)
            else:
                metrics.LLM_CALLS.labels(outcome="skipped").inc()
                await self._breaker.release(admission)
            _LOGGER.warning(
                "LLM gave no usable answer after %d attempt(s) (%s); using fallback insights",
                exc.attempts,
                exc,
                extra={"llm_attempts": exc.attempts, "llm_failure": exc.kind.value},
            )
            return None
        except asyncio.CancelledError:
            _LOGGER.info("GenerateInsights cancelled; LLM request aborted")
            await self._breaker.release(admission)
            raise
        metrics.LLM_CALLS.labels(outcome="success").inc()
        trace.get_current_span().set_attributes(
            {
                "datapilot.llm.attempts": answer.attempts,
                "gen_ai.response.model": answer.usage.response_model or self._model,
                "gen_ai.usage.input_tokens": answer.usage.input_tokens,
                "gen_ai.usage.output_tokens": answer.usage.output_tokens,
            }
        )
        await self._breaker.record_success(admission)
        kept, dropped = ground(answer.drafts, report)
        for _draft, verdict in dropped:
            metrics.INSIGHTS_DROPPED.labels(reason=verdict.reason).inc()
        if dropped:
            _LOGGER.info(
                "dropped %d of %d LLM insights that grounding refused (%s)",
                len(dropped),
                len(answer.drafts),
                "; ".join(f"{v.reason}: {v.detail}" if v.detail else v.reason for _, v in dropped),
            )
        return LlmInsights(kept, len(dropped))

    async def GetCircuitState(
        self, request: llm_pb2.GetCircuitStateRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.GetCircuitStateResponse:
        snapshot = await self._breaker.snapshot()
        response = llm_pb2.GetCircuitStateResponse(
            state=_STATES[snapshot.state],
            failures_in_window=snapshot.failures_in_window,
            shared=snapshot.shared,
        )
        if snapshot.half_open_at is not None:
            stamp = Timestamp()
            stamp.FromNanoseconds(int(snapshot.half_open_at * 1e9))
            response.half_open_at.CopyFrom(stamp)
        return response
