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


def trailing_value(error: grpc.aio.AioRpcError, key: str) -> str:
    """A trailing-metadata value of a failed call, or '' if it has none."""
    for name, value in error.trailing_metadata() or ():
        if name == key:
            return str(value)
    return ""


def error_code_of(error: grpc.aio.AioRpcError) -> str:
    """The stable error code a service attached, or '' if none."""
    return trailing_value(error, ERROR_CODE_METADATA_KEY)
