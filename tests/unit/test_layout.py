"""The layout rules of the tree: small folders, no Python under deploy/, a pure analysis engine."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "analysis_svc",
    "datapilot_runtime",
    "gateway",
    "ingest_svc",
    "llm_svc",
    "datapilot_cli",
    "devstack",
)
MAX_MODULES_SIDE_BY_SIDE = 18
# The engine runs in the sandbox child: it may use the pandas-free report models of the runtime,
# never a transport, a store or service code.
ENGINE_FORBIDDEN = ("grpc", "redis", "minio", "httpx", "datapilot", "gateway", "ingest_svc")
# error_codes is pure data (no grpc): a reader names the code of its refusal.
ENGINE_ALLOWED_RUNTIME = ("datapilot_runtime.report", "datapilot_runtime.error_codes")


def _folders() -> list[Path]:
    return [
        folder
        for package in PACKAGES
        for folder in [ROOT / package, *sorted((ROOT / package).rglob("*"))]
        if folder.is_dir() and folder.name != "__pycache__"
    ]


@pytest.mark.parametrize("folder", _folders(), ids=lambda f: str(f.relative_to(ROOT)))
def test_no_folder_holds_more_than_18_modules(folder: Path) -> None:
    modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= MAX_MODULES_SIDE_BY_SIDE, sorted(p.name for p in modules)


def test_deploy_holds_no_python() -> None:
    assert sorted((ROOT / "deploy").rglob("*.py")) == []


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _forbidden(module: str) -> bool:
    if module.startswith(ENGINE_ALLOWED_RUNTIME):
        return False
    if module.startswith("datapilot_runtime"):
        return True
    if module.startswith("analysis_svc") and not module.startswith("analysis_svc.engine"):
        return True
    return module.split(".")[0] in ENGINE_FORBIDDEN


def test_engine_is_pure() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "analysis_svc" / "engine").rglob("*.py"))
        for module in _imports(path)
        if _forbidden(module)
    }
    assert not offenders, sorted(offenders)


def test_engine_constants_import_without_pandas() -> None:
    # The worker's asyncio process reads SCHEMA_VERSION; it must not pay for pandas to do so.
    code = (
        "import sys; import analysis_svc.engine as e; assert e.SCHEMA_VERSION; "
        "sys.exit(1 if 'pandas' in sys.modules or 'pyarrow' in sys.modules else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False)
    assert done.returncode == 0
