"""Runs one job: processing, download, KPIs, insights, result.json, completed (or failed)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import grpc
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from datapilot.llm.v1 import llm_pb2, llm_pb2_grpc

from analysis_svc.engine import analyze_file
from analysis_svc.input_fetch import InputTooLarge, fetched_input
from analysis_svc.kpis import SCHEMA_VERSION
from analysis_svc.settings import AnalysisSettings
from analysis_svc.table_reader import InvalidInput
from datapilot_runtime import artifacts
from datapilot_runtime.context import job_id_var
from datapilot_runtime.job_store import JobRecord, JobStore, Status

_LOGGER = logging.getLogger(__name__)
_SOURCE_NAMES = {
    llm_pb2.INSIGHT_SOURCE_LLM: "llm",
    llm_pb2.INSIGHT_SOURCE_FALLBACK: "fallback",
    llm_pb2.INSIGHT_SOURCE_MIXED: "mixed",
}


class JobFailure(Exception):
    """Ends a job as failed with a stable error code and a message for a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def result_url(job_id: str) -> str:
    """Where the gateway serves a completed job's result.json."""
    return f"/api/jobs/{job_id}/result"


class JobRunner:
    """Takes a queued job to a terminal state; every state change is a compare-and-set."""

    def __init__(
        self,
        settings: AnalysisSettings,
        jobs: JobStore,
        ingest: ingest_pb2_grpc.IngestServiceStub,
        llm: llm_pb2_grpc.LlmServiceStub,
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._ingest = ingest
        self._llm = llm

    async def run(self, job_id: str) -> None:
        """Run the job if it is still queued; returns when it is terminal (or not ours)."""
        job_id_var.set(job_id)
        record = await self._jobs.get(job_id)
        if record is None or record.status is not Status.QUEUED:
            _LOGGER.info("skipping job that is not queued")
            return
        started = time.time()
        claim = await self._jobs.transition(
            job_id,
            (Status.QUEUED,),
            Status.PROCESSING,
            {"started_at": started, "attempt": record.attempt + 1},
        )
        if not claim.applied:
            return
        _LOGGER.info("job processing")
        try:
            async with asyncio.timeout_at(self._loop_deadline(record.timeout_at)):
                await self._process(record)
        except TimeoutError:
            await self._fail(job_id, "timeout", "The job did not finish before its deadline.")
        except JobFailure as failure:
            await self._fail(job_id, failure.code, failure.message)
        except Exception:
            _LOGGER.exception("job failed unexpectedly")
            await self._fail(
                job_id, "processing_error", "An unexpected error stopped the analysis."
            )

    @staticmethod
    def _loop_deadline(timeout_at: float) -> float:
        return asyncio.get_running_loop().time() + max(0.0, timeout_at - time.time())

    @staticmethod
    def _remaining(timeout_at: float) -> float:
        return max(0.001, timeout_at - time.time())

    async def _process(self, record: JobRecord) -> None:
        job_id = record.job_id
        await self._jobs.set_progress(job_id, 10)
        try:
            async with fetched_input(
                self._ingest,
                job_id,
                rpc_timeout=self._remaining(record.timeout_at),
                max_bytes=self._settings.max_upload_bytes,
                work_dir=self._settings.analysis_work_dir,
            ) as path:
                await self._jobs.set_progress(job_id, 30)
                if self._settings.simulated_slow_processing_seconds:
                    await asyncio.sleep(self._settings.simulated_slow_processing_seconds)
                report = await asyncio.to_thread(analyze_file, path, record.filename)
        except (InvalidInput, InputTooLarge) as exc:
            raise JobFailure("invalid_input", str(exc)) from exc
        except grpc.aio.AioRpcError as exc:
            raise JobFailure(
                "blob_download_failed", f"The uploaded file could not be read ({exc.code().name})."
            ) from exc
        await self._jobs.set_progress(job_id, 60)
        insights = await self._insights(report, record.timeout_at)
        await self._jobs.set_progress(job_id, 85)
        document = {
            "jobId": job_id,
            "schemaVersion": SCHEMA_VERSION,
            "file": {
                "filename": record.filename,
                "sizeBytes": record.size_bytes,
                "sha256": record.sha256,
            },
            "kpis": report,
            **insights,
        }
        current = await self._jobs.get(job_id)
        if current is None or current.status is not Status.PROCESSING:
            _LOGGER.info("job left processing before publishing; no result written")
            return
        await self._put_artifact(job_id, ingest_pb2.BLOB_KIND_RESULT, document, record.timeout_at)
        done = await self._jobs.transition(
            job_id,
            (Status.PROCESSING,),
            Status.COMPLETED,
            {"finished_at": time.time(), "result_url": result_url(job_id)},
        )
        _LOGGER.info("job completed" if done.applied else "job was no longer processing")

    async def _insights(self, report: dict[str, Any], timeout_at: float) -> dict[str, Any]:
        try:
            response = await self._llm.GenerateInsights(
                llm_pb2.GenerateInsightsRequest(kpi_report_json=json.dumps(report).encode()),
                timeout=self._remaining(timeout_at),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise TimeoutError from exc
            raise JobFailure(
                "insights_unavailable", f"Insights could not be generated ({exc.code().name})."
            ) from exc
        return {
            "insights": [
                {
                    "title": i.title,
                    "text": i.text,
                    "evidence": list(i.evidence),
                    "severity": i.severity,
                    "source": _SOURCE_NAMES.get(i.source, "fallback"),
                }
                for i in response.insights
            ],
            "insightsSource": _SOURCE_NAMES.get(response.source, "fallback"),
            "model": response.model,
        }

    async def _put_artifact(
        self,
        job_id: str,
        kind: ingest_pb2.BlobKind,
        document: dict[str, Any],
        timeout_at: float,
    ) -> None:
        try:
            await self._ingest.PutArtifact(
                ingest_pb2.PutArtifactRequest(
                    job_id=job_id, kind=kind, content=json.dumps(document, indent=2).encode()
                ),
                timeout=self._remaining(timeout_at),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise TimeoutError from exc
            raise JobFailure(
                "blob_upload_failed", f"The result could not be stored ({exc.code().name})."
            ) from exc

    async def _fail(self, job_id: str, code: str, message: str) -> None:
        """error.json first (while the job is still ours), then the failed state."""
        now = time.time()
        current = await self._jobs.get(job_id)
        if current is None or current.status is not Status.PROCESSING:
            return
        try:
            await self._ingest.PutArtifact(
                ingest_pb2.PutArtifactRequest(
                    job_id=job_id,
                    kind=ingest_pb2.BLOB_KIND_ERROR,
                    content=artifacts.error_document(job_id, code, message, now),
                ),
                timeout=30,
            )
        except grpc.aio.AioRpcError:
            _LOGGER.exception("error.json could not be stored")
        await self._jobs.transition(
            job_id,
            (Status.PROCESSING,),
            Status.FAILED,
            {"finished_at": now, "error": code, "error_message": message},
        )
        _LOGGER.info("job failed", extra={"error_code": code})
