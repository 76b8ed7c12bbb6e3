"""afx verify: do the files in out/ match what afx.lock says they were built as?"""

from __future__ import annotations

from collections.abc import Sequence

from afx.cli.env import Environment
from afx.engine.lockfile import read_lock
from afx.engine.store import sha256_file
from afx.errors import ExitStatus
from afx.spec.select import select


def verify(env: Environment, targets: Sequence[str]) -> int:
    result, jobs = select(targets)
    lock = read_lock(result.root)["jobs"]
    problems: list[dict] = []
    checked = 0
    for job in jobs:
        block = lock.get(job.name)
        if block is None or "spec" not in block:  # absent, or only pushed (a `remote` block)
            problems.append({"job": job.name, "file": None, "problem": "not in afx.lock (never run)"})
            continue
        if block.get("spec") != job.digest:
            problems.append({"job": job.name, "file": None, "problem": "spec changed since the last run"})
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
