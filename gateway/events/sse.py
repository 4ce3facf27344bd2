"""Live job events: GET /api/jobs/{jobId}/events as Server-Sent Events, from ingest's WatchJob.

Each event is the job record as job-status returns it (`event: job`, `id:` the change's id);
`Last-Event-ID` resumes after an event; a comment line every EVENTS_HEARTBEAT_SECONDS keeps an
idle stream open; the stream ends after the terminal state. No read deadline applies: the
stream lives as long as the job or the client, and a client gone cancels the upstream watch.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import grpc
import orjson
from datapilot.ingest.v1 import ingest_pb2
from fastapi import APIRouter, Header, Request
from prometheus_client import Gauge
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from datapilot_runtime.context import tenant_var
from datapilot_runtime.error_codes import ErrorCode
from gateway.deps import IngestStubDep, SettingsDep
from gateway.job_json import job_to_json
from gateway.problems import problem_response
from gateway.routes import JobIdPath

_LOGGER = logging.getLogger(__name__)
EVENTS_PATH = "/api/jobs/{jobId}/events"
EVENT_STREAMS = Gauge("datapilot_event_streams", "Job event streams open at the gateway")
ERROR_STATUSES = {f"GET {EVENTS_PATH}": [400, 401, 404, 429, 503]}
_EXAMPLE = (
    'id: 1764597600000-0\nevent: job\ndata: {"jobId":"0f8c…","status":"queued","progress":0,…}'
    '\n\n: heartbeat\n\nid: 1764597601234-0\nevent: job\ndata: {"jobId":"0f8c…",'
    '"status":"completed","progress":100,…}\n\n'
)
HEARTBEAT = b": heartbeat\n\n"
RETRY_AFTER_SECONDS = 5

router = APIRouter()


class StreamSlots:
    """Open event streams per tenant, bounded (EVENTS_MAX_STREAMS_PER_TENANT)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def take(self, tenant: str) -> bool:
        if self._open[tenant] >= self.limit:
            return False
        self._open[tenant] += 1
        EVENT_STREAMS.inc()
        return True

    def give_back(self, tenant: str) -> None:
        self._open[tenant] -= 1
        if self._open[tenant] <= 0:
            del self._open[tenant]
        EVENT_STREAMS.dec()

    def open_for(self, tenant: str) -> int:
        return self._open[tenant]


def _sse(message: ingest_pb2.WatchJobResponse) -> bytes:
    if message.WhichOneof("payload") != "event":
        return HEARTBEAT
    event = message.event
    data = orjson.dumps(job_to_json(event.job))
    return b"id: " + event.event_id.encode() + b"\nevent: job\ndata: " + data + b"\n\n"


class EventStreamResponse(StreamingResponse):
    """A streaming response that runs `on_close` however it ends (done, failed, cancelled).

    The finally of a generator that never started would not run: this one always does.
    """

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


@router.get(
    EVENTS_PATH,
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "Server-Sent Events: `event: job` with the job record (as job-status returns "
                "it) on every status or progress change, `id:` per event, a `: heartbeat` "
                "comment while nothing changes; the stream ends after the terminal state."
            ),
            "content": {"text/event-stream": {"schema": {"type": "string"}, "example": _EXAMPLE}},
        }
    },
)
async def job_events(
    request: Request,
    jobId: JobIdPath,
    ingest: IngestStubDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="Resume after this event id (sent by EventSource on reconnect)",
        ),
    ] = None,
) -> Response:
    """Follow a job live (Server-Sent Events) until it is completed, failed or cancelled.

    A job already terminal gets one event and the stream ends. `curl -N` shows it as it comes.
    """
    slots: StreamSlots = request.app.state.event_slots
    tenant = tenant_var.get()
    if not slots.take(tenant):
        return problem_response(
            429,
            ErrorCode.TOO_MANY_STREAMS.value,
            f"At most {slots.limit} job event streams may be open at once.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    try:
        call = ingest.WatchJob(
            ingest_pb2.WatchJobRequest(
                job_id=jobId,
                last_event_id=last_event_id or "",
                heartbeat_ms=int(settings.events_heartbeat_seconds * 1000),
            )
        )
    except BaseException:
        slots.give_back(tenant)
        raise
    messages = call.__aiter__()
    try:
        # The first message (or the call's error: 404, 503) before any byte of the response.
        first = await anext(messages, None)
    except BaseException:
        call.cancel()
        slots.give_back(tenant)
        raise

    async def stream() -> AsyncIterator[bytes]:
        if first is None:
            return
        yield _sse(first)
        try:
            async for message in messages:
                yield _sse(message)
        except grpc.aio.AioRpcError as exc:
            # Headers are gone already: the stream just ends; EventSource reconnects and
            # resumes with Last-Event-ID.
            _LOGGER.info("job event stream ended by its upstream: %s", exc.code().name)

    def close() -> None:
        call.cancel()
        slots.give_back(tenant)

    return EventStreamResponse(stream(), close)
