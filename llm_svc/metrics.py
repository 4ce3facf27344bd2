"""Prometheus metrics of llm_svc: calls, attempts, breaker transitions, insight sources, cache."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LLM_CALLS = Counter(
    "datapilot_llm_calls_total",
    "GenerateInsights LLM calls by outcome (success, failure, rejected, cached, skipped).",
    ["outcome"],
)
LLM_ATTEMPTS = Counter(
    "datapilot_llm_attempts_total",
    "HTTP attempts to the LLM endpoint by result class.",
    ["result"],
)
CIRCUIT_TRANSITIONS = Counter(
    "datapilot_llm_circuit_transitions_total",
    "Circuit breaker transitions made by this replica, by new state.",
    ["to"],
)
CIRCUIT_STATE = Gauge(
    "datapilot_llm_circuit_state",
    "Last state this replica saw: 0 closed, 1 open, 2 half-open.",
)
INSIGHTS = Counter("datapilot_llm_insights_total", "Insights answered, by source.", ["source"])
INSIGHTS_DROPPED = Counter(
    "datapilot_llm_insights_dropped_total",
    "LLM insights dropped by grounding, by reason.",
    ["reason"],
)
CACHE = Counter("datapilot_llm_cache_total", "Insight cache look-ups by result.", ["result"])
LLM_LATENCY = Histogram(
    "datapilot_llm_request_seconds",
    "Duration of HTTP requests to the LLM endpoint that got an answer.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
LLM_TOKENS = Counter(
    "datapilot_llm_tokens_total", "Tokens the LLM provider reports, by kind.", ["kind"]
)
