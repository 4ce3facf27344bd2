"""The uploader's analysis options (`{"roles": {"<column>": "<role>"}}`): parsing and limits.

The gateway checks them at upload (400 `invalid_options`), ingest_svc again for internal
callers, and the job record keeps their canonical JSON for the worker. Column names are data
from the uploader: they are echoed back in error messages (to that uploader) but never logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from datapilot_runtime.report.insights import OVERRIDE_ROLES

MAX_OPTIONS_BYTES = 64 * 1024
MAX_ROLE_ENTRIES = 2_000
KNOWN_KEYS = ("roles",)
_ECHO_CHARS = 80


class InvalidOptions(ValueError):
    """The options are not acceptable; str() says why, for a person."""


@dataclass(frozen=True)
class AnalysisOptions:
    """Validated options: column name -> one of OVERRIDE_ROLES, in the uploader's order."""

    roles: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def to_json(self) -> str:
        """Canonical compact JSON ('' when there is nothing to override)."""
        if not self.roles:
            return ""
        return json.dumps({"roles": dict(self.roles)}, ensure_ascii=False, separators=(",", ":"))


NO_OPTIONS = AnalysisOptions()


def _echo(name: str) -> str:
    return repr(name if len(name) <= _ECHO_CHARS else name[:_ECHO_CHARS] + "…")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: a key named twice is ambiguous (which role wins?), so refuse it."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidOptions(f"options name {_echo(key)} twice")
        result[key] = value
    return result


def parse_options(raw: str | bytes) -> AnalysisOptions:
    """Parse and check the `options` field; empty (or whitespace) means no options."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_OPTIONS_BYTES:
        raise InvalidOptions(f"options are {size} bytes; the limit is {MAX_OPTIONS_BYTES}")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise InvalidOptions("options are not UTF-8 text") from exc
    if not text.strip():
        return NO_OPTIONS
    try:
        document = json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise InvalidOptions(
            f"options are not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(document, dict):
        raise InvalidOptions('options must be a JSON object, e.g. {"roles": {"year": "calendar"}}')
    unknown = [key for key in document if key not in KNOWN_KEYS]
    if unknown:
        raise InvalidOptions(
            f"unknown key {_echo(unknown[0])} in options; known keys: {', '.join(KNOWN_KEYS)}"
        )
    roles = document.get("roles", {})
    if not isinstance(roles, dict):
        raise InvalidOptions("options.roles must be an object of column name to role")
    if len(roles) > MAX_ROLE_ENTRIES:
        raise InvalidOptions(
            f"options.roles has {len(roles)} entries; the limit is {MAX_ROLE_ENTRIES}"
        )
    allowed = ", ".join(sorted(OVERRIDE_ROLES))
    for column, role in roles.items():
        if not column:
            raise InvalidOptions("options.roles names an empty column name")
        if not isinstance(role, str) or role not in OVERRIDE_ROLES:
            shown = _echo(role) if isinstance(role, str) else json.dumps(role)[:_ECHO_CHARS]
            raise InvalidOptions(
                f"unknown role {shown} for column {_echo(column)}; roles: {allowed}"
            )
    return AnalysisOptions(MappingProxyType(dict(roles)))
