"""The typed KPI report shared by the engine, the fallback and grounding (no pandas)."""
