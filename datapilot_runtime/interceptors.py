"""gRPC interceptors: internal auth, request ids and tenants in metadata, metrics, access logs."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from redis.exceptions import RedisError

from datapilot_runtime.context import (
    INTERNAL_TOKEN_METADATA_KEY,
    QUOTA_METADATA_KEY,
    REQUEST_ID_METADATA_KEY,
    TENANT_METADATA_KEY,
    new_request_id,
    quota_pending_var,
    request_id_var,
    tenant_var,
)
from datapilot_runtime.grpc_errors import ERROR_CODE_METADATA_KEY
from datapilot_runtime.metrics import GRPC_SERVER_LATENCY, GRPC_SERVER_REQUESTS
from ingest_svc.blob_store import BlobStoreError

_LOGGER = logging.getLogger(__name__)
_UNGUARDED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


@dataclass(frozen=True)
class Rejection:
    """Refuse a call before its handler runs."""

    status: grpc.StatusCode
    error_code: str
    message: str
    trailing: tuple[tuple[str, str], ...] = ()


# Decides on a call from its method and metadata; None lets it through.
Admission = Callable[[str, dict[str, str]], Awaitable[Rejection | None]]


def _log_call(
    service: str,
    method: str,
    context: grpc.aio.ServicerContext,
    started: float,
    cancelled: bool = False,
) -> None:
    code = context.code()
    name = code.name if isinstance(code, grpc.StatusCode) else "OK"
    if cancelled:
        name = "CANCELLED"
    elapsed = time.perf_counter() - started
    GRPC_SERVER_REQUESTS.labels(service, method, name).inc()
    GRPC_SERVER_LATENCY.labels(service, method).observe(elapsed)
    level = logging.INFO if name in ("OK", "NOT_FOUND", "CANCELLED") else logging.WARNING
    _LOGGER.log(
        level,
        "rpc %s %s",
        method,
        name,
        extra={"grpc_method": method, "grpc_code": name, "duration_ms": round(elapsed * 1000, 2)},
    )


class ServerContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks the internal token, binds request id and tenant, admits, measures and logs."""

    def __init__(
        self, service: str, internal_token: str = "", admissions: tuple[Admission, ...] = ()
    ) -> None:
        self._service = service
        self._token = internal_token.encode()
        self._admissions = admissions

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(_UNGUARDED_PREFIXES):
            return handler
        metadata = {str(k): str(v) for k, v in (details.invocation_metadata or ())}
        rejection = None
        if self._token and not hmac.compare_digest(
            metadata.get(INTERNAL_TOKEN_METADATA_KEY, "").encode(), self._token
        ):
            rejection = Rejection(
                grpc.StatusCode.UNAUTHENTICATED, "unauthenticated", "internal token required"
            )
        for admission in self._admissions:
            if rejection is None:
                rejection = await admission(method, metadata)
        binding = _Binding(
            self._service,
            method,
            metadata.get(REQUEST_ID_METADATA_KEY) or new_request_id(),
            metadata.get(TENANT_METADATA_KEY, ""),
            rejection,
        )
        for kind in ("unary_unary", "stream_unary", "unary_stream", "stream_stream"):
            behavior = getattr(handler, kind)
            if behavior is not None:
                wrap = _wrap_unary if kind.endswith("unary") else _wrap_stream
                return handler._replace(**{kind: wrap(behavior, binding)})
        return handler


@dataclass(frozen=True)
class _Binding:
    service: str
    method: str
    request_id: str
    tenant: str
    rejection: Rejection | None

    def enter(self) -> tuple[Any, Any]:
        return request_id_var.set(self.request_id), tenant_var.set(self.tenant)

    @staticmethod
    def leave(tokens: tuple[Any, Any]) -> None:
        request_id_var.reset(tokens[0])
        tenant_var.reset(tokens[1])

    async def reject(self, context: grpc.aio.ServicerContext) -> None:
        if self.rejection is not None:
            trailing = (
                (ERROR_CODE_METADATA_KEY, self.rejection.error_code),
                *self.rejection.trailing,
            )
            await context.abort(self.rejection.status, self.rejection.message, trailing)


_INFRASTRUCTURE_ERRORS = (RedisError, BlobStoreError)


async def _unavailable(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    """A store this service depends on failed: UNAVAILABLE (retryable), never UNKNOWN."""
    store = "job store (Redis)" if isinstance(exc, RedisError) else "blob store"
    code = "store_unavailable" if isinstance(exc, RedisError) else "blob_store_unavailable"
    _LOGGER.warning("%s unavailable: %s", store, type(exc).__name__)
    await context.abort(
        grpc.StatusCode.UNAVAILABLE,
        f"The {store} is unavailable; retry shortly.",
        ((ERROR_CODE_METADATA_KEY, code),),
    )


def _wrap_unary(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], binding: _Binding
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        tokens = binding.enter()
        started = time.perf_counter()
        cancelled = False
        try:
            await binding.reject(context)
            return await behavior(request, context)
        except _INFRASTRUCTURE_ERRORS as exc:
            await _unavailable(context, exc)
            raise
        except asyncio.CancelledError:
            cancelled = True  # the caller cancelled, or its deadline passed
            raise
        finally:
            _log_call(binding.service, binding.method, context, started, cancelled)
            binding.leave(tokens)

    return wrapper


def _wrap_stream(
    behavior: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]], binding: _Binding
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        tokens = binding.enter()
        started = time.perf_counter()
        cancelled = False
        try:
            await binding.reject(context)
            async for response in behavior(request, context):
                yield response
        except _INFRASTRUCTURE_ERRORS as exc:
            await _unavailable(context, exc)
            raise
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            _log_call(binding.service, binding.method, context, started, cancelled)
            binding.leave(tokens)

    return wrapper


def _outgoing(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    request_id = request_id_var.get()
    if request_id and REQUEST_ID_METADATA_KEY not in metadata:
        metadata.add(REQUEST_ID_METADATA_KEY, request_id)
    tenant = tenant_var.get()
    if tenant and TENANT_METADATA_KEY not in metadata:
        metadata.add(TENANT_METADATA_KEY, tenant)
    if quota_pending_var.get():
        quota_pending_var.set(False)
        metadata.add(QUOTA_METADATA_KEY, "1")
    if token:
        metadata.add(INTERNAL_TOKEN_METADATA_KEY, token)
    return details._replace(metadata=metadata)


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_outgoing(details, self._token), request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_outgoing(details, self._token), request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_outgoing(details, self._token), request_iterator)


def client_interceptors(internal_token: str = "") -> list[grpc.aio.ClientInterceptor]:
    """Interceptors of every outgoing channel: request id, tenant, quota charge, internal token."""
    return [_UnaryUnary(internal_token), _UnaryStream(internal_token), _StreamUnary(internal_token)]
