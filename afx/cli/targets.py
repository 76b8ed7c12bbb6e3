"""Command-line targets, with clip jobs: `afx jobs`, `report`, `publish`... see the jobs a job
with clips became (known once its clips stage has run), and a target may name one (`vod-03`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from afx.errors import UsageError
from afx.spec.select import select

if TYPE_CHECKING:
    from afx.spec.job import Job
    from afx.spec.resolve import Resolution

CLIP = re.compile(r"^(?P<parent>.+)-\d{2}$")


def select_jobs(targets: Sequence[str], cwd: Path | None = None) -> tuple[Resolution, list[Job]]:
    """select(), each job with clips followed by its clip jobs; a target naming a clip job
    selects it alone."""
    from afx.engine.session import Engine

    try:
        result, jobs = select(targets, cwd)
        return result, Engine(result.root, result.config).expand(jobs)
    except UsageError:
        clips = [t for t in targets if CLIP.match(t)]
        if not clips:
            raise
    # Some targets name clip jobs (vod-03): their parents' clip jobs, and the other targets.
    others = [t for t in targets if t not in clips]
    result, everything = select([], cwd)
    by_name = {j.name: j for j in everything}
    parents = {m.group("parent") for t in clips if (m := CLIP.match(t))}
    if not parents <= set(by_name):
        select(targets, cwd)  # raises the usual error for the target that names nothing
    base = select(others, cwd)[1] if others else []
    chosen = [*base, *(by_name[p] for p in sorted(parents) if p not in {j.name for j in base})]
    expanded = Engine(result.root, result.config).expand(chosen)
    keep = {j.name for j in base} | set(clips)
    jobs = [j for j in expanded if j.name in keep or j.parent in {b.name for b in base}]
    missing = sorted(set(clips) - {j.name for j in jobs})
    if missing:
        match = CLIP.match(missing[0])
        parent = match.group("parent") if match else ""
        known = [j.name for j in expanded if j.parent == parent]
        hint = (f"{parent} has {len(known)} clip job{'s' * (len(known) != 1)}: {', '.join(known)}" if known else
                f"the clips of {parent} are known once `afx run {parent}` has analysed its recording")
        raise UsageError(f"no clip job named {missing[0]!r}", hint=hint)
    return result, jobs


def select_roots(targets: Sequence[str], cwd: Path | None = None) -> tuple[Resolution, list[Job]]:
    """select_jobs() without the clip jobs of a selected parent: for `afx run` and `plan`,
    which fan a job with clips out themselves (with its clips as they are now)."""
    result, jobs = select_jobs(targets, cwd)
    names = {j.name for j in jobs}
    return result, [j for j in jobs if not (j.parent and j.parent in names)]
