"""README's configuration table: which process reads each variable, as the settings classes say."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from analysis_svc.settings import AnalysisSettings, WorkerSettings
from gateway.settings import GatewaySettings
from ingest_svc.settings import IngestSettings
from llm_svc.settings import LlmSettings

README = Path(__file__).resolve().parents[2] / "README.md"
READERS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "ingest_svc": IngestSettings,
    "analysis_svc": AnalysisSettings,
    "worker": WorkerSettings,
    "llm_svc": LlmSettings,
}
# Readers that are not a process's settings class.
OTHER_READERS = {"`make run`", "clients"}


def _table_rows() -> list[tuple[list[str], set[str]]]:
    text = README.read_text()
    table = text.split("| variable | default | read by |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.strip().splitlines()[1:]:
        variables_cell, _default, readers_cell = line.strip("|").split(" | ")
        variables = re.findall(r"`([A-Z0-9_]+)`", variables_cell)
        readers = {r.strip() for r in readers_cell.split("(")[0].split(",")}
        rows.append((variables, readers))
    return rows


def _reads(settings: type[BaseSettings], variable: str) -> bool:
    return variable.lower() in settings.model_fields


def test_the_table_names_exactly_the_processes_that_read_each_variable() -> None:
    rows = _table_rows()
    assert len(rows) > 30  # the table was found and parsed
    for variables, readers in rows:
        named = set(READERS) if readers == {"all"} else readers - OTHER_READERS
        assert named <= set(READERS), f"unknown readers {named - set(READERS)}"
        for variable in variables:
            reading = {name for name, settings in READERS.items() if _reads(settings, variable)}
            assert reading == named, (
                f"{variable}: read by {sorted(reading)}, README {sorted(named)}"
            )


def test_every_setting_is_documented() -> None:
    documented = {variable for variables, _ in _table_rows() for variable in variables}
    for name, settings in READERS.items():
        missing = {f.upper() for f in settings.model_fields} - documented
        assert not missing, f"{name} reads {sorted(missing)}, which the README does not list"


def test_env_example_lists_every_setting() -> None:
    text = (README.parent / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z0-9_]+)=", text, re.MULTILINE))
    for name, settings in READERS.items():
        missing = {f.upper() for f in settings.model_fields} - listed
        assert not missing, f"{name} reads {sorted(missing)}, which .env.example does not list"
