"""Incremental multipart/form-data reader: yields one file field's bytes as they arrive.

It also keeps the small `options` field (analysis options, at most MAX_OPTIONS_BYTES), which
must come before the file: the file is relayed upstream as it arrives, after the options.
Every malformed part (boundary, part headers) is a 400; any other field is skipped but may hold
at most MAX_FIELD_BYTES, so a huge text field costs nothing.
"""

from __future__ import annotations

from python_multipart.multipart import MultipartParser, parse_options_header

from datapilot_runtime.error_codes import ErrorCode
from datapilot_runtime.report.options import MAX_OPTIONS_BYTES
from gateway.problems import ProblemError

OPTIONS_FIELD = b"options"
# Form fields beside `file` and `options` are not used: each may hold at most this much.
MAX_FIELD_BYTES = 64 * 1024
# RFC 2046 allows 70 characters; python-multipart refuses more than 256 (with a bare error).
MAX_BOUNDARY_BYTES = 256
# One part header line (name and value) and the number of headers of one part.
MAX_PART_HEADER_BYTES = 8 * 1024
MAX_PART_HEADERS = 16
# RFC 2046 bchars plus the usual extras (quotes are stripped by the header parser).
_BOUNDARY_BYTES = frozenset(
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
)


class UploadTooLarge(Exception):
    """The file part grew past the limit."""


def _malformed(why: str) -> ProblemError:
    return ProblemError(
        400, ErrorCode.MALFORMED_MULTIPART, f"The multipart body is malformed: {why}."
    )


def _boundary_of(content_type: str) -> bytes:
    """The boundary of a multipart/form-data Content-Type (415 if it is another type)."""
    try:
        media_type, params = parse_options_header(content_type)
    except Exception:  # a header the parser cannot take is not multipart/form-data either
        media_type, params = b"", {}
    if media_type != b"multipart/form-data":
        raise ProblemError(415, "unsupported_media_type", "Send the file as multipart/form-data.")
    boundary = params.get(b"boundary", b"")
    if not boundary or len(boundary) > MAX_BOUNDARY_BYTES:
        raise _malformed(f"the boundary must be 1-{MAX_BOUNDARY_BYTES} characters")
    if not set(boundary) <= _BOUNDARY_BYTES or boundary.endswith(b" "):
        raise _malformed("the boundary holds characters RFC 2046 does not allow")
    return boundary


class MultipartFileReader:
    """Feed body chunks; collects the data of the first part named `field`, with its metadata."""

    def __init__(self, content_type: str, limit: int, field: str = "file") -> None:
        boundary = _boundary_of(content_type)
        self._field = field.encode()
        self._limit = limit
        self.filename = ""
        self.content_type = ""
        self.size = 0
        self.started = False
        self.finished = False
        self.ended = False
        self._in_file = False
        self._in_options = False
        self._field_size = 0
        self.options = bytearray()
        self.options_seen = False
        self.options_after_file = False
        self._headers: dict[bytes, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._out: list[memoryview] = []
        self._parser = MultipartParser(
            boundary,  # checked above: the parser's own refusal would be a bare exception
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    def feed(self, data: bytes) -> list[memoryview]:
        """Parse `data`; returns the file bytes it contained. Raises UploadTooLarge."""
        self._out = []
        try:
            self._parser.write(data)
        except (UploadTooLarge, ProblemError):
            raise
        except Exception as exc:
            raise ProblemError(
                400, "malformed_multipart", "The multipart body is malformed."
            ) from exc
        return self._out

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._field_size = 0

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]
        self._check_header_size()

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._check_header_size()

    def _check_header_size(self) -> None:
        if len(self._header_field) + len(self._header_value) > MAX_PART_HEADER_BYTES:
            raise _malformed(f"a part header is over {MAX_PART_HEADER_BYTES} bytes")

    def _on_header_end(self) -> None:
        if len(self._headers) >= MAX_PART_HEADERS:
            raise _malformed(f"a part has more than {MAX_PART_HEADERS} headers")
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition")
        if disposition is None:
            raise _malformed("a part has no Content-Disposition header")
        kind, params = parse_options_header(disposition)
        name = params.get(b"name")
        if kind != b"form-data" or name is None:
            raise _malformed("a part's Content-Disposition is not form-data with a name")
        if name == OPTIONS_FIELD:
            if self.options_seen:
                raise _invalid_options("the multipart field 'options' appears twice")
            self.options_seen = True
            self.options_after_file = self.started
            self._in_options = True
        if name == self._field and not self.started:
            self.started = True
            self._in_file = True
            self.filename = params.get(b"filename", b"").decode("utf-8", "replace")
            self.content_type = self._headers.get(b"content-type", b"").decode("latin-1")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_options:
            self.options += data[start:end]
            if len(self.options) > MAX_OPTIONS_BYTES:
                raise _invalid_options(f"options are over the {MAX_OPTIONS_BYTES} byte limit")
            return
        if not self._in_file:
            self._field_size += end - start
            if self._field_size > MAX_FIELD_BYTES:
                raise ProblemError(
                    413,
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"A form field other than 'file' is over the {MAX_FIELD_BYTES} byte limit.",
                )
            return
        self.size += end - start
        if self.size > self._limit:
            raise UploadTooLarge
        # A view, not a copy: every buffer the parser hands out is an immutable bytes (the body
        # chunk, or its boundary constant), so the view stays valid until it is relayed.
        self._out.append(memoryview(data)[start:end])

    def _on_part_end(self) -> None:
        self._in_options = False
        if self._in_file:
            self._in_file = False
            self.finished = True

    def _on_end(self) -> None:
        self.ended = True


def _invalid_options(message: str) -> ProblemError:
    return ProblemError(400, ErrorCode.INVALID_OPTIONS, f"Invalid options: {message}.")
