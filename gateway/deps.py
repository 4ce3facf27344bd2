"""FastAPI dependencies of the routes (settings, upstream stubs, deadlines); tests override them."""

from __future__ import annotations

from typing import Annotated

import grpc
from datapilot.analysis.v1 import analysis_pb2_grpc
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fastapi import Depends, Request

from datapilot_runtime.grpc_host import open_plain_channel
from datapilot_runtime.interceptors import with_outgoing_metadata
from gateway.deadlines import deadline
from gateway.read_batch import JobReadBatcher
from gateway.settings import GatewaySettings
from gateway.upload import serialize_upload_request


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
