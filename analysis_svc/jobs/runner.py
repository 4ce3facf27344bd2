"""Runs one job: claim, download, analysis (child process), insights, result.json, completed.

Every state change is a compare-and-set held under the delivery's lease token, so a worker that
lost its lease can no longer complete, fail or publish the job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import grpc
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc
from redis.exceptions import RedisError

from analysis_svc.engine import SCHEMA_VERSION
from analysis_svc.jobs.input_fetch import InputTooLarge, fetched_input
from analysis_svc.jobs.metrics import JOB_DURATION, JOBS_FINISHED
from analysis_svc.jobs.phase_spans import PhaseSpans
from analysis_svc.sandbox.pool import AnalysisRefused, run_in_child
from analysis_svc.settings import WorkerSettings
from datapilot_runtime import artifacts, tracing
from datapilot_runtime.context import job_id_var, request_id_var
from datapilot_runtime.error_codes import ErrorCode
from datapilot_runtime.grpc_errors import error_code_of
from datapilot_runtime.jobs.queue import JobQueue
from datapilot_runtime.jobs.store import ACTIVE, ClaimOutcome, JobRecord, JobStore, Status
from datapilot_runtime.report.options import parse_options

_LOGGER = logging.getLogger(__name__)
_SOURCE_NAMES = {
    llm_pb2.INSIGHT_SOURCE_LLM: "llm",
    llm_pb2.INSIGHT_SOURCE_FALLBACK: "fallback",
    llm_pb2.INSIGHT_SOURCE_MIXED: "mixed",
}
# Progress reached when each phase starts.
PHASE_PROGRESS = {
    "download": 5,
    "parse": 25,
    "profile": 40,
    "charts": 60,
    "insights": 70,
    "publish": 90,
}
ARTIFACT_DEADLINE_SECONDS = 30.0
# How long a failing job waits for the blob store to take its error.json before giving up.
ERROR_JSON_PATIENCE_SECONDS = 180.0


class TransientFault(Exception):
    """A dependency is unavailable for now; the job is retried, not failed."""


class JobFailure(Exception):
    """Ends a job as failed with a stable error code and a message for a person."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def result_url(job_id: str) -> str:
    """Where the gateway serves a completed job's result.json."""
    return f"/api/jobs/{job_id}/result"


class JobRunner:
    """Takes a job to a terminal state, or hands it back."""

    def __init__(
        self,
        settings: WorkerSettings,
        jobs: JobStore,
        queue: JobQueue,
        ingest: ingest_pb2_grpc.IngestServiceStub,
        llm: llm_pb2_grpc.LlmServiceStub,
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._queue = queue
        self._ingest = ingest
        self._llm = llm

    async def run(
        self, job_id: str, lease_token: str, *, take_over: bool, owner: str, message_id: str
    ) -> None:
        """Claim the job under `lease_token` and run it; returns when it needs no more work."""
        job_id_var.set(job_id)
        claim = await self._jobs.claim(
            job_id,
            lease_token,
            self._settings.job_max_attempts,
            take_over=take_over,
            owner=owner,
            message_id=message_id,
        )
        if claim.outcome is ClaimOutcome.EXHAUSTED:
            await self.fail_unowned(
                job_id,
                ErrorCode.WORKER_LOST,
                f"The job's worker was lost on each of its {claim.attempt} attempts.",
            )
            return
        if claim.outcome is not ClaimOutcome.CLAIMED:
            _LOGGER.info("job not claimable (%s)", claim.status or claim.outcome.value)
            return
        record = await self._jobs.get(job_id)
        if record is None:
            return
        if record.request_id:
            request_id_var.set(record.request_id)  # the upload's request id, end to end
        # The job's span joins the trace of the upload that created it (its stored traceparent).
        with tracing.tracer().start_as_current_span(
            "job",
            context=tracing.context_of(record.traceparent),
            kind=tracing.SpanKind.CONSUMER,
            attributes={
                "datapilot.job.id": job_id,
                "datapilot.job.attempt": claim.attempt,
                "datapilot.job.take_over": take_over,
                "datapilot.input.bytes": record.size_bytes,
            },
        ) as span:
            _LOGGER.info("job processing", extra={"attempt": claim.attempt, "take_over": take_over})
            final = await self._run_claimed(record, lease_token)
            if final is not None:
                span.set_attribute("datapilot.job.status", final.status.value)
                if final.status is Status.FAILED:
                    span.set_status(tracing.Status(tracing.StatusCode.ERROR, final.error))
                    span.set_attribute("error.type", final.error)

    async def _run_claimed(self, record: JobRecord, lease_token: str) -> JobRecord | None:
        """Run a claimed job to its end; returns its record then (None if it vanished)."""
        job_id = record.job_id
        final: JobRecord | None = None
        started = time.monotonic()
        try:
            async with asyncio.timeout_at(self._loop_deadline(record.timeout_at)):
                await self._process_through_outages(record, lease_token)
        except TimeoutError:
            await self._fail(
                record, lease_token, ErrorCode.TIMEOUT, "The job did not finish in time."
            )
        except JobFailure as failure:
            await self._fail(record, lease_token, failure.code, failure.message)
        except Exception:
            _LOGGER.exception("job failed unexpectedly")
            await self._fail(
                record,
                lease_token,
                ErrorCode.PROCESSING_ERROR,
                "An unexpected error stopped the analysis.",
            )
        finally:
            final = await self._jobs.get(job_id)
            if final is not None and final.status.terminal:
                JOB_DURATION.labels(final.status.value).observe(time.monotonic() - started)
        return final

    async def _process_through_outages(self, record: JobRecord, lease_token: str) -> None:
        """Run the job; an outage of Redis or of a service restarts it after a backoff.

        The job's deadline (the enclosing timeout) bounds the waiting: a dependency that does
        not come back in time ends the job as `timeout`, not as a misleading error.
        """
        outage = 0
        while True:
            try:
                await self._process(record, lease_token)
                return
            except (RedisError, TransientFault) as exc:
                outage += 1
                delay = self._settings.outage_backoff().delay(min(outage, 8))
                _LOGGER.warning(
                    "dependency unavailable (%s); retrying the job in %.2fs",
                    type(exc).__name__,
                    delay,
                    extra={"outage_retry": outage},
                )
                await asyncio.sleep(delay)

    @staticmethod
    def _loop_deadline(timeout_at: float) -> float:
        return asyncio.get_running_loop().time() + max(0.0, timeout_at - time.time())

    @staticmethod
    def _remaining(timeout_at: float) -> float:
        return max(0.001, timeout_at - time.time())

    async def _phase(self, job_id: str, phase: str) -> None:
        await self._jobs.set_progress(job_id, PHASE_PROGRESS[phase])

    async def _process(self, record: JobRecord, lease_token: str) -> None:
        phases = PhaseSpans()
        try:
            await self._process_phases(record, lease_token, phases)
        except BaseException as exc:
            phases.fail(exc)
            raise
        finally:
            phases.finish()

    async def _process_phases(
        self, record: JobRecord, lease_token: str, phases: PhaseSpans
    ) -> None:
        job_id = record.job_id

        async def child_phase(phase: str, started_ns: int) -> None:
            phases.child_phase(phase, started_ns)
            await self._phase(job_id, phase)

        phases.begin("download", {"datapilot.input.bytes": record.size_bytes})
        await self._phase(job_id, "download")
        try:
            async with fetched_input(
                self._ingest,
                job_id,
                rpc_timeout=self._remaining(record.timeout_at),
                max_bytes=self._settings.max_upload_bytes,
                work_dir=self._settings.analysis_work_dir,
            ) as path:
                output = await run_in_child(
                    path,
                    record.filename,
                    max_memory_mb=self._settings.analysis_max_memory_mb,
                    max_cpu_seconds=self._settings.analysis_max_cpu_seconds,
                    slow_seconds=self._settings.simulated_slow_processing_seconds,
                    on_phase=child_phase,
                    roles=parse_options(record.options_json).roles,
                )
        except AnalysisRefused as exc:
            raise JobFailure(exc.code, str(exc)) from exc
        except InputTooLarge as exc:
            raise JobFailure(ErrorCode.INVALID_INPUT, str(exc)) from exc
        except grpc.aio.AioRpcError as exc:
            raise self._rpc_failure(
                exc, ErrorCode.BLOB_DOWNLOAD_FAILED, "Upload unreadable"
            ) from exc
        dataset = output.report.get("dataset") or {}
        phases.child_done(
            output.finished_ns,
            {
                "datapilot.rows": int(dataset.get("rows", 0)),
                "datapilot.columns": int(dataset.get("columns", 0)),
            },
        )
        phases.begin("insights")
        await self._phase(job_id, "insights")
        insights = await self._insights(output.report, record.timeout_at)
        phases.annotate(
            {
                "datapilot.insights.source": str(insights["insightsSource"]),
                "datapilot.insights.count": len(insights["insights"]),
            }
        )
        await self._phase(job_id, "publish")
        document = {
            "jobId": job_id,
            "schemaVersion": SCHEMA_VERSION,
            "file": {
                "filename": record.filename,
                "sizeBytes": record.size_bytes,
                "sha256": record.sha256,
            },
            "kpis": output.report,
            "charts": output.charts,
            **insights,
        }
        content = json.dumps(document, indent=2).encode()
        phases.begin("publish", {"datapilot.result.bytes": len(content)})
        try:
            await self._ingest.PutArtifact(
                ingest_pb2.PutArtifactRequest(
                    job_id=job_id,
                    kind=ingest_pb2.BLOB_KIND_RESULT,
                    content=content,
                    lease_token=lease_token,
                ),
                timeout=self._remaining(record.timeout_at),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.FAILED_PRECONDITION:
                _LOGGER.info("job is no longer ours; result not published")
                return
            raise self._rpc_failure(exc, ErrorCode.BLOB_UPLOAD_FAILED, "Result not stored") from exc
        done = await self._jobs.transition(
            job_id,
            (Status.PROCESSING,),
            Status.COMPLETED,
            {"finished_at": time.time(), "result_url": result_url(job_id)},
            lease_token=lease_token,
        )
        if done.applied:
            JOBS_FINISHED.labels(Status.COMPLETED.value, "").inc()
        _LOGGER.info("job completed" if done.applied else "job was no longer ours at completion")

    @staticmethod
    def _rpc_failure(exc: grpc.aio.AioRpcError, code: ErrorCode, text: str) -> BaseException:
        if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            return TimeoutError()
        if exc.code() is grpc.StatusCode.UNAVAILABLE:
            return TransientFault(f"{text} ({error_code_of(exc) or ErrorCode.UNAVAILABLE.value})")
        if exc.code() is grpc.StatusCode.DATA_LOSS:  # ingest's own words on a damaged blob
            return JobFailure(code, f"{text}: {exc.details()}")
        return JobFailure(code, f"{text} ({exc.code().name}).")

    async def _insights(self, report: dict[str, Any], timeout_at: float) -> dict[str, Any]:
        try:
            response = await self._llm.GenerateInsights(
                llm_pb2.GenerateInsightsRequest(kpi_report_json=json.dumps(report).encode()),
                timeout=self._remaining(timeout_at),
            )
        except grpc.aio.AioRpcError as exc:
            raise self._rpc_failure(exc, ErrorCode.INSIGHTS_UNAVAILABLE, "No insights") from exc
        return {
            "insights": [
                {
                    "title": i.title,
                    "text": i.text,
                    "evidence": list(i.evidence),
                    "severity": i.severity,
                    "source": _SOURCE_NAMES.get(i.source, "fallback"),
                    # The typed candidate it phrases (kpis.candidates), null when none.
                    "type": i.type or None,
                    "key": i.key or None,
                    "score": i.score if i.key else None,
                }
                for i in response.insights
            ],
            "insightsSource": _SOURCE_NAMES.get(response.source, "fallback"),
            "model": response.model,
        }

    async def _write_error(self, job_id: str, code: ErrorCode, message: str, now: float) -> None:
        """Store error.json, waiting out a blob-store outage for up to ERROR_JSON_PATIENCE."""
        request = ingest_pb2.PutArtifactRequest(
            job_id=job_id,
            kind=ingest_pb2.BLOB_KIND_ERROR,
            content=artifacts.error_document(job_id, code, message, now),
        )
        give_up = time.monotonic() + ERROR_JSON_PATIENCE_SECONDS
        outage = 0
        while True:
            try:
                await self._ingest.PutArtifact(request, timeout=ARTIFACT_DEADLINE_SECONDS)
                return
            except grpc.aio.AioRpcError as exc:
                outage += 1
                transient = exc.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                )
                delay = self._settings.outage_backoff().delay(min(outage, 8))
                if not transient or time.monotonic() + delay > give_up:
                    _LOGGER.error("error.json could not be stored (%s)", exc.code().name)
                    return
                _LOGGER.warning("error.json not stored yet (%s); retrying", exc.code().name)
                await asyncio.sleep(delay)

    async def _fail(
        self, record: JobRecord, lease_token: str, code: ErrorCode, message: str
    ) -> None:
        """error.json first (while the job is still ours), then the failed state."""
        now = time.time()
        current = await self._jobs.get(record.job_id)
        if current is None or current.status is not Status.PROCESSING:
            return
        if current.lease_token != lease_token:
            return
        await self._write_error(record.job_id, code, message, now)
        result = await self._jobs.transition(
            record.job_id,
            (Status.PROCESSING,),
            Status.FAILED,
            {"finished_at": now, "error": code, "error_message": message},
            lease_token=lease_token,
        )
        if result.applied:
            JOBS_FINISHED.labels(Status.FAILED.value, code).inc()
            _LOGGER.info("job failed", extra={"error_code": code})

    async def fail_unowned(self, job_id: str, code: ErrorCode, message: str) -> None:
        """Fail a job no live worker holds (attempts used up), with error.json."""
        now = time.time()
        await self._write_error(job_id, code, message, now)
        result = await self._jobs.transition(
            job_id,
            ACTIVE,
            Status.FAILED,
            {"finished_at": now, "error": code, "error_message": message},
        )
        if result.applied:
            JOBS_FINISHED.labels(Status.FAILED.value, code).inc()
            _LOGGER.warning("job failed", extra={"error_code": code})

    async def hand_back(self, job_id: str, lease_token: str, message_id: str) -> None:
        """On shutdown: requeue a running job, or fail it if it has no attempts left."""
        record = await self._jobs.get(job_id)
        if record is None or record.lease_token != lease_token:
            return
        if record.status is Status.PROCESSING and record.attempt >= self._settings.job_max_attempts:
            await self._fail(
                record,
                lease_token,
                ErrorCode.WORKER_SHUTDOWN,
                "The worker shut down before the job finished, on its last attempt.",
            )
            return
        if await self._queue.requeue(job_id, lease_token, message_id):
            _LOGGER.info("job handed back to the queue")
