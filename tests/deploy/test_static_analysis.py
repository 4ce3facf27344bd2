"""hadolint on the Dockerfile; checkov on the Dockerfile and every rendered overlay."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import OVERLAYS, ROOT, render_text
from tests.deploy.tools import checkov, hadolint

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


@pytest.fixture(scope="module")
def checkov_bin() -> str:
    return checkov()


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _checkov(checkov_bin: str, framework: str, target: Path) -> list[dict[str, Any]]:
    flag = "-d" if target.is_dir() else "-f"
    result = subprocess.run(
        [
            checkov_bin,
            flag,
            str(target),
            "--framework",
            framework,
            "--output",
            "json",
            "--quiet",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        # No network: --skip-download keeps checkov from asking its vendor for guidelines.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        check=False,
    )
    # checkov exits 1 when a check failed; anything else but 0/1 is a crash.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    if not result.stdout.strip():
        return []
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def _assert_clean(reports: list[dict[str, Any]]) -> None:
    assert reports, "checkov reported nothing (no resource scanned?)"
    failed = [
        f"{c['check_id']} {c['check_name']} on {c['resource']}"
        for r in reports
        for c in r["results"].get("failed_checks", [])
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    unexplained = [
        f"{c['check_id']} on {c['resource']}"
        for r in reports
        for c in r["results"].get("skipped_checks", [])
        if len((c["check_result"].get("suppress_comment") or "").strip()) < 20
    ]
    assert not unexplained, "skipped without a written reason:\n" + "\n".join(unexplained)
    passed = sum(int(r["summary"]["passed"]) for r in reports)
    assert passed > 0


def test_checkov_dockerfile(checkov_bin: str) -> None:
    _assert_clean(_checkov(checkov_bin, "dockerfile", DOCKERFILE))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_rendered_overlay(checkov_bin: str, overlay: str, tmp_path: Path) -> None:
    (tmp_path / f"{overlay}.yaml").write_text(render_text(f"overlays/{overlay}"))
    _assert_clean(_checkov(checkov_bin, "kubernetes", tmp_path))
