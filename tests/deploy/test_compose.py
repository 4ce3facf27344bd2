"""deploy/compose.yaml runs the same processes, commands and environment as deploy/k8s."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import PROCESSES, ROOT, Obj, env_entries, process_of, processes, render

COMPOSE = ROOT / "deploy" / "compose.yaml"
SUBSTITUTION = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+)(:-(?P<default>.*)|:\?(?P<error>.+))?\}$")
# Credentials have no default: compose refuses to start without them (`${VAR:?message}`).
REQUIRED_SECRETS = ("INTERNAL_AUTH_TOKEN", "DATAPILOT_API_KEYS", "S3_ACCESS_KEY", "S3_SECRET_KEY")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


@pytest.fixture(scope="module")
def compose_processes(compose: dict[str, Any]) -> dict[str, Obj]:
    found: dict[str, Obj] = {}
    for service in compose["services"].values():
        process = process_of({"command": service.get("command", [])})
        if process is not None:
            found[process] = service
    return found


def test_compose_runs_every_process_from_the_image(compose_processes: dict[str, Obj]) -> None:
    assert set(compose_processes) == set(PROCESSES)
    for service in compose_processes.values():
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert service["user"].split(":")[0] != "0"


def test_backing_stores_are_there(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "minio" in compose["services"]


@pytest.mark.parametrize("process", PROCESSES)
def test_compose_env_matches_kubernetes(compose_processes: dict[str, Obj], process: str) -> None:
    """Same variable names as the base manifests, same values for the non-secret ones."""
    objects = render("base")
    _, container = processes(objects)[process]
    k8s = {e.name: e for e in env_entries(objects, container)}
    env = {k: str(v) for k, v in compose_processes[process]["environment"].items()}
    assert set(env) == set(k8s), (
        f"{process}: only compose {set(env) - set(k8s)}, only k8s {set(k8s) - set(env)}"
    )
    for name, entry in k8s.items():
        given = env[name]
        if entry.source.startswith("secret:"):
            # Secrets come from the shell, never written in the file.
            if name == "REDIS_URL":
                continue  # points at the compose Redis, no credentials
            assert SUBSTITUTION.match(given), f"{process}: {name} must be ${{{name}:-...}}"
            continue
        match = SUBSTITUTION.match(given)
        compose_value = (match.group("default") or "") if match else given
        assert compose_value == entry.value, (
            f"{process}: {name}={compose_value!r}, k8s {entry.value!r}"
        )


def test_compose_health_checks_use_the_listen_ports(compose_processes: dict[str, Obj]) -> None:
    for process, service in compose_processes.items():
        env = service["environment"]
        if process == "gateway":
            port = env["GATEWAY_PORT"]
        else:
            port = (
                env["WORKER_GRPC_LISTEN_ADDR"] if process == "worker" else env["GRPC_LISTEN_ADDR"]
            ).rsplit(":", 1)[1]
        test = service["healthcheck"]["test"]
        command = test if isinstance(test, str) else " ".join(test)  # CMD-SHELL string or list
        assert f"127.0.0.1:{port}" in command, process


def test_worker_stop_grace_covers_the_drain(compose_processes: dict[str, Obj]) -> None:
    worker = compose_processes["worker"]
    grace = int(worker["stop_grace_period"].removesuffix("s"))
    env = worker["environment"]
    assert grace > float(env["WORKER_SHUTDOWN_GRACE_SECONDS"]) + float(
        env["GRPC_SHUTDOWN_GRACE_SECONDS"]
    )


def test_credentials_have_no_default(compose: dict[str, Any]) -> None:
    """No known credentials: every one must be set, else `docker compose up` stops at once."""
    seen = set()
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            match = SUBSTITUTION.match(str(value))
            if match is None or match.group("name") not in REQUIRED_SECRETS:
                continue
            seen.add(match.group("name"))
            assert match.group("error"), f"{name}: {key} must be ${{{match.group('name')}:?...}}"
            assert match.group("default") is None
    assert seen == set(REQUIRED_SECRETS)
    assert (
        "dev-api-key" not in COMPOSE.read_text() and "dev-internal-token" not in COMPOSE.read_text()
    )
