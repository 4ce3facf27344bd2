"""Scenario 13: a Redis Cluster master killed (SIGKILL) mid-run, with WAIT on (one replica).

An upload is answered 202 only once a replica of each master it wrote to has its writes, so
the failover of one master loses no accepted job. The killed node comes back later (as a pod
would) and rejoins as a replica.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from datapilot_runtime.jobs.keys import stream_key
from tests.chaos.harness import (
    SCALE,
    Upload,
    UploadStream,
    check,
    report,
    running_stack,
    sales_csv,
    settle,
    wait_until,
)
from tests.chaos.summary import Outcomes
from tests.support.jobs_redis import any_processing
from tests.support.redis_cluster import start_redis_cluster

pytestmark = pytest.mark.timeout(SCALE.test_timeout)
ENV = {
    "SIMULATED_SLOW_PROCESSING_SECONDS": "0.3",
    "WORKER_CONCURRENCY": "2",
    "REDIS_CLUSTER": "true",
    "JOB_STREAM_SHARDS": "3",
    "REDIS_WAIT_REPLICAS": "1",
}
# While the killed master's slots have no replica, uploads to them are refused (retryable).
REFUSALS = {"503 store_unavailable"}


def test_a_cluster_master_killed_mid_run_loses_no_accepted_job(tmp_path: Path) -> None:
    out = Outcomes("13 cluster master killed")
    nodes = start_redis_cluster(tmp_path / "cluster")
    try:
        seed = int(nodes.url.rsplit(":", 1)[1].split("/", 1)[0])
        with running_stack(tmp_path / "stack", ENV, workers=2, redis_url=nodes.url) as stack:
            uploads = [Upload(f"k{n}.csv", sales_csv(n)) for n in range(SCALE.jobs)]
            stream = UploadStream(stack.gateway_url, uploads, out, clients=2, interval=0.15)
            stream.start()
            # A third of the jobs accepted, then one running: kill the master.
            wait_until(lambda: len(out.accepted) >= SCALE.jobs // 3, 60, "a third accepted")
            wait_until(
                lambda: any_processing(stack, list(out.accepted)),
                60,
                "a job to be running before the master dies",
            )
            # A master other than the seed node (processes restarted later still find one);
            # preferably one that holds a stream shard.
            masters = [port for port in nodes.masters() if port != seed]
            streams = {nodes.master_of(stream_key(shard)) for shard in range(3)}
            victim = next((p for p in masters if p in streams), masters[0])
            in_flight = len(out.accepted)
            killed_at = time.monotonic()
            nodes.processes[victim].signal(signal.SIGKILL)
            nodes.processes[victim].stop()
            nodes.wait_serving()
            failover = time.monotonic() - killed_at
            time.sleep(SCALE.redis_outage)  # uploads meet the promoted master without a replica
            nodes.restart(victim)
            nodes.wait_healthy()
            out.notes.append(
                f"master killed with {in_flight} jobs accepted, replica promoted in "
                f"{failover:.1f}s, old master back as a replica after "
                f"{time.monotonic() - killed_at:.1f}s"
            )
            stream.join(180)
            later = Outcomes("after")
            after = [Upload(f"after{n}.csv", sales_csv(1000 + n)) for n in range(5)]
            UploadStream(stack.gateway_url, after, later).start().join(60)
            assert len(later.accepted) == len(after), f"after the failover: {later.line()}"
            for job_id in later.accepted:
                out.accept(job_id, "after")
            settle(stack.gateway_url, out, timeout=SCALE.test_timeout / 2)
            dead = stack.dead()
    finally:
        nodes.stop()
    report(out)
    assert not dead, f"processes died: {dead}"
    check(out, allowed_failures=set(), allowed_refusals=REFUSALS)
