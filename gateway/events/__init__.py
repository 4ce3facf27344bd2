"""Live job events at the edge: Server-Sent Events over ingest's WatchJob stream."""
