"""Integration tests against real Redis and a real S3 endpoint."""
