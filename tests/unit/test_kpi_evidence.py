"""Evidence keys: the reference resolver of docs/kpi-report.md, and its tests."""

from __future__ import annotations

from typing import Any

_KEYED_LISTS = ("timeSeries", "correlations", "alerts")


def resolve(report: dict[str, Any], key: str) -> Any:
    """The value an evidence key points at; raises KeyError when it points nowhere."""
    head, _, rest = key.partition(".")
    if head == "columns":
        names = sorted((str(c["name"]) for c in report["columns"]), key=len, reverse=True)
        for name in names:
            if rest == name or rest.startswith(name + "."):
                column = next(c for c in report["columns"] if c["name"] == name)
                return _walk(column, rest[len(name) + 1 :])
        raise KeyError(key)
    if head in _KEYED_LISTS:
        items = sorted(report[head], key=lambda item: len(str(item["key"])), reverse=True)
        for item in items:
            if key == item["key"] or key.startswith(str(item["key"]) + "."):
                return _walk(item, key[len(str(item["key"])) + 1 :])
        raise KeyError(key)
    return _walk(report, key)


def _walk(value: Any, path: str) -> Any:
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, list):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(path)
    return value


def test_dotted_column_names_resolve_to_the_longest_match() -> None:
    import pandas as pd

    from analysis_svc.engine.kpis.report import compute_report
    from analysis_svc.engine.readers.common import Table

    frame = pd.DataFrame({"a": [1.5, 2.0, 2.5], "a.1": [10.5, 20.0, 29.5]})
    report = compute_report(Table(frame=frame, source_format="csv"))
    assert resolve(report, "columns.a.1.numeric.mean") == 20.0
    assert resolve(report, "columns.a.numeric.mean") == 2.0
    assert resolve(report, "dataset.rows") == 3


def test_unknown_keys_raise() -> None:
    import pytest

    report: dict[str, Any] = {"dataset": {"rows": 1}, "columns": [], "alerts": []}
    for key in ("dataset.nothing", "columns.x.numeric", "alerts.constant.x"):
        with pytest.raises(KeyError):
            resolve(report, key)
