"""gRPC interceptors: internal auth, request ids and tenants in metadata, metrics, access logs."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from prometheus_client import Counter, Histogram

from datapilot_runtime import tracing
from datapilot_runtime.context import (
    INTERNAL_TENANT,
    INTERNAL_TOKEN_METADATA_KEY,
    QUOTA_METADATA_KEY,
    REQUEST_ID_METADATA_KEY,
    TENANT_METADATA_KEY,
    new_request_id,
    quota_pending_var,
    request_id_var,
    serving_call_var,
    tenant_var,
)
from datapilot_runtime.error_codes import ErrorCode
from datapilot_runtime.grpc_errors import ERROR_CODE_METADATA_KEY, grpc_status
from datapilot_runtime.metrics import GRPC_SERVER_LATENCY, GRPC_SERVER_REQUESTS

_LOGGER = logging.getLogger(__name__)
# Health checks answer anyone (probes carry no token). Reflection asks for the internal token
# when one is set (it describes every method), but is no call for admissions (tenant, quota).
_UNGUARDED_PREFIX = "/grpc.health."
_REFLECTION_PREFIX = "/grpc.reflection."
# Successful reads (GetJob polls, mostly) are logged at DEBUG: they are the bulk of the calls and
# a JSON log line each was a visible share of their cost. Failures and writes stay at INFO.
_READ_PREFIXES = ("Get", "List")
_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}


def _metrics(service: str, method: str, code: str) -> tuple[Counter, Histogram]:
    """The labelled counter and histogram of a call (labels() validates and locks each time)."""
    key = (service, method, code)
    found = _children.get(key)
    if found is None:
        found = (
            GRPC_SERVER_REQUESTS.labels(service, method, code),
            GRPC_SERVER_LATENCY.labels(service, method),
        )
        _children[key] = found
    return found


@dataclass(frozen=True)
class Rejection:
    """Refuse a call before its handler runs (with the code's gRPC status)."""

    error_code: ErrorCode
    message: str
    trailing: tuple[tuple[str, str], ...] = ()


# Decides on a call from its method and metadata; None lets it through.
Admission = Callable[[str, dict[str, str]], Awaitable[Rejection | None]]


@dataclass(frozen=True)
class StoreFault:
    """A store the service depends on failed: the call answers UNAVAILABLE with this code."""

    error_code: ErrorCode
    store: str


# Given by a service that has stores: maps what a handler of `method` raised to a StoreFault,
# or None for an exception that is not a store failure (it propagates unchanged).
StoreErrors = Callable[[str, BaseException], StoreFault | None]


def _log_call(
    service: str,
    method: str,
    context: grpc.aio.ServicerContext,
    started: float,
    cancelled: bool = False,
) -> str:
    code = context.code()
    name = code.name if isinstance(code, grpc.StatusCode) else "OK"
    if cancelled:
        name = "CANCELLED"
    elapsed = time.perf_counter() - started
    requests, latency = _metrics(service, method, name)
    requests.inc()
    latency.observe(elapsed)
    if name == "OK" and method.rpartition("/")[2].startswith(_READ_PREFIXES):
        level = logging.DEBUG
    elif name in ("OK", "NOT_FOUND", "CANCELLED"):
        level = logging.INFO
    else:
        level = logging.WARNING
    if _LOGGER.isEnabledFor(level):
        _LOGGER.log(
            level,
            "rpc %s %s",
            method,
            name,
            extra={
                "grpc_method": method,
                "grpc_code": name,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
    return name


class ServerContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks the internal token, binds request id and tenant, admits, measures and logs."""

    def __init__(
        self,
        service: str,
        internal_token: str = "",
        admissions: tuple[Admission, ...] = (),
        store_errors: StoreErrors | None = None,
    ) -> None:
        self._service = service
        self._token = internal_token.encode()
        self._admissions = admissions
        self._store_errors = store_errors

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(_UNGUARDED_PREFIX):
            return handler
        metadata = {str(k): str(v) for k, v in (details.invocation_metadata or ())}
        rejection = None
        if self._token and not hmac.compare_digest(
            metadata.get(INTERNAL_TOKEN_METADATA_KEY, "").encode(), self._token
        ):
            rejection = Rejection(ErrorCode.UNAUTHENTICATED, "internal token required")
        admissions = () if method.startswith(_REFLECTION_PREFIX) else self._admissions
        for admission in admissions:
            if rejection is None:
                rejection = await admission(method, metadata)
        binding = _Binding(
            self._service,
            method,
            metadata.get(REQUEST_ID_METADATA_KEY) or new_request_id(),
            metadata.get(TENANT_METADATA_KEY, ""),
            rejection,
            self._store_errors,
            metadata.get("traceparent", ""),
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
    store_errors: StoreErrors | None
    traceparent: str = ""

    def enter(self) -> tuple[Any, Any, Any]:
        return (
            request_id_var.set(self.request_id),
            tenant_var.set(self.tenant),
            serving_call_var.set(True),
        )

    @staticmethod
    def leave(tokens: tuple[Any, Any, Any]) -> None:
        request_id_var.reset(tokens[0])
        tenant_var.reset(tokens[1])
        serving_call_var.reset(tokens[2])

    async def reject(self, context: grpc.aio.ServicerContext) -> None:
        if self.rejection is not None:
            code = self.rejection.error_code
            trailing = ((ERROR_CODE_METADATA_KEY, code.value), *self.rejection.trailing)
            await context.abort(grpc_status(code), self.rejection.message, trailing)

    async def answer_store_failure(
        self, context: grpc.aio.ServicerContext, exc: BaseException
    ) -> None:
        """A store this service depends on failed: UNAVAILABLE (retryable), never UNKNOWN."""
        if self.store_errors is None:
            return
        fault = self.store_errors(self.method.rsplit("/", 1)[-1], exc)
        if fault is None:
            return
        _LOGGER.warning("%s unavailable: %s", fault.store, type(exc).__name__)
        await context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"The {fault.store} is unavailable; retry shortly.",
            ((ERROR_CODE_METADATA_KEY, fault.error_code.value),),
        )


@contextlib.asynccontextmanager
async def _served(binding: _Binding, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """One call as served: context variables, span, admission, store-failure answer, call log."""
    tokens = binding.enter()
    started = time.perf_counter()
    cancelled = False
    with tracing.rpc_server_span(binding.method, binding.traceparent) as span:
        try:
            await binding.reject(context)
            yield
        except asyncio.CancelledError:
            cancelled = True  # the caller cancelled, or its deadline passed
            raise
        except Exception as exc:
            await binding.answer_store_failure(context, exc)
            raise
        finally:
            code = _log_call(binding.service, binding.method, context, started, cancelled)
            tracing.end_rpc_server_span(span, code)
            binding.leave(tokens)


def _wrap_unary(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], binding: _Binding
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _served(binding, context):
            return await behavior(request, context)

    return wrapper


def _wrap_stream(
    behavior: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]], binding: _Binding
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with _served(binding, context):
            async for response in behavior(request, context):
                yield response

    return wrapper


def outgoing_metadata(
    token: str, metadata: Any = None, default_tenant: str = ""
) -> grpc.aio.Metadata:
    """What every outgoing call carries: request id, tenant, the quota charge, internal token.

    `default_tenant` is the tenant of a call made outside any request (INTERNAL_TENANT for the
    services' own channels; none for the gateway, whose calls all act for an API key's tenant).
    """
    metadata = grpc.aio.Metadata(*(metadata or ()))
    request_id = request_id_var.get()
    if request_id and REQUEST_ID_METADATA_KEY not in metadata:
        metadata.add(REQUEST_ID_METADATA_KEY, request_id)
    tenant = tenant_var.get() or ("" if serving_call_var.get() else default_tenant)
    if tenant and TENANT_METADATA_KEY not in metadata:
        metadata.add(TENANT_METADATA_KEY, tenant)
    if quota_pending_var.get():
        quota_pending_var.set(False)
        metadata.add(QUOTA_METADATA_KEY, "1")
    if token and INTERNAL_TOKEN_METADATA_KEY not in metadata:
        metadata.add(INTERNAL_TOKEN_METADATA_KEY, token)
    if tracing.enabled() and "traceparent" not in metadata:
        # The callee's server span (OpenTelemetry's server interceptor) joins the caller's trace.
        traceparent = tracing.current_traceparent()
        if traceparent:
            metadata.add("traceparent", traceparent)
    return metadata


def first_call_metadata(
    request_id: str, tenant: str, token: str, traceparent: str = "", *, charge: bool = True
) -> tuple[tuple[str, str], ...]:
    """`outgoing_metadata` of a request's first (quota-charging) call, from explicit values.

    For the gateway's job reads, which make one upstream call and bind no context variables;
    `charge=False` when the request's quota was already charged (by a GetJobs call).
    """
    pairs = [(REQUEST_ID_METADATA_KEY, request_id)]
    if tenant:
        pairs.append((TENANT_METADATA_KEY, tenant))
    if charge:
        pairs.append((QUOTA_METADATA_KEY, "1"))
    if token:
        pairs.append((INTERNAL_TOKEN_METADATA_KEY, token))
    if traceparent:
        pairs.append(("traceparent", traceparent))
    return tuple(pairs)


def _outgoing(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    return details._replace(metadata=outgoing_metadata(token, details.metadata, INTERNAL_TENANT))


class _WithMetadata:
    """A stub method that adds the outgoing metadata itself, as the interceptors would."""

    def __init__(self, method: Callable[..., Any], token: str) -> None:
        self._method = method
        self._token = token

    def __call__(self, *args: Any, metadata: Any = None, **kwargs: Any) -> Any:
        return self._method(*args, metadata=outgoing_metadata(self._token, metadata), **kwargs)


StubT = TypeVar("StubT")


def with_outgoing_metadata(stub: StubT, internal_token: str = "") -> StubT:
    """`stub` (on a channel without interceptors) with every method carrying the metadata.

    For the gateway's hot path: a grpc.aio client interceptor costs an extra task and call
    object per call, a measurable share of a job-status poll.
    """
    for name, method in list(vars(stub).items()):
        if callable(method):
            setattr(stub, name, _WithMetadata(method, internal_token))
    return stub


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
    """Interceptors of the services' channels: request id, tenant, quota charge, internal token.

    A call outside any request names INTERNAL_TENANT: it is the service acting for itself.
    """
    return [_UnaryUnary(internal_token), _UnaryStream(internal_token), _StreamUnary(internal_token)]
