"""Shared runtime of the DataPilot services: settings, logging, retry, gRPC bootstrap, stores."""
