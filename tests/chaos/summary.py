"""Outcomes of a chaos run: what was submitted, how each job ended, what was lost; one line."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

TERMINAL = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class FinalJob:
    """How an accepted job ended: its status, error code, and whether its artifact exists."""

    job_id: str
    status: str
    error: str = ""
    artifact: bool = False
    attempt: int = 0

    @property
    def lost(self) -> bool:
        """Not terminal, or terminal without its artifact (result.json / error.json)."""
        if self.status == "completed" or self.status == "failed":
            return not self.artifact
        return self.status != "cancelled"


@dataclass
class Outcomes:
    """Thread-safe record of one scenario: accepted jobs, refused uploads, final states."""

    scenario: str
    accepted: dict[str, str] = field(default_factory=dict)  # job id -> upload label
    refused: Counter[str] = field(default_factory=Counter)  # "503 blob_upload_failed" -> n
    final: dict[str, FinalJob] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the fault did, for the line
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def accept(self, job_id: str, label: str) -> None:
        with self._lock:
            self.accepted[job_id] = label

    def refuse(self, reason: str) -> None:
        with self._lock:
            self.refused[reason] += 1

    def settle(self, job: FinalJob) -> None:
        with self._lock:
            self.final[job.job_id] = job

    def jobs_labelled(self, label: str) -> list[str]:
        return [job_id for job_id, value in self.accepted.items() if value == label]

    @property
    def completed(self) -> list[str]:
        return [j for j, f in self.final.items() if f.status == "completed" and not f.lost]

    @property
    def failures(self) -> Counter[str]:
        return Counter(f.error or "?" for f in self.final.values() if f.status == "failed")

    @property
    def lost(self) -> list[str]:
        return [j for j in self.accepted if j not in self.final or self.final[j].lost]

    def line(self) -> str:
        """`N submitted, N completed, N failed (by code), N lost` (+ uploads refused)."""
        failures = self.failures
        by_code = ", ".join(f"{code}: {n}" for code, n in sorted(failures.items()))
        text = (
            f"{self.scenario}: {len(self.accepted)} submitted, {len(self.completed)} completed, "
            f"{sum(failures.values())} failed ({by_code or 'none'}), {len(self.lost)} lost"
        )
        cancelled = sum(1 for f in self.final.values() if f.status == "cancelled")
        if cancelled:
            text += f", {cancelled} cancelled"
        if self.refused:
            refused = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.refused.items()))
            text += f"; not submitted: {sum(self.refused.values())} ({refused})"
        return "; ".join([text, *self.notes])

    @property
    def rerun(self) -> int:
        """Jobs delivered more than once (their first worker was lost or stopped)."""
        return sum(1 for f in self.final.values() if f.attempt > 1)

    def unexplained(self, allowed_failures: set[str], allowed_refusals: set[str]) -> list[str]:
        """Every outcome the fault does not explain, described for an assertion message.

        An allowed refusal is a whole reason (`503 blob_upload_failed`) or a status (`503`).
        """
        problems = [f"lost: {job_id} ({self.final.get(job_id)})" for job_id in self.lost]
        problems += [
            f"failed with {f.error!r}: {f.job_id}"
            for f in self.final.values()
            if f.status == "failed" and f.error not in allowed_failures
        ]
        problems += [
            f"cancelled: {f.job_id}" for f in self.final.values() if f.status == "cancelled"
        ]
        problems += [
            f"upload refused {n}x: {reason}"
            for reason, n in self.refused.items()
            if reason not in allowed_refusals and reason.split(" ", 1)[0] not in allowed_refusals
        ]
        return problems
