"""File writes that never leave half a file behind (docs/architecture.md, data safety rules)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *, mode: int = 0o644) -> Path:
    """Write to a temp file in the same folder, fsync, then os.replace onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


_SEAL = 32  # bytes of sha256 in front of a sealed file's payload


def write_sealed(path: Path, payload: bytes) -> None:
    """A cache file: the payload's sha256, then the payload, put in place by os.replace.

    No fsync: a torn or lost write is caught by `read_sealed` and costs a rebuild, which is
    cheaper than syncing a cache on every run. OSError is the caller's to ignore."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_sealed(path: Path) -> memoryview | None:
    """A sealed file's payload (a view: no copy of a big file), or None if it is missing,
    unreadable or does not match its sha256."""
    try:
        raw = memoryview(path.read_bytes())
    except OSError:
        return None
    if len(raw) < _SEAL or hashlib.sha256(raw[_SEAL:]).digest() != raw[:_SEAL]:
        return None
    return raw[_SEAL:]
