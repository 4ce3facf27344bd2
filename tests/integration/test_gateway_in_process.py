"""The REST routes in process: the real app against real ingest_svc / analysis_svc servicers."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
import pytest
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from starlette.types import Message

from datapilot_runtime.grpc_host import open_channel
from datapilot_runtime.jobs.store import ACTIVE, Status
from devstack.processes import free_port
from gateway.app import create_app
from gateway.deps import Upstreams, get_ingest, get_upstreams
from gateway.metrics import HTTP_REQUESTS
from gateway.middleware import job_read_template
from tests.support.in_process import INTERNAL_TOKEN, InProcessGateway, in_process_gateway
from tests.support.servers import RunningServer

LIMIT = 64 * 1024
ACME = {"Authorization": "Bearer acme-key"}
BETA = {"X-API-Key": "beta-key"}
CSV = b"region,revenue\nNorth,10\nSouth,20\n"


@pytest.fixture(scope="module")
async def gw(
    redis_server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcessGateway]:
    # A database of its own, so that job listings hold only this module's jobs.
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/7"
    async with in_process_gateway(
        redis_url,
        tmp_path_factory.mktemp("gateway-in-process"),
        max_upload_bytes=LIMIT,
        api_keys="acme:acme-key,beta:beta-key",
    ) as gateway:
        await gateway.store.redis.flushdb()
        yield gateway


@pytest.fixture()
def http(gw: InProcessGateway) -> Iterator[httpx.AsyncClient]:
    yield gw.http
    gw.app.dependency_overrides.clear()


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:datapilot:problem:{code}"
    assert body["requestId"] == response.headers["x-request-id"]
    assert body["title"] and body["detail"]
    return body


async def upload(
    http: httpx.AsyncClient, content: bytes = CSV, **kwargs: object
) -> dict[str, object]:
    headers = {**ACME, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    response = await http.post(
        "/api/upload", files={"file": ("sales.csv", content, "text/csv")}, headers=headers
    )
    assert response.status_code == 202, response.text
    job: dict[str, object] = response.json()
    return job


async def finish(gw: InProcessGateway, job_id: str, kind: ingest_pb2.BlobKind) -> None:
    """Do what a worker does at the end of a job: claim it, store the artifact, go terminal."""
    token = f"test-worker/{job_id}"
    claim = await gw.store.claim(job_id, token, 3, take_over=False)
    assert claim.attempt == 1
    document = {"jobId": job_id, "kind": ingest_pb2.BlobKind.Name(kind)}
    await gw.internal.PutArtifact(
        ingest_pb2.PutArtifactRequest(
            job_id=job_id, kind=kind, content=json.dumps(document).encode(), lease_token=token
        ),
        timeout=10,
    )
    if kind == ingest_pb2.BLOB_KIND_RESULT:
        fields: dict[str, object] = {"result_url": f"/api/jobs/{job_id}/result"}
        to = Status.COMPLETED
    else:
        fields = {"error": "invalid_input", "error_message": "The file has no data rows."}
        to = Status.FAILED
    done = await gw.store.transition(
        job_id, ACTIVE, to, {**fields, "finished_at": time.time()}, lease_token=token
    )
    assert done.applied


async def test_upload_then_status_then_cancel(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/upload", files={"file": ("sales.csv", CSV, "text/csv")}, headers=ACME
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["progress"] == 0
    assert job["filename"] == "sales.csv" and job["sizeBytes"] == len(CSV)
    assert job["timeoutAt"] > job["createdAt"]
    assert response.headers["location"] == f"/api/job-status?jobId={job['jobId']}"
    assert response.headers["retry-after"] == "1"

    status = await http.get(response.headers["location"], headers=ACME)
    assert status.status_code == 200
    assert status.json() == job
    assert (await http.get(f"/api/jobs/{job['jobId']}", headers=ACME)).json() == job

    cancelled = await http.post("/api/cancel", params={"jobId": job["jobId"]}, headers=ACME)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finishedAt"] is not None
    again = await http.post("/api/cancel", params={"jobId": job["jobId"]}, headers=ACME)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"

    result = await http.get(f"/api/jobs/{job['jobId']}/result", headers=ACME)
    body = assert_problem(result, 409, "not_completed")
    assert body["detail"] == "The job is cancelled; it has no result document."
    assert_problem(
        await http.get(f"/api/jobs/{job['jobId']}/error", headers=ACME), 409, "not_failed"
    )


async def test_completed_job_streams_its_result_and_cannot_be_cancelled(
    gw: InProcessGateway, http: httpx.AsyncClient
) -> None:
    job = await upload(http)
    job_id = str(job["jobId"])
    await finish(gw, job_id, ingest_pb2.BLOB_KIND_RESULT)

    status = (await http.get("/api/job-status", params={"jobId": job_id}, headers=ACME)).json()
    assert status["status"] == "completed"
    assert status["resultUrl"] == f"/api/jobs/{job_id}/result"
    result = await http.get(status["resultUrl"], headers=ACME)
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json"
    assert result.json() == {"jobId": job_id, "kind": "BLOB_KIND_RESULT"}
    assert_problem(await http.get(f"/api/jobs/{job_id}/error", headers=ACME), 409, "not_failed")

    refused = await http.post("/api/cancel", params={"jobId": job_id}, headers=ACME)
    body = assert_problem(refused, 409, "job_not_cancellable")
    assert "completed" in str(body["detail"])


async def test_failed_job_streams_its_error_document(
    gw: InProcessGateway, http: httpx.AsyncClient
) -> None:
    job_id = str((await upload(http))["jobId"])
    await finish(gw, job_id, ingest_pb2.BLOB_KIND_ERROR)
    status = (await http.get(f"/api/jobs/{job_id}", headers=ACME)).json()
    assert (status["status"], status["error"]) == ("failed", "invalid_input")
    error = await http.get(f"/api/jobs/{job_id}/error", headers=ACME)
    assert error.status_code == 200
    assert error.json() == {"jobId": job_id, "kind": "BLOB_KIND_ERROR"}
    assert_problem(await http.get(f"/api/jobs/{job_id}/result", headers=ACME), 409, "not_completed")


async def test_list_holds_only_the_callers_jobs_newest_first(http: httpx.AsyncClient) -> None:
    first = await upload(http)
    second = await upload(http)
    page = await http.get("/api/jobs", params={"limit": 2}, headers=ACME)
    assert page.status_code == 200
    assert [j["jobId"] for j in page.json()["jobs"]] == [second["jobId"], first["jobId"]]
    assert page.json()["nextCursor"]
    beta = (await http.get("/api/jobs", headers=BETA)).json()
    assert beta == {"jobs": [], "nextCursor": None}
    assert_problem(
        await http.get("/api/jobs", params={"status": "running"}, headers=ACME),
        400,
        "invalid_request",
    )


async def test_another_tenants_job_does_not_exist(http: httpx.AsyncClient) -> None:
    job_id = (await upload(http))["jobId"]
    for method, url in (
        ("GET", f"/api/job-status?jobId={job_id}"),
        ("GET", f"/api/jobs/{job_id}"),
        ("POST", f"/api/cancel?jobId={job_id}"),
        ("GET", f"/api/jobs/{job_id}/result"),
        ("POST", f"/api/jobs/{job_id}/analyze"),
    ):
        assert_problem(await http.request(method, url, headers=BETA), 404, "not_found")
    assert (await http.get(f"/api/jobs/{job_id}", headers=ACME)).json()["status"] == "queued"


async def test_unknown_job_is_404_with_the_callers_request_id(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/api/job-status",
        params={"jobId": "0" * 32},
        headers={**ACME, "X-Request-Id": "trace-me-42"},
    )
    body = assert_problem(response, 404, "not_found")
    assert body["requestId"] == "trace-me-42"
    assert_problem(await http.get("/api/job-status", headers=ACME), 400, "invalid_request")


async def test_missing_or_wrong_key_is_401(http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"X-API-Key": "acme"}):
        response = await http.get("/api/jobs", headers=headers)
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == 'Bearer realm="datapilot"'
    assert (await http.get("/healthz")).json() == {"status": "ok"}


async def test_declared_length_over_the_limit_is_413_at_once(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/upload", files={"file": ("big.csv", b"a" * (2 * LIMIT))}, headers=ACME
    )
    assert_problem(response, 413, "payload_too_large")


async def test_streamed_file_one_byte_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    boundary = "dpboundary"

    async def body() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        yield _multipart_head(boundary)
        yield b"a" * (LIMIT + 1)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await http.post(
        "/api/upload",
        content=body(),
        headers={**ACME, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_file_of_exactly_the_limit_is_accepted(http: httpx.AsyncClient) -> None:
    job = await upload(http, b"a,b\n" * (LIMIT // 4))
    assert job["sizeBytes"] == LIMIT


async def test_not_multipart_or_not_an_allowed_type_is_415(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/upload", json={"file": "x"}, headers=ACME)
    assert_problem(response, 415, "unsupported_media_type")
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    response = await http.post(
        "/api/upload", files={"file": ("sales.csv", png, "text/csv")}, headers=ACME
    )
    assert_problem(response, 415, "unsupported_file_type")


async def test_malformed_uploads_are_400(http: httpx.AsyncClient) -> None:
    no_file = await http.post("/api/upload", files={"other": ("a.csv", CSV)}, headers=ACME)
    assert_problem(no_file, 400, "missing_file")
    bad_key = await http.post(
        "/api/upload",
        files={"file": ("a.csv", CSV)},
        headers={**ACME, "Idempotency-Key": "x" * 256},
    )
    assert_problem(bad_key, 400, "bad_idempotency_key")


async def test_idempotency_key_replays_the_job_or_refuses_another_file(
    http: httpx.AsyncClient,
) -> None:
    key = {"Idempotency-Key": f"order-{time.time_ns()}"}
    first = await upload(http, headers=key)
    assert await upload(http, headers=key) == first
    response = await http.post(
        "/api/upload", files={"file": ("b.csv", CSV + b"East,30\n")}, headers={**ACME, **key}
    )
    assert_problem(response, 422, "idempotency_key_reused")


def _multipart_head(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
    ).encode()


async def test_client_deadline_that_passes_mid_upload_is_504(http: httpx.AsyncClient) -> None:
    boundary = "dpboundary"

    async def body() -> AsyncIterator[bytes]:
        yield _multipart_head(boundary) + b"a,b\n" * 4096  # enough to open the Upload call
        # The call (and its 50 ms deadline) exists before this chunk is asked for; let it pass.
        await asyncio.sleep(0.2)
        yield b"1,2\n" + f"\r\n--{boundary}--\r\n".encode()

    response = await http.post(
        "/api/upload",
        content=body(),
        headers={
            **ACME,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Grpc-Timeout": "50m",
        },
    )
    assert_problem(response, 504, "deadline_exceeded")


async def test_client_deadline_headers_are_checked(http: httpx.AsyncClient) -> None:
    job_id = (await upload(http))["jobId"]
    url = f"/api/jobs/{job_id}"
    roomy = await http.get(url, headers={**ACME, "Grpc-Timeout": "5S", "Request-Timeout": "5"})
    assert roomy.status_code == 200
    for header in ({"Grpc-Timeout": "5s"}, {"Grpc-Timeout": "S"}, {"Request-Timeout": "-1"}):
        assert_problem(await http.get(url, headers={**ACME, **header}), 400, "invalid_timeout")


async def test_readyz_follows_ingest_and_an_analysis_outage_only_takes_analyze(
    gw: InProcessGateway, http: httpx.AsyncClient
) -> None:
    assert (await http.get("/readyz")).json() == {"status": "ready"}
    job_id = (await upload(http))["jobId"]
    real: Upstreams = gw.app.state.upstreams
    nowhere = open_channel(f"127.0.0.1:{free_port()}")
    try:
        # analysis_svc down: still ready; uploads and job status go on; /analyze alone is 503.
        analysis_down = Upstreams(real.ingest_channel, nowhere, INTERNAL_TOKEN)
        gw.app.dependency_overrides[get_upstreams] = lambda: analysis_down
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        assert (await http.get(f"/api/job-status?jobId={job_id}", headers=ACME)).status_code == 200
        await upload(http)
        analyze = await http.post(f"/api/jobs/{job_id}/analyze", headers=ACME)
        assert_problem(analyze, 503, "unavailable")
        # ingest_svc down: not ready.
        ingest_down = Upstreams(nowhere, real.analysis_channel, INTERNAL_TOKEN)
        gw.app.dependency_overrides[get_upstreams] = lambda: ingest_down
        body = assert_problem(await http.get("/readyz"), 503, "not_ready")
        assert body["detail"] == "ingest_svc is not reachable."
    finally:
        await nowhere.close()


async def test_unreachable_ingest_is_503_without_internals(
    gw: InProcessGateway, http: httpx.AsyncClient
) -> None:
    address = f"127.0.0.1:{free_port()}"
    nowhere = open_channel(address)
    try:
        gw.app.dependency_overrides[get_ingest] = lambda: Upstreams(nowhere, nowhere).ingest
        response = await http.get("/api/jobs", headers=ACME)
        body = assert_problem(response, 503, "unavailable")
        assert body["detail"] == "A backend service is unavailable; try again shortly."
        assert address not in response.text
    finally:
        await nowhere.close()


async def test_the_openapi_document_lists_no_dependency_as_a_parameter(
    http: httpx.AsyncClient,
) -> None:
    document = (await http.get("/openapi.json")).json()
    status = document["paths"]["/api/job-status"]["get"]
    assert [p["name"] for p in status["parameters"]] == ["jobId"]
    assert "404" in status["responses"]


@pytest.mark.parametrize("with_token", [False, True])
async def test_ingest_answers_only_callers_with_the_internal_token(
    gw: InProcessGateway, with_token: bool
) -> None:
    settings = gw.app.state.settings
    channel = open_channel(settings.ingest_addr, INTERNAL_TOKEN if with_token else "")
    try:
        call = ingest_pb2_grpc.IngestServiceStub(channel).GetJob(
            ingest_pb2.GetJobRequest(job_id="0" * 32), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        expected = grpc.StatusCode.NOT_FOUND if with_token else grpc.StatusCode.UNAUTHENTICATED
        assert raised.value.code() is expected
    finally:
        await channel.close()


STALE_RACE_ROUNDS = 20


async def test_a_stale_result_racing_the_winner_never_replaces_or_removes_it(
    gw: InProcessGateway, http: httpx.AsyncClient
) -> None:
    """Delivery A stores its result while B takes the job over, stores its own and completes.

    Each round races A's PutArtifact (which may pass its pre-check before B's takeover and end
    after B completed) against B, B starting a little later each round so that the rounds
    cover the interleavings; whatever the interleaving, the served result is B's.
    """
    outcomes: Counter[str] = Counter()

    async def put(job_id: str, token: str) -> None:
        document = {"jobId": job_id, "writer": token}
        if token == "stale":  # a large stale result: a long write, a wide window for the race
            document["padding"] = "x" * LIMIT
        await gw.internal.PutArtifact(
            ingest_pb2.PutArtifactRequest(
                job_id=job_id,
                kind=ingest_pb2.BLOB_KIND_RESULT,
                content=json.dumps(document).encode(),
                lease_token=token,
            ),
            timeout=10,
        )

    async def stale(job_id: str) -> None:
        try:
            await put(job_id, "stale")
            outcomes["stale stored"] += 1
        except grpc.aio.AioRpcError as exc:
            assert exc.code() is grpc.StatusCode.FAILED_PRECONDITION, exc
            outcomes[str(exc.details())[:30]] += 1

    async def winner(job_id: str, message_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        claim = await gw.store.claim(
            job_id, "winner", 3, take_over=True, owner="b", message_id=message_id
        )
        assert claim.attempt == 2
        await put(job_id, "winner")
        fields = {"result_url": f"/api/jobs/{job_id}/result", "finished_at": time.time()}
        done = await gw.store.transition(
            job_id, ACTIVE, Status.COMPLETED, fields, lease_token="winner"
        )
        assert done.applied

    for n in range(STALE_RACE_ROUNDS):
        job_id = str((await upload(http))["jobId"])
        record = await gw.store.get(job_id)
        assert record is not None and record.message_id
        await gw.store.claim(
            job_id, "stale", 3, take_over=False, owner="a", message_id=record.message_id
        )
        await asyncio.gather(stale(job_id), winner(job_id, record.message_id, n * 0.0005))
        result = await http.get(f"/api/jobs/{job_id}/result", headers=ACME)
        assert result.status_code == 200, result.text
        assert result.json() == {"jobId": job_id, "writer": "winner"}
    assert sum(outcomes.values()) == STALE_RACE_ROUNDS


@pytest.fixture(scope="module")
async def routed(gw: InProcessGateway) -> AsyncIterator[httpx.AsyncClient]:
    """The same gateway with every request left to the FastAPI routes (no JobReads)."""
    app = create_app(gw.app.state.settings, fast_job_reads=False)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
    ):
        yield client


async def test_job_reads_answer_exactly_as_the_fastapi_routes(
    gw: InProcessGateway, http: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    job_id = str((await upload(http))["jobId"])
    done_id = str((await upload(http))["jobId"])
    await finish(gw, done_id, ingest_pb2.BLOB_KIND_RESULT)
    same_id = {"X-Request-Id": "compare-1"}
    cases: list[tuple[str, dict[str, str]]] = [
        (f"/api/job-status?jobId={job_id}", ACME),
        (f"/api/jobs/{job_id}", ACME),
        (f"/api/job-status?jobId={done_id}", ACME),
        (f"/api/job-status?jobId=nope&jobId={job_id}", ACME),  # the last one counts
        (f"/api/job-status?jobId={job_id}", BETA),  # another tenant's: 404
        (f"/api/jobs/{job_id}", BETA),
        ("/api/job-status?jobId=" + "0" * 32, ACME),
        ("/api/job-status", ACME),
        ("/api/job-status?jobId=", ACME),
        ("/api/job-status?jobId=" + "a" * 65, ACME),
        ("/api/jobs/" + "a" * 65, ACME),
        ("/api/jobs/has%20space", ACME),
        (f"/api/job-status?jobId={job_id}", {}),
        (f"/api/jobs/{job_id}", {"Authorization": "Bearer nope"}),
        (f"/api/jobs/{job_id}", {**ACME, "Grpc-Timeout": "5s"}),
        ("/api/job-status", {**ACME, "Request-Timeout": "-1"}),  # the deadline is checked first
        (f"/api/jobs/{job_id}", {**ACME, "Grpc-Timeout": "5S", "Request-Timeout": "5"}),
    ]
    statuses = []
    for url, headers in cases:
        fast = await http.get(url, headers={**headers, **same_id})
        slow = await routed.get(url, headers={**headers, **same_id})
        assert (fast.status_code, fast.json()) == (slow.status_code, slow.json()), url
        for name in ("content-type", "x-request-id", "www-authenticate", "retry-after"):
            assert fast.headers.get(name) == slow.headers.get(name), (url, name)
        statuses.append(fast.status_code)
    assert statuses == [200] * 4 + [404] * 3 + [400] * 4 + [404] + [401] * 2 + [400] * 2 + [200]


async def test_concurrent_job_reads_go_out_together_and_answer_as_the_routes(
    gw: InProcessGateway,
    http: httpx.AsyncClient,
    routed: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    acme_id = str((await upload(http))["jobId"])
    beta_id = str((await upload(http, headers=BETA))["jobId"])
    done_id = str((await upload(http))["jobId"])
    await finish(gw, done_id, ingest_pb2.BLOB_KIND_RESULT)
    batcher = gw.app.state.upstreams.job_reads
    batches: list[int] = []
    get_jobs = batcher._get_jobs

    async def counted(request: ingest_pb2.GetJobsRequest, **kwargs: object) -> object:
        batches.append(len(request.reads))
        return await get_jobs(request, **kwargs)

    monkeypatch.setattr(batcher, "_get_jobs", counted)
    cases: list[tuple[str, dict[str, str]]] = [
        (f"/api/job-status?jobId={acme_id}", ACME),
        (f"/api/jobs/{beta_id}", BETA),
        (f"/api/job-status?jobId={done_id}", ACME),
        (f"/api/jobs/{beta_id}", ACME),  # another tenant's: 404, from GetJob
        ("/api/job-status?jobId=" + "0" * 32, BETA),  # missing: 404, from GetJob
        (f"/api/jobs/{acme_id}", ACME),
    ] * 8
    fast = await asyncio.gather(*(http.get(url, headers=headers) for url, headers in cases))
    assert batches and max(batches) > 1  # reads that waited for the line went out together
    for (url, headers), answer in zip(cases, fast, strict=True):
        slow = await routed.get(url, headers=headers)
        body, expected = answer.json(), slow.json()
        if answer.status_code != 200:  # a problem names its own request
            assert body.pop("requestId") == answer.headers["x-request-id"]
            expected.pop("requestId")
        assert (answer.status_code, body) == (slow.status_code, expected), url


@pytest.mark.parametrize(
    ("method", "path", "headers", "answered"),
    [
        ("GET", "/api/job-status", [], True),
        ("GET", "/api/jobs/abc", [], True),
        ("GET", "/api/jobs/abc/result", [], False),
        ("GET", "/api/jobs/", [], False),
        ("GET", "/api/jobs", [], False),
        ("HEAD", "/api/job-status", [], False),
        ("POST", "/api/job-status", [], False),
        ("GET", "/api/job-status", [(b"content-length", b"3")], False),
    ],
)
def test_job_reads_take_only_bodyless_job_gets(
    method: str, path: str, headers: list[tuple[bytes, bytes]], answered: bool
) -> None:
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    assert (job_read_template(scope) is not None) is answered


async def test_a_job_read_whose_client_disconnects_sends_nothing_and_counts_499(
    gw: InProcessGateway, http: httpx.AsyncClient
) -> None:
    job_id = str((await upload(http))["jobId"])
    counter = HTTP_REQUESTS.labels("GET", "/api/job-status", "499")
    before = counter._value.get()
    sent: list[Message] = []
    messages: list[Message] = [
        {"type": "http.request", "body": b"", "more_body": False},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        if not messages:
            await asyncio.Event().wait()  # never: the request is over by then
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/job-status",
        "query_string": f"jobId={job_id}".encode(),
        "headers": [(b"authorization", b"Bearer acme-key")],
    }
    await gw.app(scope, receive, send)
    assert sent == []  # the upstream call was cancelled before it answered
    assert counter._value.get() == before + 1
