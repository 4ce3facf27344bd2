"""Real third-party servers for tests: redis-server and moto's S3 server on free ports."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from datapilot_runtime.redis_client import RedisClient, connect_redis
from devstack.processes import ManagedProcess, free_port, redis_process, wait_tcp


@dataclass
class RunningServer:
    """A started server and how to reach it."""

    process: ManagedProcess
    url: str
    port: int

    def stop(self) -> None:
        self.process.stop()


@dataclass(frozen=True)
class RedisTarget:
    """Where a test's Redis is: a standalone server or a seed node of a cluster."""

    url: str
    cluster: bool
    # The cluster runs exercise stream sharding too.
    shards: int = 1

    async def connect(self) -> RedisClient:
        return await connect_redis(self.url, cluster=self.cluster)


def start_redis(run_dir: Path) -> RunningServer:
    port = free_port()
    process = redis_process(port, run_dir / "redis-data", run_dir / "redis.log")
    process.start()
    wait_tcp("127.0.0.1", port, 30, process)
    return RunningServer(process, f"redis://127.0.0.1:{port}/0", port)


def start_moto(run_dir: Path) -> RunningServer:
    port = free_port()
    process = ManagedProcess(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
        run_dir / "moto.log",
    )
    process.start()
    wait_tcp("127.0.0.1", port, 30, process)
    return RunningServer(process, f"http://127.0.0.1:{port}", port)


def s3_env(moto: RunningServer, bucket: str) -> dict[str, str]:
    """Environment that points a stack's blob store at the moto server."""
    return {
        "BLOB_BACKEND": "s3",
        "S3_ENDPOINT": moto.url,
        "S3_ACCESS_KEY": "test",
        "S3_SECRET_KEY": "test",
        "S3_BUCKET": bucket,
    }
