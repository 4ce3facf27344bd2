"""SIGTERM stops every process of a real stack gracefully: exit code 0, health NOT_SERVING."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.stack import Stack, StackConfig
from tests.support.api import upload, wait_terminal


def test_sigterm_stops_every_process_with_exit_code_zero(tmp_path: Path) -> None:
    stack = Stack(StackConfig(run_dir=tmp_path, env={"GRPC_SHUTDOWN_GRACE_SECONDS": "2"}))
    try:
        stack.start()
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
            job = upload(client, "t.csv", b"a,b\n1,2\n")
            assert wait_terminal(client, job["jobId"])["status"] == "completed"
        codes = stack.stop()  # exit codes of 0, not -9: none needed the SIGKILL after the grace
    finally:
        stack.stop()
    assert {name: code for name, code in codes.items() if name != "redis"} == {
        "gateway": 0,
        "worker-1": 0,
        "analysis": 0,
        "llm": 0,
        "ingest": 0,
    }


def test_health_reports_not_serving_during_drain(tmp_path: Path) -> None:
    stack = Stack(StackConfig(run_dir=tmp_path, env={"GRPC_SHUTDOWN_GRACE_SECONDS": "3"}))
    try:
        stack.start()
        ingest = stack.processes["ingest"]
        with grpc.insecure_channel(stack.addresses["ingest"]) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            ingest.signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert ingest.process is not None and ingest.process.wait(10) == 0
    finally:
        stack.stop()
