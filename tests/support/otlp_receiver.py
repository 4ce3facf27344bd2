"""A real OTLP trace receiver: the collector's TraceService (opentelemetry-proto) over gRPC.

Runs in the test process on a free port and keeps every span it is sent, with the name of the
service that sent it (the `service.name` resource attribute).
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2


def _value(any_value: common_pb2.AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as exported: ids in hex, attributes as plain values."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._receiver.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """Start with `start()`; point OTEL_EXPORTER_OTLP_ENDPOINT at `endpoint`."""

    def __init__(self, keep_spans: bool = True) -> None:
        # keep_spans=False only counts them (a benchmark's receiver: less of the machine's CPU).
        self._keep = keep_spans
        self.count = 0
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        register = trace_service_pb2_grpc.add_TraceServiceServicer_to_server
        register(_TraceService(self), self._server)  # type: ignore[no-untyped-call]
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        if not self._keep:
            counted = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            with self._lock:
                self.count += counted
            return
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            service = str(resource.get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            events=[
                                (e.name, {a.key: _value(a.value) for a in e.attributes})
                                for e in span.events
                            ],
                        )
                    )
        with self._lock:
            self._spans.extend(found)
            self.count += len(found)

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)
