"""afx verify: do the files in out/ match what afx.lock says they were built as?

A job afx run built is checked against its block's `files`; a job only pushed (afx push
built it on an API) against what the last push downloaded (`remote.<api>.files`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from afx.cli.env import Environment
from afx.cli.targets import select_jobs as select
from afx.digest import sha256_file
from afx.engine.lockfile import read_lock
from afx.errors import ExitStatus


def verify(env: Environment, targets: Sequence[str]) -> int:
    result, jobs = select(targets)
    lock = read_lock(result.root)["jobs"]
    problems: list[dict[str, Any]] = []
    checked = 0
    for job in jobs:
        block = lock.get(job.name)
        if isinstance(block, dict) and "spec" not in block:
            block = _last_push(block)  # built by an API (afx push): what was downloaded
        if block is None or "spec" not in block:
            problems.append({"job": job.name, "file": None, "problem": "not in afx.lock (never run)"})
            continue
        if block.get("spec") != job.digest:
            since = "push" if block.get("downloaded") else "run"
            problems.append({"job": job.name, "file": None, "problem": f"spec changed since the last {since}"})
        folder = result.root / "out" / job.name
        for name, digest in sorted((block.get("files") or {}).items()):
            path = folder / name
            checked += 1
            if not path.is_file():
                problems.append({"job": job.name, "file": name, "problem": "missing"})
            elif digest and sha256_file(path) != digest:
                problems.append({"job": job.name, "file": name, "problem": "content differs from afx.lock"})
    if env.json:
        env.emit_json({"ok": not problems, "checked": checked, "problems": problems})
    else:
        for p in problems:
            where = f"out/{p['job']}/{p['file']}" if p["file"] else p["job"]
            env.out(f"{where}: {p['problem']}")
        env.info(f"{checked} file{'s' * (checked != 1)} checked, {len(problems)} problem{'s' * (len(problems) != 1)}")
    return int(ExitStatus.STALE if problems else ExitStatus.OK)


def _last_push(block: dict[str, Any]) -> dict[str, Any] | None:
    """The latest of a job's pushes whose results afx push downloaded into out/<job>/."""
    pushes = [r for r in (block.get("remote") or {}).values()
              if isinstance(r, dict) and isinstance(r.get("files"), dict) and r.get("spec")]
    return max(pushes, key=lambda r: str(r.get("downloaded") or ""), default=None)
