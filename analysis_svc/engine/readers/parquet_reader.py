"""Read a Parquet file into a Table, checking its width from the footer before loading data."""

from __future__ import annotations

import logging
import pathlib

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis_svc.engine.readers.common import InvalidInput, Table, check_column_count
from analysis_svc.engine.readers.json_reader import flatten_nested
from datapilot_runtime.error_codes import ErrorCode

_LOGGER = logging.getLogger(__name__)

PARQUET_MAGIC = b"PAR1"
# Each row group costs a footer entry and a read per column: a 20 MB file of tiny groups is a
# metadata bomb. Writers make groups of ~1M rows (pyarrow) or 128 MB (Spark).
MAX_PARQUET_ROW_GROUPS = 1000


def read_parquet(path: pathlib.Path) -> Table:
    """Read every column of the file; nested values become JSON text, decimals floats."""
    try:  # decoding happens while converting too (invalid UTF-8 in a string column)
        parquet = pq.ParquetFile(path)
        check_column_count(int(parquet.schema_arrow.__len__()))
        groups = int(parquet.metadata.num_row_groups)
        if groups > MAX_PARQUET_ROW_GROUPS:
            raise InvalidInput(
                f"The Parquet file has {groups} row groups; at most {MAX_PARQUET_ROW_GROUPS} "
                "are read (rewrite it with larger row groups).",
                ErrorCode.ANALYSIS_LIMIT_EXCEEDED,
            )
        frame = _to_frame(parquet.read())
    except InvalidInput:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:  # UnicodeDecodeError included
        _LOGGER.warning("parquet could not be read (%s)", type(exc).__name__)
        raise InvalidInput("The Parquet file could not be read; it may be damaged.") from exc
    return Table(frame=frame, source_format="parquet")


def _to_frame(table: pa.Table) -> pd.DataFrame:
    """Flattened columns, dictionaries decoded, decimals as floats; nested values as JSON text."""
    # Full validation checks UTF-8 of every string now: pandas' Arrow-backed strings would
    # decode lazily, deep in the profile, and fail there.
    table.validate(full=True)
    table = table.flatten()
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_dictionary(field.type):
            column = column.cast(field.type.value_type)
        elif pa.types.is_decimal(field.type):
            column = column.cast(pa.float64())
        columns.append(column)
    table = pa.table(columns, names=[str(name) for name in table.column_names])
    frame = table.to_pandas(date_as_object=False, split_blocks=True, self_destruct=True)
    return flatten_nested(pd.DataFrame(frame))
