"""afx lock merge: the afx.lock files of shard runs joined into the one a full run writes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from afx.cli.env import Environment
from afx.errors import ExitStatus


def merge(env: Environment, shard_locks: Sequence[Path]) -> int:
    from afx.engine.lockmerge import merge as merge_locks
    from afx.spec.select import select

    result, jobs = select([])
    roots = [j.name for j in jobs if not j.parent]
    changed, written = merge_locks(result.root, shard_locks, roots)
    if env.json:
        env.emit_json({"shards": len(shard_locks), "jobs_changed": changed, "written": written})
    else:
        env.info(f"merged {len(shard_locks)} shard afx.lock file{'s' * (len(shard_locks) != 1)}: "
                 f"{changed} job{'s' * (changed != 1)} changed" + ("" if written else ", afx.lock already up to date"))
    return int(ExitStatus.OK)
