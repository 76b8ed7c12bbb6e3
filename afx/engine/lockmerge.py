"""`afx lock merge`: the afx.lock files of N shard runs made into the one a full run writes.

Every shard (`afx run --shard i/N`) starts from the same checkout's afx.lock and rewrites
only its own jobs' blocks (a job with clips and its clip jobs are in one shard); it prunes
nothing. So, against the checkout's afx.lock (the base):

- a job's block that a shard changed (or added) is taken from that shard; two shards that
  changed one job differently are an error (they were not shards of one checkout);
- `retired` (publish records of jobs gone from the specs) is the union, in order;
- other top-level blocks a shard changed are taken from it (afx push's `remote`: the last
  shard's wins);
- then, as a full run does, jobs gone from the specs leave `jobs` (`retire_jobs`: their
  publish records move to `retired`): what stays is the specs' jobs and the clip jobs their
  blocks list.

The result is written with the same writer as `afx run` (sorted keys, written only if it
changed), so N shards merged and one full run give byte-identical files.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from afx.engine.lockfile import LOCK_VERSION, LockFileError, read_lock, retire_jobs, update_lock

_OWN = frozenset({"afx.lock", "version", "jobs"})


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise LockFileError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != LOCK_VERSION or not isinstance(data.get("jobs"), dict):
        raise LockFileError(f"{path}: not an afx.lock of version {LOCK_VERSION}")
    return data


def merged(base: dict[str, Any], shards: Sequence[tuple[str, dict[str, Any]]], roots: Sequence[str]) -> dict[str, Any]:
    """The merged lock (see the module's docstring); `roots`: the specs' jobs, without clip jobs."""
    out = copy.deepcopy(base)
    jobs: dict[str, Any] = out.setdefault("jobs", {})
    base_jobs = base.get("jobs", {})
    owner: dict[str, str] = {}
    for where, data in shards:
        for name, block in data["jobs"].items():
            if block == base_jobs.get(name):
                continue
            if name in owner and jobs.get(name) != block:
                raise LockFileError(f"job {name!r} was changed differently by {owner[name]} and {where}",
                                    hint="merge the afx.lock files of the shards of one checkout and one run")
            owner[name] = where
            jobs[name] = block
        for key, value in data.items():
            if key in _OWN or value == base.get(key):
                continue
            if key == "retired" and isinstance(value, list):
                listed = out.get("retired")
                retired: list[Any] = list(listed) if isinstance(listed, list) else []
                out["retired"] = retired + [r for r in value if r not in retired]
            else:
                out[key] = copy.deepcopy(value)
    keep = set(roots)
    for name in roots:
        block = jobs.get(name)
        clips = block.get("clips") if isinstance(block, dict) else None
        keep.update(c for c in (clips or ()) if isinstance(c, str))
    retire_jobs(out, keep)
    return out


def merge(root: Path, shard_locks: Sequence[Path], roots: Sequence[str]) -> tuple[int, bool]:
    """Merge shard afx.lock files into `root`'s afx.lock: (jobs taken from shards, written)."""
    shards = [(str(p), _read(p)) for p in shard_locks]
    counted: dict[str, int] = {}

    def change(data: dict[str, Any]) -> None:
        result = merged(data, shards, roots)
        base_jobs = data.get("jobs", {})
        counted["n"] = sum(1 for n, b in result["jobs"].items() if base_jobs.get(n) != b)
        data.clear()
        data.update(result)

    read_lock(root)  # a damaged afx.lock in the checkout is an error, not a base of nothing
    written = update_lock(Path(root), change)
    return counted.get("n", 0), written
