"""gateway: the REST edge of DataPilot, translating HTTP calls into gRPC calls."""
