"""Analysis service: reads uploaded tables and computes KPI reports."""
