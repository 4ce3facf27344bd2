"""Builds the FastAPI application: routes, problem+json handlers, middleware, upstream channels."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from gateway.auth import ApiKeyMiddleware, ApiKeys
from gateway.deps import Upstreams
from gateway.events.sse import ERROR_STATUSES as EVENT_ERROR_STATUSES
from gateway.events.sse import StreamSlots
from gateway.events.sse import router as events_router
from gateway.json_response import FastJSONResponse as JSONResponse
from gateway.middleware import (
    CancelOnDisconnectMiddleware,
    JobReads,
    RequestContextMiddleware,
    job_read_template,
    rpc_error_response,
)
from gateway.openapi_doc import install_docs, install_openapi
from gateway.problems import ProblemError, problem_response
from gateway.routes import ERROR_STATUSES, router
from gateway.settings import GatewaySettings

_LOGGER = logging.getLogger(__name__)


class GatewayApp(FastAPI):
    """FastAPI with the job reads (the polls) answered by `JobReads` ahead of its stack.

    Not while a test overrides dependencies: the FastAPI routes then answer, with the overrides.
    """

    job_reads: JobReads | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.job_reads is not None and scope["type"] == "http" and not self.dependency_overrides:
            template = job_read_template(scope)
            if template is not None:
                await self.job_reads.serve(scope, receive, send, template)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: GatewaySettings, *, fast_job_reads: bool = True) -> FastAPI:
    """The gateway application for these settings.

    `fast_job_reads=False` leaves every request to the FastAPI routes (to compare the paths).
    """
    keys = ApiKeys.parse(settings.datapilot_api_keys.get_secret_value())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upstreams = Upstreams.open(settings)
        app.state.upstreams = upstreams
        try:
            yield
        finally:
            await upstreams.close()

    app = GatewayApp(
        title="DataPilot API",
        version="1.0.0",
        description=(
            "Upload a data file, get KPIs and AI insights. Every error is an RFC 9457 problem "
            "(`application/problem+json`) with a stable `code` and the `requestId`. "
            "Authenticate with `Authorization: Bearer <key>` or `X-API-Key` when keys are set."
        ),
        lifespan=lifespan,
        default_response_class=JSONResponse,
        docs_url=None,  # served from the gateway's own assets instead (install_docs)
        redoc_url=None,
        # FastAPI's own OpenTelemetry spans, metrics and logs are off: the gateway's one server
        # span per request comes from datapilot_runtime.tracing (several times cheaper), and
        # exception logs must not leave through another channel.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    if fast_job_reads:
        app.job_reads = JobReads(app, keys)
    app.state.event_slots = StreamSlots(settings.events_max_streams_per_tenant)
    app.include_router(router)
    app.include_router(events_router)
    install_openapi(app, {**ERROR_STATUSES, **EVENT_ERROR_STATUSES})
    install_docs(app)
    # Outermost last: request context, then authentication, then cancel-on-disconnect.
    app.add_middleware(CancelOnDisconnectMiddleware)
    app.add_middleware(ApiKeyMiddleware, keys=keys)
    app.add_middleware(RequestContextMiddleware)

    @app.exception_handler(ProblemError)
    async def on_problem(_request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.detail)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def on_rpc_error(_request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        return rpc_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        return problem_response(400, "invalid_request", f"Invalid or missing: {fields}.")

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        _LOGGER.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        return problem_response(500, "internal", "An internal error occurred.")

    return app
