"""OpenTelemetry tracing of a process, configured only by the standard OTEL_* variables.

Off (nothing imported beyond the API, no instrumentation installed) unless an OTLP endpoint is
set; OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none also keep it off. The SDK reads the
rest itself: OTEL_TRACES_SAMPLER (default parentbased_always_on), OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_PROTOCOL (grpc, the Python SDK's default, or
http/protobuf), headers, timeouts. A job's trace context travels in its record (`traceparent`,
W3C), so the worker's spans join the trace of the upload that created the job.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_LOGGER = logging.getLogger(__name__)
TRACER_NAME = "datapilot"
_W3C = TraceContextTextMapPropagator()
_ENABLED = False

__all__ = ["Span", "SpanKind", "Status", "StatusCode"]


def tracing_wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the OTEL_* variables ask for traces to be exported."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {
        name.strip().lower()
        for name in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
        if name.strip()
    }
    if "otlp" not in exporters:
        return False  # "none" (or an exporter this project does not ship)
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def enabled() -> bool:
    """Whether this process exports traces (configure_tracing found an endpoint)."""
    return _ENABLED


@dataclass
class Tracing:
    """The process's tracer provider; `shutdown()` flushes what is still buffered."""

    provider: Any

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.provider.shutdown()


def _exporter(env: Mapping[str, str]) -> Any:
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    ) or "grpc"
    if protocol.strip().lower() == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    if protocol.strip().lower() != "grpc":
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}: grpc or http/protobuf")
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    return GrpcExporter()


def configure_tracing(
    default_service_name: str, env: Mapping[str, str] = os.environ
) -> Tracing | None:
    """Export this process's spans over OTLP if an endpoint is set; None (and no cost) if not.

    Instruments httpx (the LLM calls): call it before any server or channel is
    created. The gateway adds its HTTP server spans itself (`instrument_asgi`).
    """
    global _ENABLED
    if not tracing_wanted(env):
        return None
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = env.get("OTEL_SERVICE_NAME") or default_service_name
    # Shut down (and flushed) at exit by the SDK itself: every process exits normally on SIGTERM.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(env)))
    trace.set_tracer_provider(provider)
    # gRPC: the services' own interceptors make each call's server span (rpc_server_span; not
    # for health checks) and carry the traceparent in the outgoing metadata, so that a
    # callee's span is the child of the caller's current span. (opentelemetry-instrumentation
    # -grpc's aio client interceptor awaits a stream-unary call's end before handing the call
    # back, which deadlocks `call.write()` uploads; its server interceptor costs more.)
    HTTPXClientInstrumentor().instrument()
    _ENABLED = True
    _LOGGER.info("tracing on: spans of %s exported over OTLP", service)
    return Tracing(provider)


def instrument_asgi(app: Any) -> None:
    """Server spans for the gateway's HTTP requests (health, metrics, docs assets excluded)."""
    if _ENABLED:
        app.add_middleware(AsgiTracingMiddleware)  # outermost: every later log line has ids


# Not traced: probes, scrapes and static assets.
_UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_UNTRACED_PREFIX = "/docs-assets/"
_CONTEXT_HEADERS = {b"traceparent": "traceparent", b"tracestate": "tracestate"}


def _parent_of(scope: Any) -> otel_context.Context | None:
    """The caller's trace context from the request's W3C headers (None without them)."""
    carrier = {
        _CONTEXT_HEADERS[name]: value.decode("latin-1")
        for name, value in scope.get("headers") or ()
        if name in _CONTEXT_HEADERS
    }
    return _W3C.extract(carrier) if carrier else None


@contextlib.contextmanager
def http_server_span(scope: Any, route: str | None = None) -> Iterator[Span]:
    """The current SERVER span of one HTTP request, with the HTTP semantic conventions'
    attributes; `route` is its template when known from the start (the job reads').

    The caller reports the response with `end_http_server_span`; the span ends with the block.
    """
    method = scope["method"]
    attributes = {
        "http.request.method": method,
        "url.path": scope.get("path", ""),
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", ""),
    }
    if route:
        attributes["http.route"] = route
    span = tracer().start_span(
        f"{method} {route}" if route else method,
        context=_parent_of(scope),
        kind=SpanKind.SERVER,
        attributes=attributes,
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    except BaseException as exc:  # what start_as_current_span records
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        otel_context.detach(token)
        span.end()


def end_http_server_span(span: Span, status: int) -> None:
    """The response's status on the request's span (0: no response went out)."""
    if status:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(status))


def traceparent_of(span: Span) -> str:
    """The W3C traceparent naming `span` as the parent (what the propagator would write)."""
    ids = span.get_span_context()
    return f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}"


class AsgiTracingMiddleware:
    """One SERVER span per HTTP request, with the HTTP semantic conventions' attributes.

    Continues the caller's W3C trace context (`traceparent`). Written here rather than taken
    from opentelemetry-instrumentation-asgi: that middleware cost ~4x as much per request
    (~350 against ~80 us on this machine, spans not exported), a tenth of a job-status poll.
    The job reads, answered ahead of the middleware stack, open theirs themselves.
    """

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in _UNTRACED_PATHS or path.startswith(_UNTRACED_PREFIX):
            await self._app(scope, receive, send)
            return
        status = 0

        async def send_noting_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with http_server_span(scope) as span:
            try:
                await self._app(scope, receive, send_noting_status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.update_name(f"{scope['method']} {route}")
                    span.set_attribute("http.route", route)
                end_http_server_span(span, status)


_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()
# gRPC statuses that are the server's fault (OpenTelemetry's RPC conventions): the span errs.
_SERVER_FAULTS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)


def rpc_server_span(method: str, traceparent: str) -> contextlib.AbstractContextManager[Any]:
    """The SERVER span of one gRPC call (`/pkg.Service/Method`), continuing the caller's trace;
    a no-op while tracing is off. Made by the services' own server interceptor (that of
    opentelemetry-instrumentation-grpc wraps every call's context in a proxy, at more cost)."""
    if not _ENABLED:
        return _NO_SPAN
    service, _, name = method.lstrip("/").rpartition("/")
    return tracer().start_as_current_span(
        method.lstrip("/"),
        context=context_of(traceparent) if traceparent else None,
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        record_exception=False,
        set_status_on_exception=False,
    )


def answered_rpc_server_span(method: str, traceparent: str, code_name: str) -> None:
    """rpc_server_span of a call answered at once (each read of a GetJobs call): made and ended
    without becoming the current span, which a span with no work under it does not need."""
    if not _ENABLED:
        return
    service, _, name = method.lstrip("/").rpartition("/")
    span = tracer().start_span(
        method.lstrip("/"),
        context=context_of(traceparent) if traceparent else None,
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
    )
    end_rpc_server_span(span, code_name)
    span.end()


def end_rpc_server_span(span: Any, code_name: str) -> None:
    """The call's status on its span (from rpc_server_span; None while tracing is off)."""
    if span is None:
        return
    span.set_attribute("rpc.grpc.status_code", code_name)
    if code_name in _SERVER_FAULTS:
        span.set_status(Status(StatusCode.ERROR, code_name))


@functools.cache
def tracer() -> trace.Tracer:
    """The project's tracer (made once: getting one builds a new object each time)."""
    return trace.get_tracer(TRACER_NAME)


def current_traceparent() -> str:
    """The W3C traceparent of the current span ('' when there is none, e.g. tracing off)."""
    if not _ENABLED:
        return ""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent", "")


def context_of(traceparent: str) -> otel_context.Context:
    """The trace context a stored traceparent names (an empty context for '')."""
    if not traceparent:
        return otel_context.Context()
    return _W3C.extract({"traceparent": traceparent})


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span in hex, or None when there is no valid span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"


@contextlib.contextmanager
def span_at(
    name: str,
    parent: otel_context.Context | None,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A span recorded after the fact (e.g. a phase that ran in the analysis child), with the
    times it had. The body may set attributes before it ends at `end_ns`."""
    span = tracer().start_span(name, context=parent, start_time=start_ns)
    try:
        for key, value in (attributes or {}).items():
            span.set_attribute(key, value)
        yield span
    finally:
        span.end(end_time=end_ns)
