"""Session fixtures: real Redis, a real S3 endpoint (moto) and real stacks on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import Stack, StackConfig
from tests.support.api import checked_client
from tests.support.redis_cluster import RedisClusterNodes, start_redis_cluster
from tests.support.servers import RedisTarget, RunningServer, s3_env, start_moto, start_redis

FAST_RETRY_ENV = {
    "RETRY_INITIAL_DELAY": "0.05",
    "RETRY_MAX_DELAY": "0.2",
    "LOG_LEVEL": "INFO",
    "RATE_LIMIT_PER_MINUTE": "0",  # the rate limit has its own stack and test
}


@pytest.fixture(scope="session")
def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def redis_server(run_root: Path) -> Iterator[RunningServer]:
    server = start_redis(run_root / "redis-standalone")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(run_root: Path) -> Iterator[RedisClusterNodes]:
    """A real Redis Cluster (3 masters, 3 replicas), started once per session."""
    nodes = start_redis_cluster(run_root / "redis-cluster")
    yield nodes
    nodes.stop()


@pytest.fixture(params=["standalone", "cluster"])
def job_redis(request: pytest.FixtureRequest) -> RedisTarget:
    """The job store's and queue's tests run on a standalone Redis and on a Redis Cluster."""
    if request.param == "cluster":
        nodes: RedisClusterNodes = request.getfixturevalue("redis_cluster")
        nodes.flush()
        return RedisTarget(nodes.url, cluster=True, shards=3)
    server: RunningServer = request.getfixturevalue("redis_server")
    return RedisTarget(server.url, cluster=False)


@pytest.fixture(scope="session")
def moto_server(run_root: Path) -> Iterator[RunningServer]:
    server = start_moto(run_root / "moto")
    yield server
    server.stop()


def _start_stack(run_dir: Path, env: dict[str, str], workers: int = 1) -> Stack:
    stack = Stack(StackConfig(run_dir=run_dir, env={**FAST_RETRY_ENV, **env}, workers=workers))
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="session")
def fs_stack(run_root: Path) -> Iterator[Stack]:
    stack = _start_stack(run_root / "fs-stack", {"BLOB_BACKEND": "fs"})
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def s3_stack(run_root: Path, moto_server: RunningServer) -> Iterator[Stack]:
    stack = _start_stack(run_root / "s3-stack", s3_env(moto_server, "e2e-jobs"))
    yield stack
    stack.stop()


@pytest.fixture(scope="session", params=["fs", "s3"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """Each end-to-end test runs against both blob-store backends."""
    fixture: Stack = request.getfixturevalue(f"{request.param}_stack")
    return fixture


@pytest.fixture(scope="session")
def idle_stack(run_root: Path) -> Iterator[Stack]:
    """A stack without workers (jobs stay queued) and a 1 s job timeout."""
    stack = _start_stack(run_root / "idle-stack", {"JOB_TIMEOUT_SECONDS": "1"}, workers=0)
    yield stack
    stack.stop()


@pytest.fixture()
def client(stack: Stack) -> Iterator[httpx.Client]:
    with checked_client(stack.gateway_url, timeout=30) as http:
        yield http
