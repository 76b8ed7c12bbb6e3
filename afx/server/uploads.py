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
from typing import TypedDict

from afx.server.jobs import Refused

BOUNDARY = re.compile(rb"^[0-9A-Za-z'()+_,./:=?-]{1,70}$")  # RFC 2046 (without spaces)
MAX_FIELDS = 64 * 1024  # bytes of non-file form fields
MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


class _ParseState(TypedDict):
    """What the parser's callbacks share while one body streams in."""

    name: bytes
    filename: str  # the `file` part's name, cleaned (display_name)
    in_file: bool  # the part being read is the `file` part
    files: int  # `file` parts seen
    size: int  # bytes of the file received
    fields: int  # bytes of other form fields received
    header_field: bytes  # the part header being read, name and value
    header_value: bytes
    headers: dict[bytes, bytes]  # this part's headers, names lower-cased
    head: bytes  # the file's first 12 bytes (its type is checked on them)


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


async def receive(stream: AsyncIterator[bytes], content_type: str, folder: Path, max_size: int,
                  keep: bool = True) -> Received:
    """The upload in a temporary file in `folder`, checked; with keep=False only checked and
    hashed, nothing written (an Idempotency-Key replay compares the file, then drops it)."""
    from python_multipart import MultipartParser
    from python_multipart.exceptions import MultipartParseError

    boundary = boundary_of(content_type)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".part-{secrets.token_hex(8)}"
    state: _ParseState = {"name": b"", "filename": "", "in_file": False, "files": 0, "size": 0, "fields": 0,
                          "header_field": b"", "header_value": b"", "headers": {}, "head": b""}
    digest = hashlib.sha256()
    # closed in finally; written from the parser's callbacks
    out = open(tmp, "wb") if keep else io.BytesIO()  # noqa: SIM115

    def on_part_begin() -> None:
        state["headers"], state["in_file"] = {}, False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header_field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["header_value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["header_field"].strip().lower()] = state["header_value"].strip()
        state["header_field"], state["header_value"] = b"", b""

    def on_headers_finished() -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(state["headers"].get(b"content-disposition", b""))
        if options.get(b"name") == b"file":
            state["files"] += 1
            if state["files"] > 1:
                raise Refused(400, "bad_multipart", "send one `file` part")
            state["in_file"] = True
            state["filename"] = display_name(options.get(b"filename", b"").decode("utf-8", "replace"))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if state["in_file"]:
            state["size"] += len(chunk)
            if state["size"] > max_size:
                raise Refused(413, "too_large", f"the file is over the {max_size // (1024 * 1024)} MB upload limit",
                              limit=max_size)
            digest.update(chunk)
            if len(state["head"]) < 12:
                state["head"] += chunk[:12 - len(state["head"])]
            if keep:
                out.write(chunk)
        else:
            state["fields"] += len(chunk)
            if state["fields"] > MAX_FIELDS:
                raise Refused(413, "too_large", "form fields other than `file` are limited to 64 KB")

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data}, max_header_count=16, max_header_size=4096)
    try:
        try:
            async for chunk in stream:
                parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise Refused(400, "bad_multipart", f"malformed multipart body: {exc}") from None
        out.close()
        from python_multipart.multipart import MultipartState

        if parser.state not in (MultipartState.END, MultipartState.BOUNDARY_PADDING):
            raise Refused(400, "bad_multipart", "the multipart body ends before its closing boundary")
        if not state["files"]:
            raise Refused(400, "bad_multipart", "no `file` part in the body")
        if state["size"] == 0:
            raise Refused(400, "empty_file", "the file is empty")
        head = state["head"]
        if len(head) < 8 or head[4:8] not in MP4_BOXES:
            raise Refused(415, "unsupported_media_type", "not an MP4 or MOV file (checked by content)")
        return Received(tmp, state["filename"], state["size"], digest.hexdigest())
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
