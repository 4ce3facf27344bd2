"""The gateway's ASGI middleware: request ids and the access log; cancel on client disconnect.

RequestContextMiddleware gives each request an id (X-Request-Id in, or minted) and logs it.
CancelOnDisconnectMiddleware: once the request body has been read (at once, for a request
without one), it owns the server's `receive` and watches it for `http.disconnect`; the
application then reads from a queue it fills. On a disconnect the handler task is cancelled,
which cancels the gRPC calls it awaits, so upstream services see CANCELLED.
JobReads answers the job-status polls (GET /api/job-status, GET /api/jobs/{jobId}) with all of
the above, authentication and problem documents in one ASGI function, without FastAPI's routing
and dependency resolution (half of a poll's gateway CPU); the FastAPI routes stay the
documented reference and answer the same (tests compare the two).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import grpc
import orjson
from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datapilot_runtime import tracing
from datapilot_runtime.context import new_request_id, request_id_var
from gateway.auth import ApiKeys, tenant_of, unauthenticated
from gateway.deadlines import timeout_of
from gateway.deps import Upstreams
from gateway.job_json import job_to_json
from gateway.json_response import FastJSONResponse as JSONResponse
from gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS
from gateway.problems import ProblemError, problem_from_rpc_error, problem_response
from gateway.settings import GatewaySettings

T = TypeVar("T")

_ACCESS_LOGGER = logging.getLogger("gateway.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# A successful read (a job-status poll, mostly) is logged at DEBUG: polls are the bulk of the
# traffic, and formatting a JSON line for each was a tenth of a poll's gateway time.
_READ_METHODS = frozenset({"GET", "HEAD"})
_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}


def _metrics(method: str, template: str, code: str) -> tuple[Counter, Histogram]:
    """The labelled counter and histogram (labels() validates and locks on every call)."""
    key = (method, template, code)
    found = _children.get(key)
    if found is None:
        found = (
            HTTP_REQUESTS.labels(method, template, code),
            HTTP_LATENCY.labels(method, template),
        )
        _children[key] = found
    return found


class _HttpMiddleware:
    """Pure ASGI middleware that acts on HTTP requests and passes anything else through."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


def _request_id_of(scope: Scope) -> str:
    """The caller's X-Request-Id if it is a sane one, else a fresh id."""
    incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
    return incoming if _VALID_ID.match(incoming) else new_request_id()


def _account(scope: Scope, template: str, code: int, started: float) -> None:
    """Count and time a finished request; the access log line (successful reads at DEBUG)."""
    elapsed = time.perf_counter() - started
    method = scope["method"]
    requests, latency = _metrics(method, template, str(code))
    requests.inc()
    latency.observe(elapsed)
    level = logging.DEBUG if code < 400 and method in _READ_METHODS else logging.INFO
    if _ACCESS_LOGGER.isEnabledFor(level):
        _ACCESS_LOGGER.log(
            level,
            "%s %s %s",
            method,
            scope["path"],
            code,
            extra={
                "http_method": method,
                "http_path": scope["path"],
                "http_status": code,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )


class RequestContextMiddleware(_HttpMiddleware):
    """Binds the request id for the whole request and echoes it in `X-Request-Id`."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _request_id_of(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            # No response started: the client went away.
            _account(scope, template, status["code"] or 499, started)
            request_id_var.reset(token)


_LOGGER = logging.getLogger("gateway.disconnect")


def _has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    if b"transfer-encoding" in headers:
        return True
    return headers.get(b"content-length", b"0").strip() not in (b"", b"0")


class CancelOnDisconnectMiddleware(_HttpMiddleware):
    """Runs each HTTP request in a task that is cancelled if the client disconnects."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body_done = asyncio.Event()
        if not _has_body(scope):
            body_done.set()
        disconnected = asyncio.Event()
        later: asyncio.Queue[Message] = asyncio.Queue()

        async def app_receive() -> Message:
            if body_done.is_set():
                return await later.get()
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected.set()
                body_done.set()
            elif not message.get("more_body", False):
                body_done.set()
            return message

        async def run_app() -> None:
            await self._app(scope, app_receive, send)

        handler = asyncio.create_task(run_app())

        async def watch() -> None:
            await body_done.wait()
            while not disconnected.is_set():
                message = await receive()
                await later.put(message)
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    if not handler.done():
                        _LOGGER.info("client disconnected; cancelling its upstream calls")
                        handler.cancel()

        watcher = asyncio.create_task(watch())
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await handler
            if not disconnected.is_set():
                handler.result()  # re-raise what the application raised
        finally:
            watcher.cancel()
            handler.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


# The routes JobReads answers: their metric labels are these templates, as FastAPI's are.
JOB_STATUS_TEMPLATE = "/api/job-status"
JOB_TEMPLATE = "/api/jobs/{jobId}"
_JOB_PREFIX = "/api/jobs/"
_MAX_JOB_ID = 64  # the routes' max_length
_NO_ANSWER = 499  # the status counted when the client went away before any answer
_QUIET_CODES = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED)
_APP_LOGGER = logging.getLogger("gateway.app")  # the application's own errors, as app.py logs


def job_read_template(scope: Scope) -> str | None:
    """The template of a job read JobReads answers (a GET without a body), else None."""
    if scope["method"] != "GET" or scope.get("root_path") or _has_body(scope):
        return None
    path: str = scope["path"]
    if path == JOB_STATUS_TEMPLATE:
        return JOB_STATUS_TEMPLATE
    if path.startswith(_JOB_PREFIX) and len(path) > len(_JOB_PREFIX):
        return None if "/" in path[len(_JOB_PREFIX) :] else JOB_TEMPLATE
    return None


def rpc_error_response(exc: grpc.aio.AioRpcError) -> JSONResponse:
    """The problem answer of a failed upstream call; an unexpected failure is logged."""
    if exc.code() not in _QUIET_CODES:
        _APP_LOGGER.warning("upstream call failed: %s", exc.code().name)
    return problem_from_rpc_error(exc)


class _ClientGone(Exception):
    """The client disconnected while its upstream call was running (that call is cancelled)."""


def _job_id_of(scope: Scope, template: str) -> str:
    """The job id as FastAPI's parameter validation takes it (the last `jobId`), or a 400."""
    if template == JOB_TEMPLATE:
        path: str = scope["path"]
        job_id, where = path[len(_JOB_PREFIX) :], "path.jobId"
    else:
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        job_id, where = "", "query.jobId"
        for name, value in query:
            if name == "jobId":
                job_id = value
        if not job_id:  # missing or empty (min_length 1)
            raise ProblemError(400, "invalid_request", f"Invalid or missing: {where}.")
    if len(job_id) > _MAX_JOB_ID:
        raise ProblemError(400, "invalid_request", f"Invalid or missing: {where}.")
    return job_id


class JobReads:
    """Answers job reads in one function: request id, auth, deadline, GetJob, JSON, metrics.

    `app` is the FastAPI application: its state holds the settings and, once started, the
    upstream channels.
    """

    def __init__(self, app: FastAPI, keys: ApiKeys) -> None:
        self._app = app
        self._keys = keys

    async def serve(self, scope: Scope, receive: Receive, send: Send, template: str) -> None:
        if not tracing.enabled():
            await self._serve(scope, receive, send, template, "")
            return
        # The poll's own server span, the parent of ingest's GetJob span (the ASGI tracing
        # middleware sits in the stack JobReads answers ahead of).
        with tracing.http_server_span(scope, template) as span:
            code = await self._serve(scope, receive, send, template, tracing.traceparent_of(span))
            tracing.end_http_server_span(span, 0 if code == _NO_ANSWER else code)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, template: str, traceparent: str
    ) -> int:
        """Answer the read; returns the status sent (_NO_ANSWER: the client went away)."""
        request_id = _request_id_of(scope)
        token = request_id_var.set(request_id)  # for problem documents and log lines
        started = time.perf_counter()
        code = _NO_ANSWER  # unless an answer goes out
        try:
            answer = await self._answer(scope, receive, template, request_id, traceparent)
            id_header = (b"x-request-id", request_id.encode())
            if isinstance(answer, bytes):
                code = 200
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-length", str(len(answer)).encode()),
                            (b"content-type", b"application/json"),
                            id_header,
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": answer})
            elif answer is not None:
                code = answer.status_code
                answer.raw_headers.append(id_header)
                await answer(scope, receive, send)
        finally:
            _account(scope, template, code, started)
            request_id_var.reset(token)
        return code

    async def _answer(
        self, scope: Scope, receive: Receive, template: str, request_id: str, traceparent: str
    ) -> bytes | JSONResponse | None:
        tenant = tenant_of(self._keys, scope["headers"])
        if tenant is None:
            return unauthenticated()
        try:
            settings: GatewaySettings = self._app.state.settings
            timeout = timeout_of(
                _first_header(scope, b"grpc-timeout"),
                _first_header(scope, b"request-timeout"),
                settings.read_deadline_seconds,
            )
            job_id = _job_id_of(scope, template)
            upstreams: Upstreams = self._app.state.upstreams
            read = upstreams.job_reads.read(job_id, tenant, request_id, traceparent, timeout)
            return orjson.dumps(job_to_json(await _unless_disconnected(read, receive)))
        except _ClientGone:
            return None
        except ProblemError as exc:
            return problem_response(exc.status, exc.code, exc.detail)
        except grpc.aio.AioRpcError as exc:
            return rpc_error_response(exc)
        except Exception as exc:
            _APP_LOGGER.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
            return problem_response(500, "internal", "An internal error occurred.")


def _first_header(scope: Scope, name: bytes) -> str | None:
    """A header's first value, as Starlette's `request.headers.get` gives it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _unless_disconnected(call: Awaitable[T], receive: Receive) -> T:
    """Await `call`; a client disconnect meanwhile cancels it (upstream sees CANCELLED).

    One watcher task, the call awaited in the request's own task: the middleware's general way
    (a task for the handler, another for the watcher, a queue) costs more than a poll can pay.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass  # the (empty) request body
        gone = True
        _LOGGER.info("client disconnected; cancelling its upstream calls")
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await call
    except asyncio.CancelledError:
        if gone and task.uncancel() == 0:
            raise _ClientGone from None
        raise
    finally:
        watcher.cancel()
