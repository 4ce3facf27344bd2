"""Upload options (`{"roles": {...}}`) through the real stack: refused at upload, or carried on.

Carried on means: gateway -> ingest_svc (checked again, stored with the job record) -> worker
-> analysis child -> the engine's `compute_report(table, roles=...)`, and the CLI's `--role`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest
from datapilot.analysis.v1 import analysis_pb2, analysis_pb2_grpc
from datapilot.ingest.v1 import ingest_pb2, ingest_pb2_grpc

from datapilot_runtime.grpc_errors import ERROR_CODE_METADATA_KEY
from datapilot_runtime.report.options import MAX_OPTIONS_BYTES, MAX_ROLE_ENTRIES
from datapilot_runtime.report.result import KpiReport
from devstack.stack import Stack
from tests.support.api import INTERNAL_CALLER, check_result, checked_client, wait_terminal

SALES_CSV = Path(__file__).resolve().parents[1] / "data" / "sales.csv"
CLI = str(Path(sys.executable).with_name("datapilot"))
BOUNDARY = "dp-options-test"


def _multipart(*parts: tuple[str, bytes]) -> bytes:
    """A multipart body with the parts in exactly this order (httpx puts fields first)."""
    body = b""
    for name, content in parts:
        filename = '; filename="sales.csv"' if name == "file" else ""
        body += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n'
        ).encode()
        body += content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def _post(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post(
        "/api/upload",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )


def _newest_job(client: httpx.Client) -> str | None:
    jobs = client.get("/api/jobs", params={"limit": 1}).json()["jobs"]
    return str(jobs[0]["jobId"]) if jobs else None


def _stored_options(stack: Stack, job_id: str) -> str:
    with grpc.insecure_channel(stack.addresses["ingest"]) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        reply = stub.GetJob(
            ingest_pb2.GetJobRequest(job_id=job_id), timeout=30, metadata=INTERNAL_CALLER
        )
        return str(reply.job.options_json)


def _error_code(error: grpc.RpcError) -> str:
    for key, value in error.trailing_metadata() or ():
        if key == ERROR_CODE_METADATA_KEY:
            return str(value)
    return ""


@pytest.fixture()
def fs_client(fs_stack: Stack) -> httpx.Client:
    return checked_client(fs_stack.gateway_url, timeout=30)


SALES = SALES_CSV.read_bytes()
# Large enough to arrive in many body chunks, so the options come in a later one.
BIG_SALES = SALES + SALES.split(b"\n", 1)[1] * 600
TOO_MANY = json.dumps({"roles": {f"c{i}": "dimension" for i in range(MAX_ROLE_ENTRIES + 1)}})
MALFORMED: list[tuple[str, list[tuple[str, bytes]], str]] = [
    ("bad-json", [("options", b'{"roles": {"region": '), ("file", SALES)], "not valid JSON"),
    ("not-object", [("options", b'["region"]'), ("file", SALES)], "must be a JSON object"),
    (
        "unknown-key",
        [("options", b'{"roles": {}, "charts": false}'), ("file", SALES)],
        "unknown key 'charts'",
    ),
    (
        "unknown-role",
        [("options", b'{"roles": {"region": "segment"}}'), ("file", SALES)],
        "unknown role 'segment' for column 'region'",
    ),
    ("too-many", [("options", TOO_MANY.encode()), ("file", SALES)], "entries; the limit"),
    (
        "too-long",
        [("options", b'{"roles": {"' + b"x" * MAX_OPTIONS_BYTES + b'": "time"}}'), ("file", SALES)],
        f"over the {MAX_OPTIONS_BYTES} byte limit",
    ),
    (
        "twice",
        [("options", b"{}"), ("options", b"{}"), ("file", SALES)],
        "'options' appears twice",
    ),
    (
        "after-file",
        [("file", SALES), ("options", b'{"roles": {"region": "dimension"}}')],
        "before 'file'",
    ),
    (
        "after-big-file",
        [("file", BIG_SALES), ("options", b'{"roles": {"region": "dimension"}}')],
        "before 'file'",
    ),
]


@pytest.mark.parametrize(
    ("parts", "why"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_options_are_a_400_that_says_why_and_no_job(
    fs_client: httpx.Client, parts: list[tuple[str, bytes]], why: str
) -> None:
    before = _newest_job(fs_client)
    response = _post(fs_client, _multipart(*parts))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_options"
    assert why in problem["detail"]
    assert _newest_job(fs_client) == before


def test_options_are_stored_with_the_job_in_canonical_form(
    fs_stack: Stack, fs_client: httpx.Client
) -> None:
    options = b'{ "roles" : { "units": "non_additive", "region": "ignore" } }'
    response = _post(fs_client, _multipart(("options", options), ("file", SALES)))
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]
    stored = _stored_options(fs_stack, job_id)
    assert stored == '{"roles":{"units":"non_additive","region":"ignore"}}'
    assert wait_terminal(fs_client, job_id)["status"] == "completed"


def test_an_empty_options_field_is_no_options(fs_stack: Stack, fs_client: httpx.Client) -> None:
    response = _post(fs_client, _multipart(("options", b""), ("file", SALES)))
    assert response.status_code == 202, response.text
    assert _stored_options(fs_stack, response.json()["jobId"]) == ""


def test_an_override_reaches_the_report(fs_client: httpx.Client) -> None:
    options = json.dumps({"roles": {"units": "non_additive"}}).encode()
    response = _post(fs_client, _multipart(("options", options), ("file", SALES)))
    assert response.status_code == 202, response.text
    done = wait_terminal(fs_client, response.json()["jobId"])
    assert done["status"] == "completed", done
    result = fs_client.get(done["resultUrl"]).json()
    roles = {entry["name"]: entry for entry in result["kpis"]["roles"]}
    assert roles["units"]["role"] == "non_additive"
    assert roles["units"]["overridden"] is True
    assert not roles["region"]["overridden"]
    # The override changes what is computed: a non-additive measure is never totalled.
    units = next(c for c in result["kpis"]["columns"] if c["name"] == "units")
    assert units["numeric"]["sum"] is None


def test_ingest_checks_options_of_internal_callers(fs_stack: Stack) -> None:
    requests = iter(
        [
            ingest_pb2.UploadRequest(
                metadata=ingest_pb2.UploadMetadata(
                    filename="sales.csv", options_json='{"roles": {"region": "colour"}}'
                )
            ),
            ingest_pb2.UploadRequest(chunk=SALES),
        ]
    )
    with grpc.insecure_channel(fs_stack.addresses["ingest"]) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Upload(requests, timeout=30, metadata=INTERNAL_CALLER)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_code(info.value) == "invalid_options"
    assert "unknown role 'colour'" in info.value.details()


def test_analyze_rpc_takes_options_and_checks_them(
    fs_stack: Stack, fs_client: httpx.Client
) -> None:
    job_id = _post(fs_client, _multipart(("file", SALES))).json()["jobId"]
    with grpc.insecure_channel(fs_stack.addresses["analysis"]) as channel:
        stub = analysis_pb2_grpc.AnalysisServiceStub(channel)
        good = analysis_pb2.AnalyzeRequest(
            job_id=job_id, options_json='{"roles": {"units": "additive"}}'
        )
        reply = stub.Analyze(good, timeout=30, metadata=INTERNAL_CALLER)
        report = KpiReport.model_validate_json(reply.kpi_report_json)
        assert report.dataset.rows == 120
        with pytest.raises(grpc.RpcError) as info:
            stub.Analyze(
                analysis_pb2.AnalyzeRequest(job_id=job_id, options_json="[]"),
                timeout=30,
                metadata=INTERNAL_CALLER,
            )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_code(info.value) == "invalid_options"


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATAPILOT_URL": stack.gateway_url, "COLUMNS": "200"}
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def test_cli_role_flags_travel_with_the_upload(fs_stack: Stack) -> None:
    done = _cli(
        fs_stack,
        "--json",
        "analyze",
        str(SALES_CSV),
        "--role",
        "units=stock",
        "--role",
        "a=b=dimension",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    check_result(result)
    job_id = result["jobId"]
    assert json.loads(_stored_options(fs_stack, job_id)) == {
        "roles": {"units": "stock", "a=b": "dimension"}
    }


@pytest.mark.parametrize(
    ("flag", "why"),
    [("units=bogus", "unknown role 'bogus'"), ("units", "expected COLUMN=ROLE")],
)
def test_cli_refuses_bad_role_flags_before_uploading(fs_stack: Stack, flag: str, why: str) -> None:
    done = _cli(fs_stack, "analyze", str(SALES_CSV), "--role", flag)
    assert done.returncode == 2
    assert why in done.stderr


def test_an_idempotent_replay_must_repeat_the_options(
    fs_stack: Stack, fs_client: httpx.Client
) -> None:
    """httpx sends form fields before files: the usual client order is the one required."""
    key = {"Idempotency-Key": f"options-{os.urandom(8).hex()}"}
    files = {"file": ("same.csv", b"a,b\n1,2\n")}
    options = {"options": json.dumps({"roles": {"a": "dimension"}})}
    first = fs_client.post("/api/upload", data=options, files=files, headers=key)
    assert first.status_code == 202, first.text
    assert _stored_options(fs_stack, first.json()["jobId"]) == '{"roles":{"a":"dimension"}}'
    again = fs_client.post("/api/upload", data=options, files=files, headers=key)
    assert again.status_code == 202
    assert again.json()["jobId"] == first.json()["jobId"]
    for other in ({"options": '{"roles": {"a": "measure"}}'}, {}):
        refused = fs_client.post("/api/upload", data=other, files=files, headers=key)
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "idempotency_key_reused"
        assert "different options" in refused.json()["detail"]


def test_a_file_at_the_limit_with_the_largest_options_is_accepted(fs_client: httpx.Client) -> None:
    """The Content-Length pre-check leaves room for the options beside a file of the limit."""
    limit = 20 * 1024 * 1024
    content = b"n\n" + b"1\n" * ((limit - 2) // 2)
    roles = {f"column {i:05d} long name": "dimension" for i in range(1_650)}
    base = len(json.dumps({"roles": roles}))
    roles["padding" + "x" * (MAX_OPTIONS_BYTES - base - len(', "padding": "dimension"'))] = (
        "dimension"
    )
    options = json.dumps({"roles": roles}).encode()
    assert len(content) == limit and len(options) == MAX_OPTIONS_BYTES
    response = _post(fs_client, _multipart(("options", options), ("file", content)))
    assert response.status_code == 202, response.text
    fs_client.post("/api/cancel", params={"jobId": response.json()["jobId"]})
