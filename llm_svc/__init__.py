"""llm_svc: business insights from KPI reports, by the LLM or a deterministic fallback."""
