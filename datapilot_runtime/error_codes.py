"""Every stable error code: what it means, and its gRPC and HTTP status where it has them.

A code is a compatibility contract: it is a failed job's `error` (and error.json's), a gRPC
error's `dp-error-code` trailing metadata, and a problem+json `code`. The README's error table
is rendered from this catalogue (tests/unit/test_error_codes.py fails when they drift).
Pure data, without grpc: the analysis children import it (`grpc_errors` turns a code's status
name into a `grpc.StatusCode`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# grpc-gateway runtime/errors.go HTTPStatusFromCode, by gRPC status name; CANCELLED is 499
# (client closed request).
GRPC_TO_HTTP: dict[str, int] = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}


class ErrorCode(enum.StrEnum):
    """The stable codes; CATALOGUE says what each means and how it travels."""

    # A failed job's `error` (the first also answers the Analyze RPC, the last two the API).
    INVALID_INPUT = "invalid_input"
    TIMEOUT = "timeout"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    ANALYSIS_LIMIT_EXCEEDED = "analysis_limit_exceeded"
    WORKER_LOST = "worker_lost"
    BLOB_DOWNLOAD_FAILED = "blob_download_failed"
    BLOB_UPLOAD_FAILED = "blob_upload_failed"
    INSIGHTS_UNAVAILABLE = "insights_unavailable"
    PROCESSING_ERROR = "processing_error"
    WORKER_SHUTDOWN = "worker_shutdown"
    # gRPC errors of the services (the gateway turns them into problems).
    NOT_FOUND = "not_found"
    UNAUTHENTICATED = "unauthenticated"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    JOB_NOT_CANCELLABLE = "job_not_cancellable"
    INVALID_OPTIONS = "invalid_options"
    INVALID_PAGE_SIZE = "invalid_page_size"
    INVALID_PAGE_TOKEN = "invalid_page_token"
    STORE_UNAVAILABLE = "store_unavailable"
    BLOB_STORE_UNAVAILABLE = "blob_store_unavailable"
    BAD_UPLOAD = "bad_upload"
    BAD_KIND = "bad_kind"
    LEASE_LOST = "lease_lost"
    INPUT_UNAVAILABLE = "input_unavailable"
    INVALID_REPORT = "invalid_report"
    # gRPC statuses that arrive without a code: the gateway names them after the status.
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    CANCELLED = "cancelled"
    # Problems the gateway answers by itself.
    INVALID_REQUEST = "invalid_request"
    MISSING_FILE = "missing_file"
    MALFORMED_MULTIPART = "malformed_multipart"
    TRUNCATED_UPLOAD = "truncated_upload"
    REQUEST_TIMEOUT = "request_timeout"
    BAD_IDEMPOTENCY_KEY = "bad_idempotency_key"
    INVALID_TIMEOUT = "invalid_timeout"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNSUPPORTED_FILE_TYPE = "unsupported_file_type"
    NOT_COMPLETED = "not_completed"
    NOT_FAILED = "not_failed"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HTTP_ERROR = "http_error"
    CLIENT_CLOSED_REQUEST = "client_closed_request"
    NOT_READY = "not_ready"
    TOO_MANY_STREAMS = "too_many_streams"
    INTERNAL = "internal"


@dataclass(frozen=True)
class CodeInfo:
    """One code's meaning; `job` if it can be a job's error; its statuses where it has them."""

    meaning: str
    grpc: str | None = None  # the name of its grpc.StatusCode
    http: int | None = None
    job: bool = False
    retry_after: bool = False  # the answer carries Retry-After: retrying later can succeed


_INVALID, _UNAVAILABLE = "INVALID_ARGUMENT", "UNAVAILABLE"
C = ErrorCode
CATALOGUE: dict[ErrorCode, CodeInfo] = {
    C.INVALID_INPUT: CodeInfo(
        "the file is empty, binary, not CSV/XLSX/JSON/Parquet, has no data rows, no or more than "
        "2,000 columns, too many ragged rows, an undecodable encoding, JSON nested too deeply, "
        "an XLSX zip bomb, … (the message says which)",
        _INVALID,
        400,
        job=True,
    ),
    C.INVALID_OPTIONS: CodeInfo(
        "the `options` field of an upload (or of the internal `Analyze` / `Upload` RPCs) is "
        "refused before any job exists; the `detail` says why (see Options above)",
        _INVALID,
        400,
    ),
    C.TIMEOUT: CodeInfo("the job passed its `timeoutAt`", job=True),
    C.RESOURCE_EXHAUSTED: CodeInfo(
        "the analysis needed more memory than `ANALYSIS_MAX_MEMORY_MB` (not retryable: the "
        "same file needs the same memory)",
        "RESOURCE_EXHAUSTED",
        422,
        job=True,
    ),
    C.ANALYSIS_LIMIT_EXCEEDED: CodeInfo(
        "the analysis used more CPU than `ANALYSIS_MAX_CPU_SECONDS`, or the file is over a "
        "structural bound (columns, JSON nesting, Parquet row groups); the message names the "
        "limit and its value (not retryable)",
        "RESOURCE_EXHAUSTED",
        422,
        job=True,
    ),
    C.WORKER_LOST: CodeInfo(
        "the job's worker died on each of its `JOB_MAX_ATTEMPTS` deliveries (a poison job)",
        job=True,
    ),
    C.BLOB_DOWNLOAD_FAILED: CodeInfo(
        "the stored upload is gone, unreadable or damaged (e.g. an S3 bucket that came back "
        "empty, or a blob whose bytes no longer match the sha256 taken at upload)",
        job=True,
    ),
    C.BLOB_UPLOAD_FAILED: CodeInfo(
        "the blob store refused to store the result (an outage is waited out instead); also a "
        "503 problem at upload",
        _UNAVAILABLE,
        503,
        job=True,
    ),
    C.INSIGHTS_UNAVAILABLE: CodeInfo(
        "llm_svc answered with an error (the LLM itself failing is not an error: insights fall "
        "back; llm_svc being down is waited out)",
        job=True,
    ),
    C.PROCESSING_ERROR: CodeInfo(
        "anything unexpected (details are in the worker's log, not in the message)", job=True
    ),
    C.WORKER_SHUTDOWN: CodeInfo(
        "the worker was stopped and its grace period ended before the job did", job=True
    ),
    C.NOT_FOUND: CodeInfo("no such job (or another tenant's), blob or route", "NOT_FOUND", 404),
    C.UNAUTHENTICATED: CodeInfo(
        "no valid API key (gateway) or internal token (between services)",
        "UNAUTHENTICATED",
        401,
    ),
    C.RATE_LIMITED: CodeInfo(
        "the tenant's `RATE_LIMIT_PER_MINUTE` is used up (`Retry-After` says when to retry)",
        "RESOURCE_EXHAUSTED",
        429,
        retry_after=True,
    ),
    C.OVERLOADED: CodeInfo(
        "the service is at capacity: analysis_svc already runs or queues `ANALYZE_MAX_INFLIGHT` "
        "analyses, or ingest's upload spool (`INGEST_SPOOL_MAX_BYTES`) is full (`Retry-After` "
        "says when to retry)",
        _UNAVAILABLE,
        503,
        retry_after=True,
    ),
    C.PAYLOAD_TOO_LARGE: CodeInfo("the file is larger than `MAX_UPLOAD_BYTES`", _INVALID, 413),
    C.IDEMPOTENCY_KEY_REUSED: CodeInfo(
        "the `Idempotency-Key` was used with a different file, or names an expired job",
        "FAILED_PRECONDITION",
        422,
    ),
    C.JOB_NOT_CANCELLABLE: CodeInfo("the job already completed or failed", "ABORTED", 409),
    C.INVALID_PAGE_SIZE: CodeInfo("a job list page size outside 1-100", _INVALID, 400),
    C.INVALID_PAGE_TOKEN: CodeInfo("a job list cursor this service did not issue", _INVALID, 400),
    C.STORE_UNAVAILABLE: CodeInfo("the job store (Redis) is unreachable", _UNAVAILABLE, 503),
    C.BLOB_STORE_UNAVAILABLE: CodeInfo(
        "the blob store is unreachable while reading or deleting", _UNAVAILABLE, 503
    ),
    C.BAD_UPLOAD: CodeInfo(
        "an Upload stream broke the protocol (metadata first, chunks of at most 1 MiB)",
        _INVALID,
        400,
    ),
    C.BAD_KIND: CodeInfo("an unknown or unwritable blob kind", _INVALID, 400),
    C.LEASE_LOST: CodeInfo(
        "a result from a worker that no longer holds the job (internal; the result is dropped)",
        "FAILED_PRECONDITION",
        400,
    ),
    C.INPUT_UNAVAILABLE: CodeInfo(
        "Analyze could not read the job's input through ingest_svc (with ingest's status)",
        _UNAVAILABLE,
        503,
    ),
    C.INVALID_REPORT: CodeInfo(
        "GenerateInsights got a KPI report that is not a JSON object (internal)", _INVALID, 400
    ),
    C.UNAVAILABLE: CodeInfo("a backend service is unreachable", _UNAVAILABLE, 503),
    C.DEADLINE_EXCEEDED: CodeInfo("the request's deadline passed", "DEADLINE_EXCEEDED", 504),
    C.CANCELLED: CodeInfo("the call was cancelled", "CANCELLED", 499),
    C.INVALID_REQUEST: CodeInfo("a query or path parameter is missing or invalid", http=400),
    C.MISSING_FILE: CodeInfo("the multipart field `file` is missing", http=400),
    C.MALFORMED_MULTIPART: CodeInfo("the multipart body cannot be parsed", http=400),
    C.TRUNCATED_UPLOAD: CodeInfo("the upload ended before the file did", http=400),
    C.REQUEST_TIMEOUT: CodeInfo(
        "the upload's body took longer than `UPLOAD_DEADLINE_SECONDS` or arrived slower than "
        "`UPLOAD_MIN_BYTES_PER_SECOND`",
        http=408,
    ),
    C.BAD_IDEMPOTENCY_KEY: CodeInfo(
        "`Idempotency-Key` is not 1-255 printable characters", http=400
    ),
    C.INVALID_TIMEOUT: CodeInfo("a malformed `Grpc-Timeout` or `Request-Timeout` header", http=400),
    C.UNSUPPORTED_MEDIA_TYPE: CodeInfo("the upload is not `multipart/form-data`", http=415),
    C.UNSUPPORTED_FILE_TYPE: CodeInfo(
        "the file is not CSV, XLSX, JSON or Parquet (judged by its content)", http=415
    ),
    C.NOT_COMPLETED: CodeInfo("the job has no `result.json` (it is not completed)", http=409),
    C.NOT_FAILED: CodeInfo("the job has no `error.json` (it is not failed)", http=409),
    C.METHOD_NOT_ALLOWED: CodeInfo("the route does not take this HTTP method", http=405),
    C.HTTP_ERROR: CodeInfo("any other HTTP error, with the status it has"),
    C.CLIENT_CLOSED_REQUEST: CodeInfo("the client disconnected during its upload", http=499),
    C.NOT_READY: CodeInfo("`/readyz`: a service the gateway needs is not serving", http=503),
    C.TOO_MANY_STREAMS: CodeInfo(
        "the tenant already has `EVENTS_MAX_STREAMS_PER_TENANT` job event streams open on this "
        "gateway (`Retry-After` says when to retry)",
        http=429,
    ),
    C.INTERNAL: CodeInfo("an unexpected error (details only in the logs)", http=500),
}
del C
if set(CATALOGUE) != set(ErrorCode):  # every code has its entry, checked at import
    raise ImportError(f"error codes without an entry: {sorted(set(ErrorCode) - set(CATALOGUE))}")


def parse(value: str) -> ErrorCode | None:
    """The catalogue's code for a string from the wire, or None if it is not one."""
    try:
        return ErrorCode(value)
    except ValueError:
        return None
