"""DataPilot tests: unit, integration (real Redis/S3) and end to end (real processes)."""
