"""The error-code catalogue: README's table rendered from it, statuses consistent, codes used.

`UPDATE_README=1 pytest tests/unit/test_error_codes.py` rewrites the table between the markers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from datapilot_runtime.error_codes import CATALOGUE, GRPC_TO_HTTP, ErrorCode, parse
from datapilot_runtime.grpc_errors import grpc_status
from gateway.problems import STATUS_OF_ERROR_CODE

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BEGIN = "<!-- error-codes: rendered from datapilot_runtime/error_codes.py; do not edit -->"
END = "<!-- /error-codes -->"


def render_table() -> str:
    lines = [
        "| code | a job's `error` | gRPC | HTTP | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for code, info in CATALOGUE.items():
        grpc_name = info.grpc or ""
        http = str(info.http) if info.http is not None else ""
        job = "yes" if info.job else ""
        lines.append(f"| `{code.value}` | {job} | {grpc_name} | {http} | {info.meaning} |")
    return "\n".join(lines)


def test_readme_table_is_the_catalogue() -> None:
    text = README.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "README lacks the table markers"
    head, rest = text.split(BEGIN)
    current, tail = rest.split(END)
    wanted = f"\n{render_table()}\n"
    if current != wanted and os.environ.get("UPDATE_README") == "1":
        README.write_text(head + BEGIN + wanted + END + tail)
        return
    assert current == wanted, "README's error table drifted: run with UPDATE_README=1"


def test_job_codes_are_the_documented_contract() -> None:
    """A failed job's `error` values; renaming one breaks clients (README, error.json)."""
    job_codes = {code.value for code, info in CATALOGUE.items() if info.job}
    assert job_codes == {
        "invalid_input",
        "timeout",
        "resource_exhausted",
        "analysis_limit_exceeded",
        "worker_lost",
        "blob_download_failed",
        "blob_upload_failed",
        "insights_unavailable",
        "processing_error",
        "worker_shutdown",
    }


def test_rpc_codes_have_both_statuses_and_job_only_codes_none() -> None:
    for code, info in CATALOGUE.items():
        if info.grpc is not None:
            assert info.http is not None, code
            assert grpc_status(code).name == info.grpc
        elif info.job:
            assert info.http is None, f"{code} is job-only"
            with pytest.raises(ValueError, match="not a gRPC error code"):
                grpc_status(code)


def test_gateway_overrides_are_exactly_the_catalogued_exceptions() -> None:
    assert STATUS_OF_ERROR_CODE == {
        "payload_too_large": 413,
        "idempotency_key_reused": 422,
        # A bound of the input: retrying cannot succeed, so not 429 (issue 15).
        "resource_exhausted": 422,
        "analysis_limit_exceeded": 422,
    }
    for code, status in STATUS_OF_ERROR_CODE.items():
        info = CATALOGUE[ErrorCode(code)]
        assert info.grpc is not None and GRPC_TO_HTTP[info.grpc] != status


def test_status_named_codes_match_their_grpc_status() -> None:
    """A gRPC error without a code is named after its status; the catalogue agrees."""
    for code in (ErrorCode.UNAVAILABLE, ErrorCode.DEADLINE_EXCEEDED, ErrorCode.CANCELLED):
        assert grpc_status(code).name.lower() == code.value
        assert CATALOGUE[code].http == GRPC_TO_HTTP[grpc_status(code).name]


def test_parse() -> None:
    assert parse("not_found") is ErrorCode.NOT_FOUND
    assert parse("") is None and parse("no_such_code") is None


_LITERAL_PROBLEM = re.compile(
    r"(?:ProblemError|problem_response)\(\s*(\d{3}),\s*\"([a-z_]+)\"", re.MULTILINE
)


def test_gateway_literal_codes_are_catalogued_with_their_status() -> None:
    """Problems the gateway raises with a literal code use a catalogued code and its status."""
    found = []
    for path in sorted((ROOT / "gateway").glob("*.py")):
        for status, code in _LITERAL_PROBLEM.findall(path.read_text()):
            found.append(code)
            entry = parse(code)
            assert entry is not None, f"{path.name}: {code!r} is not in the catalogue"
            assert CATALOGUE[entry].http == int(status), f"{path.name}: {code} with {status}"
    assert len(found) >= 10  # the scan must see the gateway's problems, not nothing


@pytest.mark.parametrize("code", [c for c, i in CATALOGUE.items() if i.grpc is not None])
def test_catalogue_statuses_are_real_grpc_codes(code: ErrorCode) -> None:
    assert isinstance(grpc_status(code), grpc.StatusCode)


def test_grpc_to_http_names_every_grpc_status() -> None:
    assert set(GRPC_TO_HTTP) == {status.name for status in grpc.StatusCode}


def test_the_catalogue_loads_no_grpc() -> None:
    """The analysis children import it: they must not pay for grpc (0.4 s, 20 MB each)."""
    probe = "import sys, datapilot_runtime.error_codes; print('grpc' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_gateway_and_runtime_load_no_blob_store_or_redis() -> None:
    """The store-error mapping is injected: the gateway loads neither minio nor redis."""
    probe = (
        "import sys, gateway.app, datapilot_runtime.grpc_host; "
        "print(sorted(m for m in ('minio', 'redis', 'ingest_svc') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
