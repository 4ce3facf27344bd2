"""A job's phases as spans under its job span: live in the worker, recorded from the child.

The worker's own phases (download, insights, publish) are live spans, made current so that the
calls they make (Download, GenerateInsights, PutArtifact) are their children. The phases that run
inside the analysis child (parse, profile, charts) are recorded from the child's phase events
with the child's own timestamps (an exporter does not survive a fork): each ends where the next
begins, the last where the child finished; they end once the report is back, so that they carry
its rows and columns. Costs nothing when tracing is off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from datapilot_runtime import tracing


class PhaseSpans:
    """The phases of one run of a job, as children of the span current at construction."""

    def __init__(self) -> None:
        self._on = tracing.enabled()
        self._parent = otel_context.get_current()
        self._live: tuple[trace.Span, object] | None = None
        # Child phases: their span and where each ends (0: not known yet).
        self._recorded: list[list[Any]] = []

    def begin(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        """A phase of the worker's own starts now (the previous one ends)."""
        if not self._on:
            return
        self._end_live()
        span = tracing.tracer().start_span(name, context=self._parent, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, self._parent))
        self._live = (span, token)

    def annotate(self, attributes: Mapping[str, Any]) -> None:
        """Attributes of the worker's phase in progress."""
        if self._live is not None:
            self._live[0].set_attributes(dict(attributes))

    def child_phase(self, name: str, started_ns: int) -> None:
        """The analysis child started `name` at `started_ns` (its clock)."""
        if not self._on:
            return
        self._end_live(started_ns)
        if self._recorded and not self._recorded[-1][1]:
            self._recorded[-1][1] = started_ns
        span = tracing.tracer().start_span(name, context=self._parent, start_time=started_ns)
        self._recorded.append([span, 0])

    def child_done(self, finished_ns: int, attributes: Mapping[str, Any]) -> None:
        """The child finished at `finished_ns`: its phases end, carrying `attributes`."""
        if not self._on:
            return
        for entry in self._recorded:
            span: trace.Span = entry[0]
            span.set_attributes(dict(attributes))
            span.end(end_time=entry[1] or finished_ns or None)
        self._recorded = []

    def fail(self, exc: BaseException) -> None:
        """The phase in progress failed with `exc`."""
        if self._live is not None:
            span = self._live[0]
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))

    def finish(self) -> None:
        """End whatever is still open (the run is over, or it stopped)."""
        if not self._on:
            return
        self.child_done(0, {})
        self._end_live()

    def _end_live(self, at_ns: int | None = None) -> None:
        if self._live is None:
            return
        span, token = self._live
        self._live = None
        otel_context.detach(token)  # type: ignore[arg-type]
        span.end(end_time=at_ns)
