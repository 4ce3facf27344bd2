"""Read an uploaded CSV, XLSX, JSON or Parquet file (detected by content) into a Table."""

from __future__ import annotations

import logging
import pathlib

from analysis_svc.engine.readers.common import (
    EMPTY_MESSAGE,
    MAX_COLUMNS,
    NOT_TABULAR_MESSAGE,
    InvalidInput,
    Table,
    finalise_frame,
    unique_names,
)
from analysis_svc.engine.readers.csv_reader import read_csv, to_utf8
from analysis_svc.engine.readers.json_reader import looks_like_json, read_json
from analysis_svc.engine.readers.parquet_reader import PARQUET_MAGIC, read_parquet
from analysis_svc.engine.readers.xlsx_reader import (
    MAX_XLSX_COMPRESSION_RATIO,
    MAX_XLSX_UNCOMPRESSED_BYTES,
    read_xlsx,
)

__all__ = [
    "MAX_COLUMNS",
    "MAX_XLSX_COMPRESSION_RATIO",
    "MAX_XLSX_UNCOMPRESSED_BYTES",
    "InvalidInput",
    "Table",
    "read_table",
    "unique_names",
]

_LOGGER = logging.getLogger(__name__)

_ZIP_MAGIC = b"PK\x03\x04"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0"
_OTHER_BINARY_MAGICS = (
    b"\x89PNG",
    b"%PDF",
    b"\xff\xd8\xff",
    b"GIF8",
    b"\x1f\x8b",  # gzip
    b"7z\xbc\xaf",
    b"Rar!",
)


NO_ROWS_MESSAGE = "The file has column names but no data rows: there is nothing to analyse."


def read_table(path: pathlib.Path, filename_hint: str = "") -> Table:
    """Read ``path`` as XLSX, Parquet, JSON or delimited text (detected by content).

    ``filename_hint`` is the user's file name; it only breaks exact ties when guessing the
    CSV delimiter. Raises InvalidInput, with a message for a person, for files that cannot
    be analysed.
    """
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head:
        raise InvalidInput(EMPTY_MESSAGE)
    if head.startswith(_ZIP_MAGIC):
        table = read_xlsx(path)
    elif head.startswith(PARQUET_MAGIC):
        table = read_parquet(path)
    elif head.startswith(_OLE2_MAGIC):
        raise InvalidInput(
            "The file is a legacy Excel (.xls) or other OLE2 document; save it as .xlsx or CSV."
        )
    elif head.startswith(_OTHER_BINARY_MAGICS):
        raise InvalidInput(NOT_TABULAR_MESSAGE)
    else:
        encoding, data = to_utf8(path.read_bytes())
        if looks_like_json(data):
            table = read_json(data)
        else:
            table = read_csv(data, encoding, filename_hint)
    frame = finalise_frame(table.frame)
    if frame.shape[0] == 0 and frame.shape[1] > 0:
        raise InvalidInput(NO_ROWS_MESSAGE)
    _LOGGER.info(
        "read %s table: %d rows x %d columns", table.source_format, frame.shape[0], frame.shape[1]
    )
    return Table(
        frame=frame,
        source_format=table.source_format,
        skipped_rows=table.skipped_rows,
        header=table.header,
    )
