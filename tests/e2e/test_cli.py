"""The `datapilot` CLI against live stacks: analyze, --json, status, cancel, jobs, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import Stack, StackConfig

SALES_CSV = Path(__file__).resolve().parents[1] / "data" / "sales.csv"
CLI = str(Path(sys.executable).with_name("datapilot"))


def _run(stack: Stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATAPILOT_URL": stack.gateway_url, "COLUMNS": "200"}
    return subprocess.run(
        [CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def queue_only_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """No workers: jobs stay queued until cancelled."""
    stack = Stack(StackConfig(run_dir=tmp_path_factory.mktemp("cli-idle"), workers=0))
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    yield stack
    stack.stop()


def test_analyze_prints_tables(fs_stack: Stack) -> None:
    done = _run(fs_stack, "analyze", str(SALES_CSV))
    assert done.returncode == 0, done.stderr
    assert "Dataset" in done.stdout and "Insights" in done.stdout
    assert "revenue" in done.stdout and "120" in done.stdout


def test_analyze_json_then_status_and_jobs(fs_stack: Stack) -> None:
    done = _run(fs_stack, "--json", "analyze", str(SALES_CSV))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["kpis"]["dataset"]["rows"] == 120
    job_id = result["jobId"]
    status = _run(fs_stack, "--json", "status", job_id)
    assert json.loads(status.stdout)["status"] == "completed"
    listed = _run(fs_stack, "--json", "jobs", "--limit", "100")
    assert job_id in {j["jobId"] for j in json.loads(listed.stdout)["jobs"]}
    refused = _run(fs_stack, "cancel", job_id)
    assert refused.returncode == 5
    assert "job_not_cancellable" in refused.stderr


def test_missing_file_and_unknown_job(fs_stack: Stack) -> None:
    assert _run(fs_stack, "analyze", "/nonexistent.csv").returncode == 2
    unknown = _run(fs_stack, "status", "0" * 32)
    assert unknown.returncode == 5 and "not_found" in unknown.stderr


def test_cancel_command(queue_only_stack: Stack) -> None:
    with httpx.Client(base_url=queue_only_stack.gateway_url) as client:
        job_id = client.post("/api/upload", files={"file": ("a.csv", b"a\n1\n")}).json()["jobId"]
    done = _run(queue_only_stack, "--json", "cancel", job_id)
    assert done.returncode == 0
    assert json.loads(done.stdout)["status"] == "cancelled"


def _job_status_polls(gateway_url: str) -> float:
    """Job-status requests the gateway served, from its own metrics (polls log at DEBUG)."""
    text = httpx.get(f"{gateway_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("datapilot_http_requests_total{") and "/api/job-status" in line
    )


def _waiting_on_the_job(gateway_url: str, polls_before: float) -> bool:
    """The CLI follows the job's event stream, or (if it fell back) polls it."""
    text = httpx.get(f"{gateway_url}/metrics", timeout=10).text
    streams = float(text.split("\ndatapilot_event_streams ", 1)[1].split()[0])
    return streams > 0 or _job_status_polls(gateway_url) > polls_before


def test_ctrl_c_during_analyze_offers_to_cancel(queue_only_stack: Stack) -> None:
    env = {**os.environ, "DATAPILOT_URL": queue_only_stack.gateway_url}
    process = subprocess.Popen(
        [CLI, "analyze", str(SALES_CSV)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stderr is not None
    polls_before = _job_status_polls(queue_only_stack.gateway_url)
    process.stdin.write("y\n")
    process.stdin.flush()
    seen = ""
    while "queued; waiting" not in seen:  # uploaded
        line = process.stderr.readline()
        assert line, f"the CLI ended before uploading: {seen}"
        seen += line
    deadline = time.monotonic() + 30
    while not _waiting_on_the_job(queue_only_stack.gateway_url, polls_before):
        assert time.monotonic() < deadline, "the CLI never waited on the job"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _out, rest = process.communicate(timeout=30)
    err = seen + rest
    assert process.returncode == 3, err
    assert "Cancel job" in err and "cancelled" in err
    job_id = err.split("job ", 1)[1].split()[0]
    with httpx.Client(base_url=queue_only_stack.gateway_url) as client:
        status = client.get("/api/job-status", params={"jobId": job_id}).json()
    assert status["status"] == "cancelled"


# The upload refuses text with ESC or BEL (binary): data can still carry bidi controls, and the
# unit tests (test_cli_render) cover ESC, CSI and OSC in every field.
HOSTILE_HEADER = "id,[/x],[link=https://evil.example]click[/link],rtl\u202eevil"


def test_analyze_prints_markup_and_escapes_in_data_literally(
    fs_stack: Stack, tmp_path: Path
) -> None:
    """Column names are data: `[/x]` does not crash rich, links and controls never act."""
    path = tmp_path / "[bold]evil[-bold].csv"
    rows = "\n".join(f"{n},{n},{n * 2},{n % 3}" for n in range(1, 30))
    path.write_text(f"{HOSTILE_HEADER}\n{rows}\n", encoding="utf-8")
    done = _run(fs_stack, "analyze", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[/x]" in done.stdout
    assert "[link=https://evil.example]click[/link]" in done.stdout
    assert "rtl\\u202eevil" in done.stdout  # shown, not obeyed
    assert "\u202e" not in done.stdout + done.stderr
