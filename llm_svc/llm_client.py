"""OpenAI-compatible chat-completions client that asks for structured insights."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import httpx

from datapilot_runtime.backoff import retry_async
from llm_svc.fallback import InsightDraft
from llm_svc.settings import LlmSettings

_LOGGER = logging.getLogger(__name__)
PROMPT_VERSION = "1"
_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE_RE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)
_SYSTEM_PROMPT = (
    "You are a careful business data analyst. You receive a JSON KPI report computed from a "
    "dataset (aggregates only). Write 3 to 6 short business insights. Use only numbers that "
    "appear in the report. Answer with JSON only, no prose, in this shape: "
    '{"insights": [{"title": str, "text": str, "evidence": [KPI keys such as '
    '"dataset.rows" or "columns.<name>.numeric.sum"], "severity": "info" | "warning" | '
    '"critical"}]}'
)


class LlmFailure(Exception):
    """The LLM gave no usable answer."""


class RetryableLlmFailure(LlmFailure):
    """A failure worth another attempt (5xx, 429, network, timeout)."""


def parse_insights(content: str) -> list[InsightDraft]:
    """The answer's insights; reasoning (`<think>`) and code fences are dropped."""
    answer = _FENCE_RE.sub("", _THINK_RE.sub("", content).strip()).strip()
    if not answer:
        raise LlmFailure("empty answer")
    try:
        document = json.loads(answer)
    except json.JSONDecodeError as exc:
        raise LlmFailure("answer is not JSON") from exc
    items = document.get("insights") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise LlmFailure("answer has no insights list")
    drafts = []
    for item in items:
        if not isinstance(item, dict):
            continue
        title, text = item.get("title"), item.get("text")
        if not isinstance(title, str) or not isinstance(text, str) or not text.strip():
            continue
        evidence = [str(e) for e in item.get("evidence", []) if isinstance(e, str | int)]
        severity = (
            item.get("severity")
            if item.get("severity") in ("info", "warning", "critical")
            else "info"
        )
        drafts.append(InsightDraft(title.strip(), text.strip(), evidence, str(severity)))
    if not drafts:
        raise LlmFailure("no well-formed insight in the answer")
    return drafts


class LlmClient:
    """One pooled httpx client for the process."""

    def __init__(self, settings: LlmSettings, transport: httpx.AsyncBaseTransport | None = None):
        self._settings = settings
        headers = {"Authorization": f"Bearer {settings.openrouter_api_key.get_secret_value()}"}
        if settings.llm_http_referer:
            headers["HTTP-Referer"] = settings.llm_http_referer
        if settings.llm_x_title:
            headers["X-Title"] = settings.llm_x_title
        self._http = httpx.AsyncClient(
            base_url=settings.llm_base_url.rstrip("/") + "/",
            headers=headers,
            timeout=settings.llm_request_timeout_seconds,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _attempt(self, report: dict[str, Any], deadline: float) -> list[InsightDraft]:
        timeout = min(self._settings.llm_request_timeout_seconds, deadline - time.monotonic())
        if timeout <= 0:
            raise LlmFailure("no time left before the deadline")
        body = {
            "model": self._settings.llm_model,
            "messages": [
                {"role": "system", "content": _SYSTEM_PROMPT},
                {"role": "user", "content": json.dumps(report, separators=(",", ":"))},
            ],
            "temperature": 0.2,
        }
        try:
            response = await self._http.post("chat/completions", json=body, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise RetryableLlmFailure("timeout") from exc
        except httpx.TransportError as exc:
            raise RetryableLlmFailure(f"network error {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryableLlmFailure(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise LlmFailure(f"HTTP {response.status_code}")
        try:
            payload = response.json()
            if "error" in payload:
                raise LlmFailure("provider returned an error object")
            content = payload["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LlmFailure("malformed completion body") from exc
        return parse_insights(str(content))

    async def generate(self, report: dict[str, Any], deadline: float) -> list[InsightDraft]:
        """Insights from the LLM, retried on transient failures; raises LlmFailure."""
        return await retry_async(
            lambda: self._attempt(report, deadline),
            self._settings.llm_backoff(),
            (RetryableLlmFailure,),
            name="llm chat/completions",
            deadline=deadline,
        )
