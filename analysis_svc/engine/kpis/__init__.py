"""KPI modules: per-column facts, time series, correlations and data-quality alerts."""
