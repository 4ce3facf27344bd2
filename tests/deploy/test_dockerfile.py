"""The image: multi-stage, pinned base, non-root, no build tools in the final stage."""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy.manifests import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _global_args() -> dict[str, str]:
    """The defaults of the ARGs before the first FROM (those a FROM line may use)."""
    found: dict[str, str] = {}
    for instruction, args in _instructions():
        if instruction == "FROM":
            break
        if instruction == "ARG" and "=" in args:
            name, _, default = args.partition("=")
            found[name.strip()] = default.strip()
    return found


def test_multi_stage_with_pinned_base() -> None:
    stages = _stages()
    assert len(stages) >= 2
    defaults = _global_args()
    # The base is a build argument (deploy/containers.sh passes a local Debian base) whose
    # default is the official image.
    assert set(defaults) == {"BASE_IMAGE"}, defaults
    for stage in stages:
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], stage[0][1].split()[0])
        # A patch release of Python on a named Debian release (or a digest), never a moving tag.
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image


def test_final_stage_is_non_root_without_build_tools() -> None:
    final = _stages()[-1]
    users = [args for instruction, args in final if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    runs = " ".join(args for instruction, args in final if instruction == "RUN")
    for tool in ("gcc", "g++", "build-essential", "grpcio-tools", "grpc_tools", "pip install"):
        assert tool not in runs, f"the final stage must not install {tool}"
    copies = " ".join(args for instruction, args in final if instruction == "COPY")
    assert "/opt/tools" not in copies, "the code-generation venv stays in the build stage"


def test_generated_code_is_on_the_path() -> None:
    final = _stages()[-1]
    env = " ".join(args for instruction, args in final if instruction == "ENV")
    copies = [args for instruction, args in final if instruction == "COPY"]
    assert "PYTHONPATH=/app/gen" in env
    assert any(c.split()[-1] == "/app/gen" for c in copies)
    build = " ".join(args for _, args in _stages()[0])
    assert "grpc_tools.protoc" in build and "--pyi_out" in build


def test_dockerignore_admits_everything_copied() -> None:
    """The allow-list .dockerignore lets in every path a COPY takes from the context."""
    allowed = {
        line.strip().lstrip("!").rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip().startswith("!")
    }
    for instruction, args in _instructions():
        if instruction == "COPY" and "--from=" not in args:
            for source in args.split()[:-1]:
                name = source.rstrip("/")
                assert name in allowed, f"COPY {source}: not admitted by .dockerignore"
                assert Path(ROOT / name).exists(), f"COPY {source}: missing"
