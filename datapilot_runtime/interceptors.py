"""gRPC interceptors: request ids in and out of metadata, and one access-log line per call."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from datapilot_runtime.context import REQUEST_ID_METADATA_KEY, new_request_id, request_id_var

_LOGGER = logging.getLogger(__name__)


def _log_call(method: str, context: grpc.aio.ServicerContext, started: float) -> None:
    code = context.code()
    name = code.name if isinstance(code, grpc.StatusCode) else "OK"
    level = logging.INFO if name in ("OK", "NOT_FOUND", "CANCELLED") else logging.WARNING
    _LOGGER.log(
        level,
        "rpc %s %s",
        method,
        name,
        extra={
            "grpc_method": method,
            "grpc_code": name,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )


class ServerContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Binds the caller's `x-request-id` (or a new one) to the handler and logs the call."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        metadata = dict(handler_call_details.invocation_metadata or ())
        request_id = str(metadata.get(REQUEST_ID_METADATA_KEY) or new_request_id())
        method = handler_call_details.method
        if method.startswith("/grpc.health") or method.startswith("/grpc.reflection"):
            return handler
        if handler.unary_unary:
            return handler._replace(
                unary_unary=_wrap_unary(handler.unary_unary, request_id, method)
            )
        if handler.stream_unary:
            return handler._replace(
                stream_unary=_wrap_unary(handler.stream_unary, request_id, method)
            )
        if handler.unary_stream:
            return handler._replace(
                unary_stream=_wrap_stream(handler.unary_stream, request_id, method)
            )
        return handler._replace(
            stream_stream=_wrap_stream(handler.stream_stream, request_id, method)
        )


def _wrap_unary(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
    request_id: str,
    method: str,
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            return await behavior(request, context)
        finally:
            _log_call(method, context, started)
            request_id_var.reset(token)

    return wrapper


def _wrap_stream(
    behavior: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]],
    request_id: str,
    method: str,
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            async for response in behavior(request, context):
                yield response
        finally:
            _log_call(method, context, started)
            request_id_var.reset(token)

    return wrapper


def _with_request_id(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    request_id = request_id_var.get()
    if not request_id:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    if REQUEST_ID_METADATA_KEY not in metadata:
        metadata.add(REQUEST_ID_METADATA_KEY, request_id)
    return details._replace(metadata=metadata)


class _RequestIdUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_request_id(details), request)


class _RequestIdUnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_request_id(details), request)


class _RequestIdStreamUnary(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_with_request_id(details), request_iterator)


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors every outgoing channel carries: the current request id as metadata."""
    return [_RequestIdUnaryUnary(), _RequestIdUnaryStream(), _RequestIdStreamUnary()]
