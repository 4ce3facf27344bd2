"""RFC 9457 problem responses; gRPC errors mapped to HTTP by the error-code catalogue."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import grpc

from datapilot_runtime.context import RETRY_AFTER_METADATA_KEY, request_id_var
from datapilot_runtime.error_codes import CATALOGUE, GRPC_TO_HTTP, ErrorCode
from datapilot_runtime.grpc_errors import error_code_of, trailing_value
from gateway.json_response import FastJSONResponse as JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"

# Error codes whose HTTP status is more precise than their gRPC status's mapping.
STATUS_OF_ERROR_CODE = {
    code.value: info.http
    for code, info in CATALOGUE.items()
    if info.grpc is not None and info.http is not None and info.http != GRPC_TO_HTTP[info.grpc]
}
# Details of these codes may describe internals; clients get a generic text instead.
_OPAQUE = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
_UNAVAILABLE_TEXT = "A backend service is unavailable; try again shortly."
# Codes answered with Retry-After (a rate limit, a full queue) and refusals that are final.
_RETRY_AFTER = frozenset(code.value for code, info in CATALOGUE.items() if info.retry_after)
_NOT_RETRYABLE = frozenset({ErrorCode.RESOURCE_EXHAUSTED, ErrorCode.ANALYSIS_LIMIT_EXCEEDED})


class ProblemError(Exception):
    """Raised by routes to answer with a problem document."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def problem_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A problem+json response carrying the request id."""
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    if status == 499:
        title = "Client Closed Request"
    body: dict[str, Any] = {
        "type": f"urn:datapilot:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "requestId": request_id_var.get(),
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_from_rpc_error(error: grpc.aio.AioRpcError) -> JSONResponse:
    """Map a failed gRPC call to a problem response without leaking internals."""
    code = error.code()
    error_code = error_code_of(error) or code.name.lower()
    status = STATUS_OF_ERROR_CODE.get(error_code) or GRPC_TO_HTTP.get(code.name, 500)
    details = error.details() or ""
    if error_code in _RETRY_AFTER:
        retry_after = trailing_value(error, RETRY_AFTER_METADATA_KEY) or "1"
        return problem_response(status, error_code, details, headers={"Retry-After": retry_after})
    if error_code in _NOT_RETRYABLE:  # a bound of this input: retrying would fail again
        return problem_response(status, error_code, details)
    if error_code == ErrorCode.BLOB_UPLOAD_FAILED:
        return problem_response(503, error_code, "The file could not be stored; retry later.")
    if code in _OPAQUE:
        detail = "An internal error occurred."
    elif code is grpc.StatusCode.UNAVAILABLE:
        detail = _UNAVAILABLE_TEXT
    elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
        detail = "The request did not finish before its deadline."
    elif code is grpc.StatusCode.CANCELLED:
        detail = "The call was cancelled."
    else:
        detail = details or HTTPStatus(status).phrase
    return problem_response(status, error_code, detail)
