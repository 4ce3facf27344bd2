"""Writes docs/result.schema.json, the JSON Schema of result.json, from the typed report model.

`make schema` runs it; tests/unit/test_result_schema.py fails when the committed file differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from datapilot_runtime.report.result import ResultDocument

SCHEMA_ID = "https://datapilot.invalid/schemas/result.schema.json"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "result.schema.json"


def result_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of result.json, as validated (wire names: camelCase)."""
    schema = ResultDocument.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def schema_text() -> str:
    """The schema as committed: indented, keys in model order, a final newline."""
    return json.dumps(result_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema to the path given (default docs/result.schema.json)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DEFAULT_PATH
    target.write_text(schema_text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
