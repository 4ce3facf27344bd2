"""Read JSON tables: an array of records, a wrapped array, columns of arrays, or JSON lines."""

from __future__ import annotations

import io
import json
import logging
import sys
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson

from analysis_svc.engine.readers.common import (
    MAX_COLUMNS,
    NO_COLUMNS_MESSAGE,
    InvalidInput,
    Table,
    check_column_count,
)

_LOGGER = logging.getLogger(__name__)

_NESTED_PROBE = 200


TOO_DEEP_MESSAGE = "The JSON is nested too deeply to be a table (records of values expected)."
TOO_LONG_NUMBER_MESSAGE = (
    f"The JSON holds a number of more than {sys.get_int_max_str_digits()} digits: not a value."
)


def looks_like_json(data: bytes) -> bool:
    """True when the (UTF-8, BOM-less) text starts like a JSON array or object."""
    return data.lstrip()[:1] in (b"[", b"{")


def read_json(data: bytes) -> Table:
    """Parse UTF-8 JSON bytes into a Table; raise InvalidInput with the position of an error."""
    text = data.decode("utf-8")
    try:  # nesting is bounded by the recursion limit: json, normalising and flattening recurse
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data" and text.lstrip().startswith("{"):
                return Table(frame=_json_lines(data, text), source_format="json")
            raise InvalidInput(
                f"The file looks like JSON but is not valid JSON (line {exc.lineno}, "
                f"column {exc.colno})."
            ) from exc
        except ValueError as exc:  # Python's guard against quadratic int parsing
            raise InvalidInput(TOO_LONG_NUMBER_MESSAGE) from exc
        return Table(frame=_records_frame(_records_of(document)), source_format="json")
    except RecursionError as exc:
        raise InvalidInput(TOO_DEEP_MESSAGE) from exc


def _records_of(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        lists = [value for value in document.values() if isinstance(value, list)]
        if len(document) == 1 and lists and all(isinstance(v, dict) for v in lists[0][:50]):
            return lists[0]  # {"data": [{...}, ...]}
        lengths = {len(value) for value in lists}
        if lists and len(lists) == len(document) and len(lengths) == 1:
            keys = list(document)
            return [dict(zip(keys, row, strict=True)) for row in zip(*lists, strict=True)]
        return [document]
    raise InvalidInput("The JSON file holds a single value, not a table of records.")


def _records_frame(records: list[Any]) -> pd.DataFrame:
    if not records:
        raise InvalidInput(NO_COLUMNS_MESSAGE)
    if all(isinstance(item, list) for item in records[:_NESTED_PROBE]):
        header, *body = records
        if all(isinstance(item, str) for item in header):
            return flatten_nested(pd.DataFrame(body, columns=header) if body else _empty(header))
        return flatten_nested(pd.DataFrame(records))
    if not all(isinstance(item, dict) for item in records):
        raise InvalidInput("The JSON array must hold objects (one per row) or arrays of values.")
    keys: set[str] = set()
    for item in records:  # every record: a late wide one must not build a huge frame first
        keys.update(item)
        if len(keys) > MAX_COLUMNS:
            break
    check_column_count(len(keys))
    if any(isinstance(item.get(key), dict) for item in records[:_NESTED_PROBE] for key in item):
        frame = pd.json_normalize(records, max_level=1)
    else:
        frame = pd.DataFrame.from_records(records)
    return flatten_nested(frame)


def _empty(header: list[str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=object) for name in header})


def _json_lines(data: bytes, text: str) -> pd.DataFrame:
    """JSON lines: pyarrow's reader when the types are consistent, else one object a line."""
    try:
        table = pajson.read_json(io.BytesIO(data))
        table = table.flatten()
        check_column_count(int(table.num_columns))
        return flatten_nested(table.to_pandas(date_as_object=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        _LOGGER.info("json lines not uniform for pyarrow; decoding line by line")
    records: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"Line {number} of the JSON lines file is not valid JSON.") from exc
        except ValueError as exc:
            raise InvalidInput(TOO_LONG_NUMBER_MESSAGE) from exc
        except RecursionError as exc:
            raise InvalidInput(TOO_DEEP_MESSAGE) from exc
    return _records_frame(records)


def flatten_nested(frame: pd.DataFrame) -> pd.DataFrame:
    """Serialise list/dict cells to JSON text so that every column is hashable."""
    check_column_count(int(frame.shape[1]))
    frame.columns = [str(name) for name in frame.columns]
    for name in frame.columns:
        column = frame[name]
        if column.dtype != object:
            continue
        probe = column.dropna().head(_NESTED_PROBE)
        if any(isinstance(value, list | dict | tuple) for value in probe) or _has_arrays(probe):
            frame[name] = column.map(_to_text)
    return frame


def _has_arrays(probe: pd.Series) -> bool:
    return any(hasattr(value, "tolist") and not isinstance(value, str) for value in probe)


def _to_text(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return value
