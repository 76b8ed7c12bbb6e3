"""Turn command-line targets (job names, matrix base names, spec files or folders) into Jobs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from afx.errors import UsageError
from afx.spec.job import Job
from afx.spec.resolve import Resolution, resolve
from afx.spec.schema import did_you_mean


def select(targets: Sequence[str], cwd: Path | None = None) -> tuple[Resolution, list[Job]]:
    """The repo's resolution and the jobs the targets name (all jobs when there are none).

    Any invalid spec in what was loaded is an error (SpecError): afx never runs part of a
    repo it cannot read.
    """
    cwd = cwd or Path.cwd()
    paths = [t for t in targets if os.path.exists(cwd / t)]
    names = [t for t in targets if t not in paths]
    result = resolve(paths if paths else [], cwd=cwd, cached=True)
    result.raise_for_errors()
    if not targets:
        return result, list(result.jobs)
    jobs = list(result.jobs) if paths else []
    if names:
        everything = resolve([], cwd=cwd, cached=True) if paths else result
        everything.raise_for_errors()
        for name in names:
            found = everything.job(name)
            if not found:
                choices = [j.name for j in everything.jobs] + list({j.base_name for j in everything.jobs})
                raise UsageError(f"no job or spec file named {name!r} in {everything.root}",
                                 hint=did_you_mean(name, choices) or "list jobs with: afx validate --json")
            jobs.extend(found)
    return result, list({j.name: j for j in jobs}.values())
