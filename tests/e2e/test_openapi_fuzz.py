"""Schemathesis against the live gateway (real services behind it): no 5xx, no schema breach.

Driven through Hypothesis directly (schemathesis' pytest plugin does not support pytest 9 yet).
"""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.openapi import from_url

from devstack.stack import Stack

# What the issue asks: no server error, and every response as the document says. (The
# positive-data heuristic is left out: a schema-valid PNG is rightly refused with 415.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
MAX_EXAMPLES = 40  # per operation; 9 operations: well over 300 generated cases
MIN_CASES = 300


def test_openapi_document_is_complete(fs_stack: Stack) -> None:
    document = httpx.get(f"{fs_stack.gateway_url}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "default" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")) or status == "default":
                    content = response["content"]["application/problem+json"]
                    assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
                    assert content["example"]["status"]


def test_api_conforms_to_its_schema(fs_stack: Stack) -> None:
    schema = from_url(f"{fs_stack.gateway_url}/openapi.json")
    calls: list[tuple[str, int]] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # Err raises here, as wanted

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case[Any]) -> None:
            response = case.call(timeout=30)
            calls.append((case.operation.label, response.status_code))
            assert response.status_code < 500, f"{case.operation.label}: {response.text}"
            case.validate_response(response, checks=CHECKS)

        check()
    assert len(calls) >= MIN_CASES, f"only {len(calls)} generated cases"
