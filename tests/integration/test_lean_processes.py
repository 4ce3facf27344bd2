"""The worker's asyncio process, the gateway and llm_svc never load pandas or pyarrow.

pandas runs in the worker's forkserver children only; a stray import of an engine module (for a
constant, say) would load it into a long-lived process that has no use for it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from devstack.processes import descendant_pids
from devstack.stack import Stack
from tests.support.api import upload, wait_terminal

SALES = Path(__file__).resolve().parents[1] / "data" / "sales.csv"
# Shared objects that only pandas (its compiled extensions) and pyarrow bring in.
HEAVY = ("pandas/_libs", "libarrow", "pyarrow/lib")


def _heavy_mappings(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as maps:
        paths = {line.split()[-1] for line in maps if "/" in line}
    return {path for path in paths if any(mark in path for mark in HEAVY)}


@pytest.fixture(scope="module")
def worked_stack(fs_stack: Stack) -> Stack:
    """The stack after one whole job, so that whatever the services import lazily is imported."""
    with httpx.Client(base_url=fs_stack.gateway_url, timeout=30) as client:
        job = upload(client, "sales.csv", SALES.read_bytes())
        assert wait_terminal(client, job["jobId"])["status"] == "completed"
    return fs_stack


def test_the_analysis_children_do_map_pandas(worked_stack: Stack) -> None:
    """The check can see pandas: the worker's forkserver and its children have it mapped."""
    below = descendant_pids(worked_stack.processes["worker-1"].pid)
    forkservers = [
        pid for pid in below if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert forkservers, "the worker has no forkserver"
    assert all(_heavy_mappings(pid) for pid in forkservers)


@pytest.mark.parametrize("name", ["worker-1", "gateway", "llm"])
def test_process_does_not_map_pandas(worked_stack: Stack, name: str) -> None:
    assert _heavy_mappings(worked_stack.processes[name].pid) == set()
