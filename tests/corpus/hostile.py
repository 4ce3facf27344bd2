"""The hostile corpus: files shaped to make a reader backtrack, loop, allocate or bloat a report.

Run ``python -m tests.corpus.hostile DIR`` to write them; tests call ``hostile_files()``.
Each file names the outcomes it may have: ``completed`` or ``failed:<code>``, with a pattern
its refusal message must match. Nothing here may end ``analysis_limit_exceeded`` on CPU (the
tests run them under a CPU bound, so a reader that loops over a declared range or backtracks
fails them by outcome, not by a timer) or ``processing_error``.
"""

from __future__ import annotations

import io
import json
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq

MIB = 1024 * 1024
COMPLETED = "completed"
INVALID = "failed:invalid_input"
LIMIT = "failed:analysis_limit_exceeded"
# A run of digits that ends in a letter: what a pattern like `\d+\.?\d*` splits every way.
BACKTRACK_FIELD = "1" * 32_000 + "x"


@dataclass(frozen=True)
class HostileFile:
    """One hostile file, the outcomes allowed for it and what a refusal must say."""

    name: str
    filename: str
    content: bytes
    allowed: frozenset[str]
    message: str = ""  # a regex a refusal's message must match (searched)


def _csv(rows: list[list[str]]) -> bytes:
    return "\n".join(",".join(row) for row in rows).encode() + b"\n"


def _table_rows(field: str, count: int = 30) -> list[list[str]]:
    """A small table whose `code` column holds `field` in every row (numbers beside it)."""
    return [["region", "code", "units"]] + [
        [("North", "South", "East")[n % 3], field, str(n)] for n in range(count)
    ]


def _xlsx(rows: list[list[object]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _patched_xlsx(
    rows: list[list[object]],
    patch: dict[bytes, bytes],
    *,
    stored: bool = False,
    member: str = "xl/worksheets/sheet1.xml",
) -> bytes:
    """An XLSX from `rows` whose first sheet's XML has each `old` replaced by `new`.

    `stored`: uncompressed members (repetitive cells would otherwise trip the zip-bomb guard).
    """
    source = zipfile.ZipFile(io.BytesIO(_xlsx(rows)))
    buffer = io.BytesIO()
    compression = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", compression) as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == member:
                for old, new in patch.items():
                    data = re.sub(old, new, data, count=1)
            out.writestr(item.filename, data)
    return buffer.getvalue()


def _small_rows() -> list[list[object]]:
    rows: list[list[object]] = [["region", "units"]]
    rows += [[("North", "South")[n % 2], n] for n in range(40)]
    return rows


def merge_bomb_xlsx() -> bytes:
    """A small XLSX whose merge range covers the whole sheet (A1:XFD1048576)."""
    return _patched_xlsx(
        _small_rows(),
        {
            rb"</sheetData>": b'</sheetData><mergeCells count="2"><mergeCell ref="A1:XFD1048576"/>'
            b'<mergeCell ref="A1:B1"/></mergeCells>'
        },
    )


def dimension_bomb_xlsx() -> bytes:
    """A small XLSX that declares its used range as the whole sheet."""
    return _patched_xlsx(
        _small_rows(), {rb'<dimension ref="[^"]*"/>': b'<dimension ref="A1:XFD1048576"/>'}
    )


def attribute_run_xlsx() -> bytes:
    """An XLSX whose workbook's <sheet> tag holds a 1 MB run of name characters (no `=`)."""
    return _patched_xlsx(
        _small_rows(),
        {rb"<sheet ": b"<sheet " + b"a" * MIB + b" "},
        stored=True,
        member="xl/workbook.xml",
    )


def far_cell_xlsx() -> bytes:
    """A small XLSX with one cell at XFD1048576: its bounding box is the whole sheet."""
    rows = _small_rows()
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    sheet["XFD1048576"] = 1
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _parquet(table: pa.Table, **options: object) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


def _wide_csv(columns: int) -> bytes:
    header = ",".join(f"c{n}" for n in range(columns))
    row = ",".join(str(n % 10) for n in range(columns))
    return f"{header}\n{row}\n{row}\n".encode()


def hostile_files() -> list[HostileFile]:
    """Every hostile file, one of each kind."""
    long_label = "L" * 20_000
    labels = [[f"{long_label}{n % 4}", str(n)] for n in range(60)]
    files = [
        # Backtracking-shaped fields, in every format and in the places patterns look.
        HostileFile(
            "csv-digits-then-letter",
            "digits.csv",
            _csv(_table_rows(BACKTRACK_FIELD)),
            frozenset({COMPLETED}),
        ),
        HostileFile(
            "csv-digits-then-letter-header",
            "digits_header.csv",
            _csv([[BACKTRACK_FIELD, "b"], *[[str(n), "x"] for n in range(30)]]),
            frozenset({COMPLETED}),
        ),
        HostileFile(
            "csv-decimal-comma-digits",
            "digits_comma.csv",
            ";".join(["a", "b"]).encode()
            + b"\n"
            + b"".join(b"1,5;" + ("9" * 20_000 + "e").encode() + b"\n" for _ in range(20)),
            frozenset({COMPLETED}),
        ),
        HostileFile(
            "csv-quarter-spaces",
            "quarter.csv",
            _csv([["period", "n"], *[["2015" + " " * 20_000 + "x", str(n)] for n in range(30)]]),
            frozenset({COMPLETED}),
        ),
        HostileFile(
            "xlsx-digits-then-letter",
            "digits.xlsx",
            _patched_xlsx(
                [[str(cell) for cell in row] for row in _table_rows(BACKTRACK_FIELD)],
                {},
                stored=True,
            ),
            frozenset({COMPLETED}),
        ),
        HostileFile(
            "json-digits-then-letter",
            "digits.json",
            json.dumps(
                [
                    {"region": r, "code": c, "units": u}
                    for r, c, u in _table_rows(BACKTRACK_FIELD)[1:]
                ]
            ).encode(),
            frozenset({COMPLETED}),
        ),
        HostileFile(
            "parquet-digits-then-letter",
            "digits.parquet",
            _parquet(
                pa.table(
                    {
                        "region": ["North", "South", "East"] * 10,
                        "code": [BACKTRACK_FIELD] * 30,
                        "units": list(range(30)),
                    }
                )
            ),
            frozenset({COMPLETED}),
        ),
        # Declared ranges that must never be loop bounds.
        HostileFile("xlsx-merge-bomb", "merge.xlsx", merge_bomb_xlsx(), frozenset({COMPLETED})),
        HostileFile(
            "xlsx-dimension-bomb", "dimension.xlsx", dimension_bomb_xlsx(), frozenset({COMPLETED})
        ),
        HostileFile(
            "xlsx-attribute-run",
            "attributes.xlsx",
            attribute_run_xlsx(),
            frozenset({COMPLETED, INVALID}),
        ),
        HostileFile(
            "xlsx-far-cell",
            "far.xlsx",
            far_cell_xlsx(),
            frozenset({COMPLETED, INVALID, "failed:resource_exhausted"}),
        ),
        # Very wide, very deep.
        HostileFile(
            "csv-100k-columns",
            "wide.csv",
            _wide_csv(100_000),
            frozenset({INVALID}),
            r"columns; at most 2000 are supported",
        ),
        HostileFile(
            "parquet-3000-columns",
            "wide.parquet",
            _parquet(pa.table({f"c{n}": [n] for n in range(3000)})),
            frozenset({INVALID}),
            r"3000 columns; at most 2000",
        ),
        HostileFile(
            "parquet-many-row-groups",
            "groups.parquet",
            _parquet(pa.table({"n": list(range(5000))}), row_group_size=1),
            frozenset({LIMIT}),
            r"5000 row groups; at most 1000",
        ),
        HostileFile(
            "json-late-wide-record",
            "late_wide.json",
            json.dumps(
                [{"a": n, "b": "x"} for n in range(250)] + [{f"k{n}": n for n in range(100_000)}]
            ).encode(),
            frozenset({INVALID}),
            r"100002 columns; at most 2000",
        ),
        HostileFile(
            "json-deep-arrays",
            "deep.json",
            b"[" * 200_000 + b"]" * 200_000,
            frozenset({INVALID}),
            r"nested too deeply",
        ),
        HostileFile(
            "json-deep-cell",
            "deep_cell.json",
            b'[{"a": 1, "b": '
            + b"[" * 5_000
            + b"]" * 5_000
            + b'}, {"a": 2, "b": []}, {"a": 3, "b": [1]}]',
            frozenset({COMPLETED, INVALID}),
        ),
        # Huge labels: a report stays small whatever the names and categories.
        HostileFile(
            "csv-huge-labels",
            "labels.csv",
            _csv([[long_label + "A", long_label + "B"], *labels]),
            frozenset({COMPLETED}),
        ),
        # One 15 MB field.
        HostileFile(
            "csv-15mb-field",
            "field.csv",
            b"name,n\n" + b"a" * (15 * MIB) + b",1\nb,2\nc,3\n",
            frozenset({COMPLETED, INVALID}),
        ),
        HostileFile(
            "csv-15mb-digit-field",
            "digit_field.csv",
            b"name,n\nx," + b"7" * (15 * MIB) + b"y\nb,2\nc,3\n",
            frozenset({COMPLETED, INVALID}),
        ),
    ]
    return files


def write(folder: Path) -> list[Path]:
    """Write every hostile file into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in hostile_files():
        path = folder / f"{item.name}-{item.filename}"
        path.write_bytes(item.content)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write(Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")):
        sys.stdout.write(f"{written}\n")
