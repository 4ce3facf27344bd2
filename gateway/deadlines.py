"""Per-request deadlines: a route default, shortened by `Grpc-Timeout` or `Request-Timeout`."""

from __future__ import annotations

import re

from starlette.requests import Request

from gateway.problems import ProblemError

_GRPC_TIMEOUT_RE = re.compile(r"^(\d{1,8})([HMSmun])$")
_UNIT_SECONDS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_grpc_timeout(value: str) -> float:
    """gRPC's TimeoutValue ("100m", "2S", ...) in seconds."""
    match = _GRPC_TIMEOUT_RE.match(value.strip())
    if not match:
        raise ProblemError(
            400, "invalid_timeout", "Grpc-Timeout is digits and a unit (H M S m u n)."
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_request_timeout(value: str) -> float:
    """`Request-Timeout` in seconds (a positive number)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e6:
        raise ProblemError(
            400, "invalid_timeout", "Request-Timeout is a positive number of seconds."
        )
    return seconds


def timeout_of(grpc_timeout: str | None, request_timeout: str | None, default: float) -> float:
    """The route's default, shortened by the `Grpc-Timeout` / `Request-Timeout` header values."""
    timeout = default
    if grpc_timeout:
        timeout = min(timeout, parse_grpc_timeout(grpc_timeout))
    if request_timeout:
        timeout = min(timeout, parse_request_timeout(request_timeout))
    return timeout


def deadline(request: Request, default: float) -> float:
    """The gRPC timeout of this request's upstream calls: never longer than the route's default."""
    headers = request.headers
    return timeout_of(headers.get("grpc-timeout"), headers.get("request-timeout"), default)
