"""End-to-end tests through the REST gateway of a real stack."""
