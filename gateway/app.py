"""Builds the FastAPI application: routes, problem+json error handlers, middleware, clients."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from datapilot.ingest.v1 import ingest_pb2_grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from datapilot_runtime.grpc_host import open_channel
from gateway.problems import ProblemError, problem_from_rpc_error, problem_response
from gateway.request_context import RequestContextMiddleware
from gateway.routes import router
from gateway.settings import GatewaySettings

_LOGGER = logging.getLogger(__name__)


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway application for these settings."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        channel = open_channel(settings.ingest_addr)
        app.state.ingest_channel = channel
        app.state.ingest = ingest_pb2_grpc.IngestServiceStub(channel)
        yield
        await channel.close()

    app = FastAPI(
        title="DataPilot API",
        version="1.0.0",
        description="Upload a data file, get KPIs and AI insights. Errors are RFC 9457 problems.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(router)
    app.add_middleware(RequestContextMiddleware)

    @app.exception_handler(ProblemError)
    async def on_problem(_request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.detail)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def on_rpc_error(_request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ABORTED):
            _LOGGER.warning("upstream call failed: %s", exc.code().name)
        return problem_from_rpc_error(exc)

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
