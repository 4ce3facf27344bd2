"""The OpenAPI document (every error a documented problem+json) and its docs pages.

The docs pages (/docs Swagger UI, /redoc) load their scripts and styles from the gateway itself,
from the pinned fastapi-offline package: FastAPI's defaults load them from a CDN, a blank page
in a cluster without internet access.
"""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS_PATH = "/docs-assets"
_ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details, with a stable machine `code` and the request id.",
    "required": ["type", "title", "status", "detail", "code", "requestId"],
    "properties": {
        "type": {"type": "string", "example": "urn:datapilot:problem:not_found"},
        "title": {"type": "string", "example": "Not Found"},
        "status": {"type": "integer", "example": 404},
        "detail": {"type": "string", "example": "job '0f8c…' not found"},
        "code": {"type": "string", "example": "not_found"},
        "requestId": {"type": ["string", "null"], "example": "aac97122f0bf49b3a7ee0b7f9c1e4bb2"},
    },
}
EXAMPLE_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    404: "not_found",
    409: "job_not_cancellable",
    413: "payload_too_large",
    415: "unsupported_file_type",
    422: "idempotency_key_reused",
    429: "rate_limited",
    499: "cancelled",
    500: "internal",
    503: "unavailable",
    504: "deadline_exceeded",
}


def _problem_response(status: int) -> dict[str, Any]:
    title = "Client Closed Request" if status == 499 else HTTPStatus(status).phrase
    code = EXAMPLE_CODES.get(status, "error")
    headers: dict[str, Any] = {}
    if status in (429, 503):  # rate_limited, overloaded
        headers["Retry-After"] = {"schema": {"type": "integer"}, "description": "Seconds to wait"}
    if status == 401:
        headers["WWW-Authenticate"] = {"schema": {"type": "string"}}
    response: dict[str, Any] = {
        "description": title,
        "content": {
            "application/problem+json": {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "example": {
                    "type": f"urn:datapilot:problem:{code}",
                    "title": title,
                    "status": status,
                    "detail": title,
                    "code": code,
                    "requestId": "aac97122f0bf49b3a7ee0b7f9c1e4bb2",
                },
            }
        },
    }
    if headers:
        response["headers"] = headers
    return response


def install_openapi(app: FastAPI, error_statuses: dict[str, list[int]]) -> None:
    """Replace FastAPI's 422 validation responses with the gateway's documented problems."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status in error_statuses.get(f"{method.upper()} {path}", []):
                    responses[str(status)] = _problem_response(status)
                responses["default"] = _problem_response(500) | {"description": "Other problems"}
        app.openapi_schema = document
        return document

    app.openapi = build  # type: ignore[method-assign]


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with their assets served from DOCS_ASSETS_PATH.

    The app is made with docs_url=None and redoc_url=None (FastAPI's pages point at a CDN).
    """
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=_ASSETS_DIR), name="docs-assets")
    title = f"{app.title} - docs"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=title,
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=title,
            redoc_js_url=f"{DOCS_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
