"""out/<job>/: the files a person looks at, made from stored artifacts (issue 3).

Exported artifacts are hard links to the store's read-only objects (a copy where links are
impossible), each put in place with os.replace; result.json is written last. Files afx
wrote before are listed in `.afx-files`, so a file that is no longer exported is removed
and nothing else in the folder is ever touched.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from afx.fsutil import atomic_write

if TYPE_CHECKING:
    from afx.stages.base import Artifacts

LISTING = ".afx-files"
RESULT = "result.json"


def exported(artifacts: Mapping[str, Artifacts]) -> dict[str, Path]:
    """out/ file name -> stored object, over all stages (a later stage wins a name)."""
    out: dict[str, Path] = {}
    for arts in artifacts.values():
        for name, export in arts.exports.items():
            out[export] = arts.files[name]
    return out


def _same(target: Path, src: Path) -> bool:
    try:
        a, b = target.stat(), src.stat()
    except FileNotFoundError:
        return False
    # A hard link to the object, or an untouched copy of it (copy2 keeps mode and mtime).
    return (a.st_ino == b.st_ino and a.st_dev == b.st_dev) or (
        a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns and not a.st_mode & 0o222)


def _result_bytes(result: Mapping[str, Any]) -> bytes:
    return (json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n").encode()


def is_current(folder: Path, files: Mapping[str, Path], result: Mapping[str, Any] | None) -> bool:
    if not all(_same(folder / name, src) for name, src in files.items()):
        return False
    if result is None:
        return True
    try:  # afx wrote it: the same bytes, or it changed (a hand edit is put back)
        with open(folder / RESULT, "rb") as fh:
            return fh.read() == _result_bytes(result)
    except OSError:
        return False


def materialize(folder: Path, files: Mapping[str, Path], result: Mapping[str, Any] | None) -> bool:
    """Bring folder up to date. Returns False when it already was (nothing written)."""
    if is_current(folder, files, result):
        return False
    folder.mkdir(parents=True, exist_ok=True)
    previous = _listing(folder)
    for name, src in files.items():
        target = folder / name
        if _same(target, src):
            continue
        tmp = folder / f".{name}.afx-tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:  # another filesystem, or links not allowed
            shutil.copy2(src, tmp)
        os.replace(tmp, target)
    written = set(files) | ({RESULT} if result is not None else set())
    for stale in previous - written:
        (folder / stale).unlink(missing_ok=True)
    atomic_write(folder / LISTING, "".join(f"{n}\n" for n in sorted(written)))
    if result is not None:
        atomic_write(folder / RESULT, _result_bytes(result))
    return True


def _listing(folder: Path) -> set[str]:
    try:
        names = (folder / LISTING).read_text(encoding="utf-8").split()
    except OSError:
        return set()
    # Only plain names: a hand-edited listing must not make afx delete outside the folder.
    return {n for n in names if "/" not in n and not n.startswith(".")}
