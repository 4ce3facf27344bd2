"""Stable error codes on gRPC errors: services attach them, the gateway reads them."""

from __future__ import annotations

from typing import NoReturn

import grpc

ERROR_CODE_METADATA_KEY = "dp-error-code"


async def abort(
    context: grpc.aio.ServicerContext, status: grpc.StatusCode, error_code: str, message: str
) -> NoReturn:
    """Abort the call with `status`, a human message and a stable machine `error_code`."""
    await context.abort(status, message, trailing_metadata=((ERROR_CODE_METADATA_KEY, error_code),))
    raise AssertionError("unreachable")  # context.abort always raises


def error_code_of(error: grpc.aio.AioRpcError) -> str:
    """The stable error code a service attached, or '' if none."""
    for key, value in error.trailing_metadata() or ():
        if key == ERROR_CODE_METADATA_KEY:
            return str(value)
    return ""
