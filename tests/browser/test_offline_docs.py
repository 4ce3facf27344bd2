"""/docs in a real browser with no network beyond the gateway: Swagger UI lists the operations.

Debian's headless Chromium renders the page with every host but loopback unresolvable and a
dead proxy for anything else, so an asset from a CDN could not load. The browser is installed
(apt-get) by the fixture when missing. UPDATE_DOCS_SCREENSHOT=1 refreshes docs/img/swagger.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from devstack.stack import Stack

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "swagger.png"
# Only loopback resolves, and anything not on loopback goes to a proxy that is not there.
OFFLINE_FLAGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, timeout=1200
        )
        found = shutil.which("chromium")
    assert found, "chromium could not be installed"
    return found


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            *OFFLINE_FLAGS,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_swagger_ui_lists_every_operation_offline(
    fs_stack: Stack, chromium: str, tmp_path: Path
) -> None:
    document = httpx.get(f"{fs_stack.gateway_url}/openapi.json", timeout=10).json()
    page = httpx.get(f"{fs_stack.gateway_url}/docs", timeout=10).text
    assert "cdn" not in page.lower() and "/docs-assets/swagger-ui-bundle.js" in page

    dumped = _chromium(chromium, tmp_path / "profile", "--dump-dom", f"{fs_stack.gateway_url}/docs")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    assert 'class="swagger-ui"' in dom, dom[:2000]
    for path in document["paths"]:
        assert f'data-path="{path}"' in dom, f"{path} is not listed: {dom[:2000]}"
    assert "DataPilot API" in dom

    shot = tmp_path / "swagger.png"
    taken = _chromium(
        chromium,
        tmp_path / "profile-shot",
        "--window-size=1280,1700",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        f"{fs_stack.gateway_url}/docs",
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
