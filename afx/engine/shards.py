"""`afx run --shard i/N`: a deterministic 1/N of a repo's jobs, for N CI runners (issue 15).

A job's shard is a stable hash of its name (sha256, not Python's salted `hash`) modulo N, so
every runner agrees without talking to the others, and adding or removing a job moves no
other job. A clip job goes with its parent (its parent's name is hashed): the parent's run
fans it out. Each shard writes only its own jobs' blocks of afx.lock; `afx lock merge`
(afx.engine.lockmerge) puts the shards' afx.lock files together into what one full run writes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from afx.errors import UsageError
from afx.spec.job import Job

_SHARD = re.compile(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*")


def parse(text: str) -> tuple[int, int]:
    """(i, N) of `i/N`, 1 <= i <= N; UsageError naming --shard otherwise."""
    match = _SHARD.fullmatch(text or "")
    index, count = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not match or count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard: {text!r} is not i/N with 1 <= i <= N",
                         hint="e.g. --shard 1/4 on the first of four runners, --shard 4/4 on the last")
    return index, count


def shard_of(name: str, count: int) -> int:
    """The shard (1..count) of the job named `name` (for a clip job: its parent's name)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % count + 1


def pick(jobs: Sequence[Job], index: int, count: int) -> list[Job]:
    """The jobs of shard `index` of `count`, in their order."""
    return [j for j in jobs if shard_of(j.parent or j.name, count) == index]
