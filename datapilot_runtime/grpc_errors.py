"""Stable error codes on gRPC errors: services attach them, the gateway reads them."""

from __future__ import annotations

from typing import NoReturn

import grpc

from datapilot_runtime.error_codes import CATALOGUE, ErrorCode

ERROR_CODE_METADATA_KEY = "dp-error-code"


def grpc_status(code: ErrorCode) -> grpc.StatusCode:
    """The gRPC status a service aborts with under `code` (ValueError for a job-only code)."""
    name = CATALOGUE[code].grpc
    if name is None:
        raise ValueError(f"{code.value} is not a gRPC error code")
    return grpc.StatusCode[name]


async def abort(
    context: grpc.aio.ServicerContext,
    error_code: ErrorCode,
    message: str,
    *,
    status: grpc.StatusCode | None = None,
    trailing: tuple[tuple[str, str], ...] = (),
) -> NoReturn:
    """Abort the call with a stable `error_code`, a human message and the code's gRPC status.

    `status` overrides the catalogue's status, for a code that passes another service's on;
    `trailing` adds trailing metadata (e.g. a `retry-after`).
    """
    await context.abort(
        status or grpc_status(error_code),
        message,
        trailing_metadata=((ERROR_CODE_METADATA_KEY, error_code.value), *trailing),
    )
    raise AssertionError("unreachable")  # context.abort always raises


def trailing_value(error: grpc.aio.AioRpcError, key: str) -> str:
    """A trailing-metadata value of a failed call, or '' if it has none."""
    for name, value in error.trailing_metadata() or ():
        if name == key:
            return str(value)
    return ""


def error_code_of(error: grpc.aio.AioRpcError) -> str:
    """The stable error code a service attached, or '' if none."""
    return trailing_value(error, ERROR_CODE_METADATA_KEY)
