"""AnalysisService.Analyze: the KPI report of a job's stored input, for internal callers."""

from __future__ import annotations

import json

import grpc
from datapilot.analysis.v1 import analysis_pb2, analysis_pb2_grpc
from datapilot.ingest.v1 import ingest_pb2_grpc

from analysis_svc.engine import SCHEMA_VERSION
from analysis_svc.jobs.input_fetch import InputTooLarge, fetched_input
from analysis_svc.sandbox.pool import AnalysisRefused, run_in_child
from analysis_svc.settings import AnalysisSettings
from datapilot_runtime.artifacts import JOB_ID_RE
from datapilot_runtime.context import (
    QUOTA_METADATA_KEY,
    RETRY_AFTER_METADATA_KEY,
    quota_pending_var,
)
from datapilot_runtime.error_codes import ErrorCode, parse
from datapilot_runtime.grpc_errors import abort, error_code_of, trailing_value
from datapilot_runtime.report.options import InvalidOptions, parse_options

# What an `overloaded` caller is told to wait: an analysis of a typical file takes seconds.
OVERLOADED_RETRY_AFTER_SECONDS = 2


class AnalysisServicer(analysis_pb2_grpc.AnalysisServiceServicer):  # type: ignore[misc]
    """Downloads the input through ingest_svc and computes its KPI report.

    At most ANALYZE_MAX_INFLIGHT calls run or wait for a child at once; one more is refused
    `overloaded` at once, so that a burst queues nowhere unbounded.
    """

    def __init__(
        self, settings: AnalysisSettings, ingest: ingest_pb2_grpc.IngestServiceStub
    ) -> None:
        self._settings = settings
        self._ingest = ingest
        self._inflight = 0

    async def Analyze(
        self, request: analysis_pb2.AnalyzeRequest, context: grpc.aio.ServicerContext
    ) -> analysis_pb2.AnalyzeResponse:
        if self._inflight >= self._settings.analyze_max_inflight:
            await abort(
                context,
                ErrorCode.OVERLOADED,
                f"analysis_svc already runs {self._settings.analyze_max_inflight} analyses "
                "(ANALYZE_MAX_INFLIGHT); retry shortly.",
                trailing=((RETRY_AFTER_METADATA_KEY, str(OVERLOADED_RETRY_AFTER_SECONDS)),),
            )
        self._inflight += 1
        try:
            return await self._analyze(request, context)
        finally:
            self._inflight -= 1

    async def _analyze(
        self, request: analysis_pb2.AnalyzeRequest, context: grpc.aio.ServicerContext
    ) -> analysis_pb2.AnalyzeResponse:
        if not JOB_ID_RE.match(request.job_id):
            await abort(context, ErrorCode.NOT_FOUND, "job not found")
        try:
            options = parse_options(request.options_json)
        except InvalidOptions as exc:
            await abort(context, ErrorCode.INVALID_OPTIONS, f"Invalid options: {exc}.")
        # The gateway's rate-limit charge came with this call: the input download carries it on
        # to ingest_svc, which holds the tenant's bucket (so /analyze costs a token as uploads do).
        charged = any(
            key == QUOTA_METADATA_KEY and value == "1"
            for key, value in context.invocation_metadata() or ()
        )
        quota_pending_var.set(charged)
        try:
            async with fetched_input(
                self._ingest,
                request.job_id,
                rpc_timeout=context.time_remaining(),
                max_bytes=self._settings.max_upload_bytes,
                work_dir=self._settings.analysis_work_dir,
            ) as path:
                output = await run_in_child(
                    path,
                    "",
                    max_memory_mb=self._settings.analysis_max_memory_mb,
                    max_cpu_seconds=self._settings.analysis_max_cpu_seconds,
                    slow_seconds=self._settings.simulated_slow_processing_seconds,
                    roles=options.roles,
                )
        except grpc.aio.AioRpcError as exc:
            # Pass ingest's verdict on: NOT_FOUND also covers another tenant's job.
            code = parse(error_code_of(exc)) or ErrorCode.INPUT_UNAVAILABLE
            message = exc.details() or "The input could not be read."
            retry_after = trailing_value(exc, RETRY_AFTER_METADATA_KEY)
            trailing = ((RETRY_AFTER_METADATA_KEY, retry_after),) if retry_after else ()
            await abort(context, code, message, status=exc.code(), trailing=trailing)
        except AnalysisRefused as exc:
            await abort(context, exc.code, str(exc))
        except InputTooLarge as exc:
            await abort(context, ErrorCode.INVALID_INPUT, str(exc))
        finally:
            quota_pending_var.set(False)
        return analysis_pb2.AnalyzeResponse(
            kpi_report_json=json.dumps(output.report).encode(), schema_version=SCHEMA_VERSION
        )
