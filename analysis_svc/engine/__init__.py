"""The pure KPI engine: readers, column profiling, KPI modules, charts (no grpc, redis, services).

Importing this package is cheap: it holds constants only; pandas loads with its submodules.
"""

SCHEMA_VERSION = "3.0"
