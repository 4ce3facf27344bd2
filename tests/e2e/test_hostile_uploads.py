"""The hostile corpus uploaded through the gateway to a real stack (filesystem blobs).

Each file ends as its kind allows (status, code, message); an ordinary upload after each one
completes, so no hostile file leaves the worker or its analysis pool unable to serve.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.corpus.hostile import HostileFile, hostile_files
from tests.support.api import checked_client, upload, wait_terminal

SALES = (Path(__file__).resolve().parents[1] / "data" / "sales.csv").read_bytes()
FILES = hostile_files()


@pytest.mark.parametrize("hostile", FILES, ids=[item.name for item in FILES])
def test_hostile_upload_ends_as_allowed_then_a_normal_job_completes(
    fs_stack: Stack, hostile: HostileFile
) -> None:
    with checked_client(fs_stack.gateway_url, timeout=60) as http:
        job = wait_terminal(http, upload(http, hostile.filename, hostile.content)["jobId"], 120)
        outcome = job["status"] + (f":{job['error']}" if job["error"] else "")
        assert outcome in hostile.allowed, f"{outcome}: {job['errorMessage']}"
        if job["status"] == "failed":
            assert re.search(hostile.message, job["errorMessage"]), job["errorMessage"]
        normal = wait_terminal(http, upload(http, "sales.csv", SALES)["jobId"], 60)
        assert normal["status"] == "completed", normal
