"""Chaos harness: the scale (CHAOS_SCALE), stacks of real processes, upload streams, settling."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from datapilot_runtime.jobs.keys import JOB_KEY_PATTERN, job_id_of_key
from devstack.stack import Stack, StackConfig
from tests.chaos.summary import TERMINAL, FinalJob, Outcomes
from tests.support.jobs_redis import sync_redis

SCALE_VARIABLE = "CHAOS_SCALE"
SALES_CSV = Path(__file__).resolve().parents[1] / "data" / "sales.csv"
UPLOAD_TIMEOUT_SECONDS = 60.0
POLL_ROUND_SECONDS = 0.2
# Stacks here reclaim a dead worker's jobs fast and never rate-limit the many uploads.
BASE_ENV = {
    "RATE_LIMIT_PER_MINUTE": "0",
    "RETRY_INITIAL_DELAY": "0.05",
    "RETRY_MAX_DELAY": "0.2",
    "JOB_LEASE_SECONDS": "1",
    "LOG_LEVEL": "INFO",
}
REPORTED: list[str] = []  # summary lines, shown again at the end of the pytest run


@dataclass(frozen=True)
class Scale:
    """How big each scenario is: `short` inside `make test`, `full` (the issue's counts)."""

    name: str
    jobs: int  # scenarios 1-3: jobs in the stream
    kill_every: float  # scenario 1: seconds between SIGKILLs
    redis_outage: float  # scenario 3: seconds Redis stays down
    s3_long_outage: float  # scenario 4: the long S3 outage
    llm_jobs: int  # scenario 5
    storm_uploads: int  # scenario 6
    storm_clients: int
    normal_with_hostile: int  # scenario 7: normal jobs mixed with the hostile corpus
    test_timeout: float  # pytest-timeout of each test


SHORT = Scale(
    name="short",
    jobs=20,
    kill_every=2.0,
    redis_outage=2.0,
    s3_long_outage=12.0,  # long enough that a job fails and its error.json meets the outage
    llm_jobs=20,
    storm_uploads=40,
    storm_clients=10,
    normal_with_hostile=10,
    test_timeout=110,
)
FULL = Scale(
    name="full",
    jobs=100,
    kill_every=3.0,
    redis_outage=8.0,
    s3_long_outage=60.0,
    llm_jobs=100,
    storm_uploads=200,
    storm_clients=50,
    normal_with_hostile=40,
    test_timeout=900,
)


def current_scale() -> Scale:
    name = os.environ.get(SCALE_VARIABLE, "short") or "short"
    scales = {s.name: s for s in (SHORT, FULL)}
    if name not in scales:
        raise ValueError(f"{SCALE_VARIABLE} must be one of {sorted(scales)}, not {name!r}")
    return scales[name]


SCALE = current_scale()


@contextlib.contextmanager
def running_stack(
    run_dir: Path, env: dict[str, str], *, workers: int = 2, redis_url: str = ""
) -> Iterator[Stack]:
    """The whole system as real processes; stopped (and its failures shown) at the end.

    `redis_url`: an outside Redis (a cluster's seed node) instead of the stack's own.
    """
    config = StackConfig(
        run_dir=run_dir, env={**BASE_ENV, **env}, workers=workers, redis_url=redis_url
    )
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    except BaseException:
        sys.stderr.write(f"chaos stack logs: {run_dir / 'logs'}\n")
        raise
    finally:
        stack.stop()


def sales_csv(n: int) -> bytes:
    """A valid sales CSV, distinct for each n (distinct KPIs: no cache answers for the LLM)."""
    base = SALES_CSV.read_bytes().rstrip(b"\n")
    return base + f"\n2025-12-31,East,Widget,{n + 1},{n + 1}.25\n".encode()


def upload_one(client: httpx.Client, name: str, content: bytes, label: str, out: Outcomes) -> str:
    """POST /api/upload; a 202 is a submitted job, anything else is recorded as refused.

    Returns the refusal reason (`<status> <code>`, `transport <error>`, `error <exception>`), or
    "" when accepted. Nothing escapes: an upload that ends any other way is counted as refused
    with `error <exception>`, which no scenario allows.
    """
    try:
        response = client.post("/api/upload", files={"file": (name, content)})
        if response.status_code == 202:
            out.accept(str(response.json()["jobId"]), label)
            return ""
    except httpx.HTTPError as exc:
        reason = f"transport {type(exc).__name__}"
        out.refuse(reason)
        return reason
    except Exception as exc:  # a 202 without a job id, say: counted, never lost
        reason = f"error {type(exc).__name__}"
        out.refuse(reason)
        return reason
    code = ""
    with contextlib.suppress(ValueError, AttributeError):
        code = str(response.json().get("code", ""))
    reason = f"{response.status_code} {code}".strip()
    out.refuse(reason)
    return reason


@dataclass(frozen=True)
class Upload:
    """One file of a stream; `label` groups outcomes (e.g. `normal`, a hostile file's name)."""

    name: str
    content: bytes
    label: str = "normal"


class UploadStream:
    """Uploads files from `clients` threads (each its own connection), `interval` apart."""

    def __init__(
        self,
        gateway_url: str,
        uploads: Sequence[Upload],
        out: Outcomes,
        *,
        clients: int = 1,
        interval: float = 0.0,
    ) -> None:
        self._url = gateway_url
        self._uploads = list(uploads)
        self._out = out
        self._interval = interval
        self._threads = [
            threading.Thread(target=self._run, args=(n, clients), daemon=True)
            for n in range(clients)
        ]
        self.sent = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self) -> UploadStream:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Send no more uploads (those on their way finish)."""
        self._stopping.set()

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self, timeout: float) -> None:
        """Wait for the threads; unless stopped, every upload must have been sent and counted."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not self.running, f"uploads still running after {timeout}s"
        if not self._stopping.is_set():
            assert self.sent == len(self._uploads), f"{self.sent} of {len(self._uploads)} sent"

    def _run(self, index: int, clients: int) -> None:
        try:
            with httpx.Client(base_url=self._url, timeout=UPLOAD_TIMEOUT_SECONDS) as client:
                for upload in self._uploads[index::clients]:
                    if self._stopping.is_set():
                        return
                    upload_one(client, upload.name, upload.content, upload.label, self._out)
                    with self._lock:
                        self.sent += 1
                    if self._interval:
                        time.sleep(self._interval)
        except Exception as exc:  # the thread's death is an outcome the check must see
            self._out.refuse(f"upload thread died: {type(exc).__name__}")


def _final(client: httpx.Client, job: dict[str, object]) -> FinalJob:
    """The job's end state and whether its artifact can be downloaded and names the job."""
    job_id, status, error = str(job["jobId"]), str(job["status"]), str(job.get("error") or "")
    artifact = False
    if status in ("completed", "failed"):
        path = "result" if status == "completed" else "error"
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = client.get(f"/api/jobs/{job_id}/{path}")
            document = response.json() if response.status_code == 200 else {}
            artifact = document.get("jobId") == job_id and (
                status == "completed" or document.get("error") == error
            )
    attempt = job.get("attempt")
    return FinalJob(job_id, status, error, artifact, attempt if isinstance(attempt, int) else 0)


def settle(gateway_url: str, out: Outcomes, timeout: float) -> None:
    """Poll every submitted job until it is terminal (or `timeout`), then record its end."""
    deadline = time.monotonic() + timeout
    pending = set(out.accepted)
    last: dict[str, dict[str, object]] = {}
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        while pending and time.monotonic() < deadline:
            for job_id in sorted(pending):
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    response = client.get("/api/job-status", params={"jobId": job_id})
                    if response.status_code == 200:
                        last[job_id] = response.json()
                        if last[job_id]["status"] in TERMINAL:
                            pending.discard(job_id)
                            out.settle(_final(client, last[job_id]))
            if pending:
                time.sleep(POLL_ROUND_SECONDS)
    for job_id in pending:
        status = str(last.get(job_id, {}).get("status", "unknown"))
        out.settle(FinalJob(job_id, status))


def metric_total(port: int, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples (with these labels) on 127.0.0.1:`port`/metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def busy(gateway_url: str, out: Outcomes, stream: UploadStream) -> bool:
    """Whether uploads are still going or some submitted job is not yet terminal."""
    if stream.running:
        return True
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        for job_id in list(out.accepted):
            try:
                response = client.get("/api/job-status", params={"jobId": job_id})
                if response.status_code != 200 or response.json()["status"] not in TERMINAL:
                    return True
            except (httpx.HTTPError, ValueError):
                return True
    return False


def report(out: Outcomes) -> str:
    """Write the summary line to stderr (and keep it for the end of the run)."""
    line = f"[chaos {SCALE.name}] {out.line()}"
    sys.stderr.write(line + "\n")
    REPORTED.append(line)
    return line


def check(out: Outcomes, allowed_failures: set[str], allowed_refusals: set[str]) -> None:
    """Nothing lost, and every failure and refusal explained by the scenario's fault."""
    problems = out.unexplained(allowed_failures, allowed_refusals)
    assert not problems, f"{out.line()}\n" + "\n".join(problems[:30])


def job_records(stack: Stack) -> set[str]:
    """Ids of every job that has a record in the stack's Redis."""
    store = sync_redis(stack)
    try:
        return {
            job_id_of_key(str(key))
            for key in store.scan_iter(JOB_KEY_PATTERN)
            if store.type(key) == "hash"
        }
    finally:
        store.close()


def reconcile(stack: Stack, out: Outcomes) -> None:
    """The job records in Redis are exactly the accepted uploads: no refused upload made one."""
    records = job_records(stack)
    assert records == set(out.accepted), (
        f"records without a 202: {sorted(records - set(out.accepted))[:5]}, "
        f"202s without a record: {sorted(set(out.accepted) - records)[:5]}"
    )


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, step: float = 0.05
) -> None:
    """Poll `condition()` until true, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(step)
