"""Per-request context (request id, job id, tenant) carried through asyncio tasks by contextvars."""

from __future__ import annotations

import contextvars
import uuid

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
# The tenant a call acts for ("" = anonymous); set by the gateway from the API key.
tenant_var: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="")
# True until the first upstream call of an HTTP request has been made: that call carries the
# rate-limit charge, so that one HTTP request costs one token whatever it calls.
quota_pending_var: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "quota_pending", default=False
)

# True inside a served gRPC call: its tenant is the caller's (maybe none), never the default
# INTERNAL_TENANT of a service acting for itself.
serving_call_var: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "serving_call", default=False
)

REQUEST_ID_METADATA_KEY = "x-request-id"
TENANT_METADATA_KEY = "x-dp-tenant"
QUOTA_METADATA_KEY = "x-dp-quota"
INTERNAL_TOKEN_METADATA_KEY = "x-dp-internal-token"
RETRY_AFTER_METADATA_KEY = "retry-after"
# On an Upload call: the most bytes the upload can hold (the gateway's Content-Length), so that
# ingest reserves its spool for that rather than for MAX_UPLOAD_BYTES.
UPLOAD_SIZE_METADATA_KEY = "x-dp-upload-bytes"
# Initial metadata of an admitted Upload call: its absence means the call was refused (the
# status follows), so the caller never writes into a call that has already ended.
ADMITTED_METADATA = ("x-dp-admitted", "1")
# The tenant an internal caller (the worker) names to act on every tenant's jobs. A call that
# names no tenant at all is refused (fail closed); API-key tenants cannot contain '*'.
INTERNAL_TENANT = "*"


def new_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return uuid.uuid4().hex
