"""Scenario 7: hostile files mixed into normal traffic; each ends as its kind allows."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from tests.chaos.harness import (
    SCALE,
    UPLOAD_TIMEOUT_SECONDS,
    Upload,
    check,
    reconcile,
    report,
    running_stack,
    sales_csv,
    settle,
    upload_one,
)
from tests.chaos.hostile import corpus
from tests.chaos.summary import Outcomes

pytestmark = pytest.mark.timeout(SCALE.test_timeout)
ENV = {"WORKER_CONCURRENCY": "2", "ANALYSIS_MAX_MEMORY_MB": "512"}


def test_hostile_files_end_clearly_and_normal_jobs_complete(tmp_path: Path) -> None:
    """A 4xx at upload or `failed` with a specific code: never a 5xx, never `processing_error`.

    Refusals at upload are recorded per hostile file and allowed for those alone: every normal
    upload of the same stream is accepted, and every one of those jobs completes.
    """
    files = corpus()
    out = Outcomes(f"7 {len(files)} hostile files + {SCALE.normal_with_hostile} normal")
    uploads = [Upload(h.filename, h.content, h.name) for h in files]
    uploads += [Upload(f"n{n}.csv", sales_csv(n)) for n in range(SCALE.normal_with_hostile)]
    random.Random(7).shuffle(uploads)
    outcomes: dict[str, str] = {}  # hostile file name -> outcome
    normal_refused: list[str] = []
    with running_stack(tmp_path, ENV, workers=2) as stack:
        with httpx.Client(base_url=stack.gateway_url, timeout=UPLOAD_TIMEOUT_SECONDS) as http:
            for upload in uploads:
                refused = upload_one(http, upload.name, upload.content, upload.label, out)
                if refused and upload.label == "normal":
                    normal_refused.append(f"{upload.name}: {refused}")
                elif refused:
                    outcomes[upload.label] = f"{refused[0]}xx {refused}"
        settle(stack.gateway_url, out, timeout=SCALE.test_timeout / 2)
        reconcile(stack, out)
        dead = stack.dead()
    for job_id, label in out.accepted.items():
        final = out.final[job_id]
        outcomes[label] = final.status + (f":{final.error}" if final.error else "")
    report(out)
    assert not dead, f"processes died: {dead}"
    unexpected = {
        h.name: outcomes.get(h.name, "?")
        for h in files
        if _kind(outcomes.get(h.name, "?")) not in h.allowed
    }
    assert not unexpected, f"hostile files with outcomes their kind does not allow: {unexpected}"
    assert not normal_refused, f"normal uploads refused: {normal_refused}"
    normal = out.jobs_labelled("normal")
    assert len(normal) == SCALE.normal_with_hostile, out.line()
    assert [out.final[j].status for j in normal] == ["completed"] * len(normal), out.line()
    check(
        out,
        allowed_failures={"invalid_input", "resource_exhausted"},
        allowed_refusals={"400", "413", "415"},
    )


def _kind(outcome: str) -> str:
    """`4xx` for any refusal with a 4xx status, else the outcome itself."""
    return "4xx" if outcome.startswith("4xx") else outcome
