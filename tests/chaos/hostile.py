"""A corpus of hostile upload files, generated in memory, each with the outcomes it may have.

Outcomes are `4xx` (refused at upload), `failed:<code>` or `completed`. A file only may complete
when it is a well-formed table whose content is merely nasty (formula payloads, odd encodings):
completing it is then the right answer, as long as nothing breaks.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

REFUSED = frozenset({"4xx"})
INVALID = frozenset({"4xx", "failed:invalid_input"})
HEAVY = frozenset({"4xx", "failed:invalid_input", "failed:resource_exhausted"})
NASTY_BUT_VALID = frozenset({"completed", "failed:invalid_input"})
MIB = 1024 * 1024


@dataclass(frozen=True)
class Hostile:
    """One hostile file and the outcomes that are acceptable for it."""

    name: str
    filename: str
    content: bytes
    allowed: frozenset[str]


def _xlsx(rows: list[list[object]]) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/content-types"><Override PartName="/xl/workbook.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>'
)
_WORKBOOK = (
    b'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/'
    b'spreadsheetml/2006/main"><sheets><sheet name="S" sheetId="1" r:id="rId1" xmlns:r="http://'
    b'schemas.openxmlformats.org/officeDocument/2006/relationships"/></sheets></workbook>'
)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _zip_bomb_xlsx() -> bytes:
    """An XLSX whose sheet inflates from ~50 KB to 64 MB (ratio > 1000)."""
    row = b'<row><c t="inlineStr"><is><t>' + b"0" * 1000 + b"</t></is></c></row>"
    sheet = b"<worksheet><sheetData>" + row * (64 * 1024) + b"</sheetData></worksheet>"
    return _zip(
        {
            "[Content_Types].xml": _CONTENT_TYPES,
            "xl/workbook.xml": _WORKBOOK,
            "xl/worksheets/sheet1.xml": sheet,
        }
    )


def _billion_laughs_xlsx() -> bytes:
    """An XLSX whose sheet XML declares exponentially expanding entities."""
    entities = b'<!ENTITY l0 "lol">' + b"".join(
        b'<!ENTITY l%d "%s">' % (n, (b"&l%d;" % (n - 1)) * 10) for n in range(1, 10)
    )
    sheet = (
        b'<?xml version="1.0"?><!DOCTYPE worksheet [' + entities + b"]>"
        b'<worksheet><sheetData><row><c t="inlineStr"><is><t>&l9;</t></is></c></row>'
        b"</sheetData></worksheet>"
    )
    return _zip(
        {
            "[Content_Types].xml": _CONTENT_TYPES,
            "xl/workbook.xml": _WORKBOOK,
            "xl/worksheets/sheet1.xml": sheet,
        }
    )


def _columns(count: int) -> bytes:
    header = ",".join(f"c{n}" for n in range(count))
    row = ",".join(str(n % 10) for n in range(count))
    return f"{header}\n{row}\n{row}\n".encode()


def corpus() -> list[Hostile]:
    """At least 20 hostile files; every one different in kind."""
    good = b"region,units,revenue\nNorth,3,10.5\nSouth,5,20.25\nEast,7,30.0\n"
    xlsx = _xlsx([["region", "units"], *[["North", n] for n in range(200)]])
    injection = (
        b"name,formula,amount\n"
        b"a,=cmd|' /C calc'!A0,1\n"
        b'b,=HYPERLINK("http://127.0.0.1/x";"click"),2\n'
        b"c,+SUM(1+1)*cmd|' /C notepad'!A0,3\n"
        b"d,-2+3+cmd|' /C calc'!A0,4\n"
        b"e,@SUM(1+1),5\n"
        b'f,"=1+1",6\n'
    )
    files = [
        Hostile("binary", "data.csv", bytes(range(256)) * 64, REFUSED),
        Hostile("elf", "report.csv", b"\x7fELF\x02\x01\x01\x00" + bytes(4096), REFUSED),
        Hostile("png", "sheet.xlsx", b"\x89PNG\r\n\x1a\n" + bytes(2048), REFUSED),
        Hostile("nul-after-sniff", "late.csv", good * 400 + b"x,\x00\x00,1\n" * 50, INVALID),
        Hostile("truncated-xlsx", "cut.xlsx", xlsx[: len(xlsx) * 2 // 3], INVALID),
        Hostile("zip-bomb-xlsx", "bomb.xlsx", _zip_bomb_xlsx(), HEAVY),
        Hostile("billion-laughs-xlsx", "laughs.xlsx", _billion_laughs_xlsx(), HEAVY),
        Hostile("zip-not-xlsx", "archive.xlsx", _zip({"readme.txt": b"hello"}), INVALID),
        Hostile("huge-single-line", "line.csv", b"x" * (8 * MIB), INVALID),
        Hostile("huge-single-row", "row.csv", b"a," * (4 * MIB) + b"a", INVALID),
        Hostile("100000-columns", "wide.csv", _columns(100_000), INVALID),
        Hostile("2001-columns", "wide2001.csv", _columns(2001), INVALID),
        Hostile(
            "invalid-utf8",
            "latin.csv",
            b"name,city,n\nJos\xe9,K\xf6ln,1\n\xff\xfe\xfd,\xc3\x28,2\nAna,\xa0\xa1,3\n",
            NASTY_BUT_VALID,
        ),
        Hostile("csv-injection", "inject.csv", injection, NASTY_BUT_VALID),
        Hostile("nested-json-arrays", "deep.json", b"[" * 100_000 + b"]" * 100_000, INVALID),
        Hostile(
            "nested-json-objects", "deep2.json", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, INVALID
        ),
        Hostile("json-scalar", "scalar.json", b"42", INVALID),
        Hostile("empty", "empty.csv", b"", INVALID),
        Hostile("whitespace-only", "blank.csv", b"\n \n\t\n" * 100, INVALID),
        Hostile("only-header", "header.csv", b"region,units,revenue\n", INVALID),
        Hostile("ragged-rows", "ragged.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8,9,10\n" * 50, INVALID),
        Hostile("utf16-garbage", "u16.csv", b"\xff\xfe" + bytes(range(1, 256)) * 8, INVALID),
        Hostile("parquet-garbage", "data.parquet", b"PAR1" + b"\x01\x02junk" * 500, INVALID),
        Hostile("over-20mib", "big.csv", good * (21 * MIB // len(good) + 1), REFUSED),
        Hostile(
            "huge-numbers",
            "numbers.csv",
            b"a,b\n1e999999," + b"9" * 5000 + b"\n-1e999999,1\nnan,inf\n1,2\n",
            NASTY_BUT_VALID,
        ),
        Hostile(
            "unterminated-quote",
            "quote.csv",
            b'a,b\n1,"never closed\n2,3\n' + b"4,5\n" * 1000,
            NASTY_BUT_VALID,
        ),
    ]
    assert len(files) >= 20
    return files
