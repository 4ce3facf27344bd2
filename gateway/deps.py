"""FastAPI dependencies of the routes (settings, upstream stubs, deadlines); tests override them.

JobReadBatcher sends the job reads to ingest_svc: a GetJob each while the line is free, else
gathered into GetJobs. Under load a poll's cost was mostly the gRPC call itself (both ends' gRPC
core and asyncio glue, about two thirds of ingest's CPU per poll), not the read. So at most
MAX_IN_FLIGHT calls are out at once: a read arriving meanwhile waits for one of them to end
(or MAX_WAIT_SECONDS, whichever comes first), then goes out with every other read that waited,
in one GetJobs call (one HGETALL pipeline in ingest). A lone read is a GetJob exactly as before,
and no answer is ever reused: every read is made after its request arrived. A read GetJobs
leaves (missing, another tenant's, expired, rate-limited) and every read of a failed GetJobs call
is asked again with GetJob, which answers it, errors included, as it would have answered it
alone, within what is left of its deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import grpc
from datapilot.analysis.v1 import analysis_pb2_grpc
from datapilot.common.v1 import common_pb2
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fastapi import Depends, Request

from datapilot_runtime.context import INTERNAL_TOKEN_METADATA_KEY
from datapilot_runtime.grpc_host import open_plain_channel
from datapilot_runtime.interceptors import first_call_metadata, with_outgoing_metadata
from gateway.deadlines import deadline
from gateway.settings import GatewaySettings
from gateway.upload import serialize_upload_request

# Two calls out at once: while one travels, the next gathers the reads that arrive meanwhile.
MAX_IN_FLIGHT = 2
MAX_READS_PER_CALL = 64
# A read waits for the line at most this long: two slow calls (a GetJob that fails an expired
# job writes its error.json to the blob store, seconds in an S3 outage) hold up no other poll.
MAX_WAIT_SECONDS = 0.005


@dataclass
class _Waiting:
    read: ingest_pb2.JobRead
    deadline: float  # the event loop's clock
    # None: ask GetJob (the GetJobs call failed or never went out).
    answer: asyncio.Future[ingest_pb2.JobReadResult | None]


def _leave(answer: asyncio.Future[ingest_pb2.JobReadResult | None]) -> None:
    if not answer.done():
        answer.set_result(None)


class JobReadBatcher:
    """Reads job records through `get_job` (GetJob) and `get_jobs` (GetJobs) stub methods."""

    def __init__(
        self, get_job: Callable[..., Any], get_jobs: Callable[..., Any], internal_token: str
    ) -> None:
        self._get_job = get_job
        self._get_jobs = get_jobs
        self._token = internal_token
        self._in_flight = 0
        self._waiting: list[_Waiting] = []
        self._calls: set[asyncio.Task[None]] = set()  # GetJobs calls, referenced until done
        self._overdue: asyncio.TimerHandle | None = None  # sends the waiting reads regardless
        self._batch_metadata = (
            ((INTERNAL_TOKEN_METADATA_KEY, internal_token),) if internal_token else ()
        )

    async def read(
        self, job_id: str, tenant: str, request_id: str, traceparent: str, seconds: float
    ) -> common_pb2.Job:
        """The tenant's job, or the AioRpcError GetJob raises for it, within `seconds`."""
        if self._in_flight < MAX_IN_FLIGHT:
            return await self._one(job_id, tenant, request_id, traceparent, seconds, True)
        loop = asyncio.get_running_loop()
        waiting = _Waiting(
            ingest_pb2.JobRead(
                job_id=job_id, tenant=tenant, request_id=request_id, traceparent=traceparent
            ),
            loop.time() + seconds,
            loop.create_future(),
        )
        self._waiting.append(waiting)
        if self._overdue is None:
            self._overdue = loop.call_later(MAX_WAIT_SECONDS, self._dispatch, True)
        # A read whose deadline passes while it waits for the line asks GetJob (which then
        # answers DEADLINE_EXCEEDED at once), instead of waiting on the calls ahead of it.
        expiry = loop.call_at(waiting.deadline, _leave, waiting.answer)
        try:
            result = await waiting.answer
        finally:
            expiry.cancel()
        if result is not None and result.HasField("job"):
            return result.job
        remaining = max(0.0, waiting.deadline - loop.time())
        charge = result is None or not result.charged
        return await self._one(job_id, tenant, request_id, traceparent, remaining, charge)

    async def _one(
        self,
        job_id: str,
        tenant: str,
        request_id: str,
        traceparent: str,
        seconds: float,
        charge: bool,
    ) -> common_pb2.Job:
        self._in_flight += 1
        try:
            metadata = first_call_metadata(
                request_id, tenant, self._token, traceparent, charge=charge
            )
            reply: ingest_pb2.GetJobResponse = await self._get_job(
                ingest_pb2.GetJobRequest(job_id=job_id), timeout=seconds, metadata=metadata
            )
            return reply.job
        finally:
            self._in_flight -= 1
            self._dispatch()

    def _dispatch(self, overdue: bool = False) -> None:
        """Send the reads that wait, as many calls as the line allows (all of them when they
        have waited MAX_WAIT_SECONDS)."""
        if overdue:
            self._overdue = None
        while self._waiting and (overdue or self._in_flight < MAX_IN_FLIGHT):
            batch = [w for w in self._waiting[:MAX_READS_PER_CALL] if not w.answer.done()]
            del self._waiting[:MAX_READS_PER_CALL]  # done: its client went away
            if batch:
                self._in_flight += 1
                task = asyncio.ensure_future(self._many(batch))
                self._calls.add(task)
                task.add_done_callback(self._calls.discard)
        if not self._waiting and self._overdue is not None:
            self._overdue.cancel()
            self._overdue = None

    async def _many(self, batch: list[_Waiting]) -> None:
        results: list[ingest_pb2.JobReadResult | None] = [None] * len(batch)
        try:
            timeout = max(0.0, min(w.deadline for w in batch) - asyncio.get_running_loop().time())
            reply: ingest_pb2.GetJobsResponse = await self._get_jobs(
                ingest_pb2.GetJobsRequest(reads=[w.read for w in batch]),
                timeout=timeout,
                metadata=self._batch_metadata,
            )
            if len(reply.results) == len(batch):
                results = list(reply.results)
        except Exception:
            pass  # each read asks GetJob, which answers with its own error (or its job)
        finally:
            self._in_flight -= 1
            for waiting, result in zip(batch, results, strict=True):
                if not waiting.answer.done():
                    waiting.answer.set_result(result)
            self._dispatch()


class Upstreams:
    """The gRPC channels to ingest_svc and analysis_svc and their stubs, opened once per app."""

    def __init__(
        self,
        ingest_channel: grpc.aio.Channel,
        analysis_channel: grpc.aio.Channel,
        internal_token: str = "",
    ) -> None:
        self.ingest_channel = ingest_channel
        self.analysis_channel = analysis_channel
        # The stubs add the metadata themselves: no client interceptor on the hot path.
        ingest = ingest_pb2_grpc.IngestServiceStub(ingest_channel)
        # Upload also takes chunk messages already serialised (upload.ChunkMessages).
        ingest.Upload = ingest_channel.stream_unary(
            f"/{ingest_pb2.DESCRIPTOR.services_by_name['IngestService'].full_name}/Upload",
            request_serializer=serialize_upload_request,
            response_deserializer=ingest_pb2.UploadResponse.FromString,
        )
        self.ingest = with_outgoing_metadata(ingest, internal_token)
        self.analysis = with_outgoing_metadata(
            analysis_pb2_grpc.AnalysisServiceStub(analysis_channel), internal_token
        )
        # The job reads (middleware.JobReads) pass their metadata themselves.
        plain = ingest_pb2_grpc.IngestServiceStub(ingest_channel)
        self.job_reads = JobReadBatcher(plain.GetJob, plain.GetJobs, internal_token)

    @classmethod
    def open(cls, settings: GatewaySettings) -> Upstreams:
        token = settings.internal_auth_token.get_secret_value()
        return cls(
            open_plain_channel(settings.ingest_addr, settings),
            open_plain_channel(settings.analysis_addr, settings),
            token,
        )

    async def close(self) -> None:
        await self.ingest_channel.close()
        await self.analysis_channel.close()


async def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


async def get_upstreams(request: Request) -> Upstreams:
    upstreams: Upstreams = request.app.state.upstreams
    return upstreams


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
UpstreamsDep = Annotated[Upstreams, Depends(get_upstreams)]


async def get_ingest(upstreams: UpstreamsDep) -> ingest_pb2_grpc.IngestServiceStub:
    return upstreams.ingest


async def get_analysis(upstreams: UpstreamsDep) -> analysis_pb2_grpc.AnalysisServiceStub:
    return upstreams.analysis


async def read_deadline(request: Request, settings: SettingsDep) -> float:
    """The gRPC timeout of a read route: READ_DEADLINE_SECONDS, or less if the client asks."""
    return deadline(request, settings.read_deadline_seconds)


IngestStubDep = Annotated[ingest_pb2_grpc.IngestServiceStub, Depends(get_ingest)]
AnalysisStubDep = Annotated[analysis_pb2_grpc.AnalysisServiceStub, Depends(get_analysis)]
ReadDeadlineDep = Annotated[float, Depends(read_deadline)]
