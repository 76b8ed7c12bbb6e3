"""POST /upload: a multipart body streamed to disk, checked as it arrives.

- One part named `file`; the limit (500 MB) is enforced on the bytes received, so an
  over-size upload is refused (413) as soon as it crosses the limit, whatever
  Content-Length said, and its partial file is removed.
- The client's file name is kept for display only: files are stored under generated names,
  never a path from the request.
- MP4 or MOV by content (an ISO-BMFF box header), not by name or declared type (415).
- The multipart parser bounds header count and size; a malformed body or boundary is a 400.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from afx.server.jobs import Refused

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

BOUNDARY = re.compile(rb"^[0-9A-Za-z'()+_,./:=?-]{1,70}$")  # RFC 2046 (without spaces)
MAX_FIELDS = 64 * 1024  # bytes of non-file form fields
MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


@dataclass(frozen=True)
class Received:
    path: Path  # the stored file (generated name)
    filename: str  # the client's name, cleaned, for display
    size: int
    sha256: str


def display_name(raw: str) -> str:
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '<>:"|?*')
    return name.strip(" .")[:200] or "upload"


def boundary_of(content_type: str) -> bytes:
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        raise Refused(415, "unsupported_media_type", "POST /upload takes multipart/form-data with a `file` part")
    boundary = options.get(b"boundary", b"")
    if not BOUNDARY.match(boundary):
        raise Refused(400, "bad_multipart", "the multipart boundary is missing or invalid")
    return boundary


class _Parts:
    """The multipart parser's callbacks for one upload: the `file` part goes to `out` (and
    the digest) as it arrives, within `max_size`; other fields are counted, within MAX_FIELDS."""

    def __init__(self, out: io.RawIOBase | io.BufferedWriter | io.BytesIO, max_size: int, keep: bool) -> None:
        self.out, self.max_size, self.keep = out, max_size, keep
        self.digest = hashlib.sha256()
        self.filename = ""  # the `file` part's name, cleaned (display_name)
        self.in_file = False  # the part being read is the `file` part
        self.files = self.size = self.fields = 0  # `file` parts seen; its bytes; other fields' bytes
        self.header_field = self.header_value = self.head = b""  # head: the file's first 12 bytes
        self.headers: dict[bytes, bytes] = {}

    def callbacks(self) -> MultipartCallbacks:
        return {"on_part_begin": self.on_part_begin, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished, "on_part_data": self.on_part_data}

    def on_part_begin(self) -> None:
        self.headers, self.in_file = {}, False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.strip().lower()] = self.header_value.strip()
        self.header_field, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") == b"file":
            self.files += 1
            if self.files > 1:
                raise Refused(400, "bad_multipart", "send one `file` part")
            self.in_file = True
            self.filename = display_name(options.get(b"filename", b"").decode("utf-8", "replace"))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.in_file:
            self.size += len(chunk)
            if self.size > self.max_size:
                raise Refused(413, "too_large", f"the file is over the {self.max_size // (1024 * 1024)} MB upload "
                              "limit", limit=self.max_size)
            self.digest.update(chunk)
            if len(self.head) < 12:
                self.head += chunk[:12 - len(self.head)]
            if self.keep:
                self.out.write(chunk)
        else:
            self.fields += len(chunk)
            if self.fields > MAX_FIELDS:
                raise Refused(413, "too_large", "form fields other than `file` are limited to 64 KB")


async def receive(stream: AsyncIterator[bytes], content_type: str, folder: Path, max_size: int,
                  keep: bool = True) -> Received:
    """The upload in a temporary file in `folder`, checked; with keep=False only checked and
    hashed, nothing written (an Idempotency-Key replay compares the file, then drops it)."""
    from python_multipart import MultipartParser
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartState

    boundary = boundary_of(content_type)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".part-{secrets.token_hex(8)}"
    # closed in finally; written from the parser's callbacks
    out = open(tmp, "wb") if keep else io.BytesIO()  # noqa: SIM115
    parts = _Parts(out, max_size, keep)
    parser = MultipartParser(boundary, parts.callbacks(), max_header_count=16, max_header_size=4096)
    try:
        try:
            async for chunk in stream:
                parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise Refused(400, "bad_multipart", f"malformed multipart body: {exc}") from None
        out.close()
        if parser.state not in (MultipartState.END, MultipartState.BOUNDARY_PADDING):
            raise Refused(400, "bad_multipart", "the multipart body ends before its closing boundary")
        if not parts.files:
            raise Refused(400, "bad_multipart", "no `file` part in the body")
        if parts.size == 0:
            raise Refused(400, "empty_file", "the file is empty")
        if len(parts.head) < 8 or parts.head[4:8] not in MP4_BOXES:
            raise Refused(415, "unsupported_media_type", "not an MP4 or MOV file (checked by content)")
        return Received(tmp, parts.filename, parts.size, parts.digest.hexdigest())
    except BaseException:
        out.close()
        tmp.unlink(missing_ok=True)
        raise


def store(received: Received, folder: Path, file_id: str) -> str:
    """Move a received file to its generated name; returns that name."""
    with open(received.path, "rb") as fh:
        head = fh.read(12)
    suffix = ".mov" if head[8:10] == b"qt" else ".mp4"
    name = f"{file_id}{suffix}"
    os.replace(received.path, folder / name)
    return name
