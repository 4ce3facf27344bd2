"""Allow-list of upload types, decided by content (the first bytes), never by name or header."""

from __future__ import annotations

from gateway.problems import ProblemError

SNIFF_BYTES = 8192
_ZIP = b"PK\x03\x04"
_PARQUET = b"PAR1"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def kind_of(head: bytes) -> str:
    """`xlsx` (a zip), `parquet`, `text` (CSV / JSON), or `binary`."""
    if head.startswith(_ZIP):
        return "xlsx"
    if head.startswith(_PARQUET):
        return "parquet"
    if head.startswith(_UTF16_BOMS) or not head:
        return "text"
    if b"\x00" in head:
        return "binary"
    controls = sum(1 for byte in head if byte < 9 or 13 < byte < 32)
    return "binary" if controls > len(head) // 100 else "text"


def check_allowed(head: bytes) -> str:
    """The kind of an upload from its first bytes; 415 for anything not on the allow-list."""
    kind = kind_of(head[:SNIFF_BYTES])
    if kind == "binary":
        raise ProblemError(
            415,
            "unsupported_file_type",
            "The file is not CSV, XLSX, JSON or Parquet (judged by its content).",
        )
    return kind
