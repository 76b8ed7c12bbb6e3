"""afx resolve: the fully resolved job, as a spec document or as the POST /jobs body."""

from __future__ import annotations

import os
from typing import Sequence

from afx.cli.env import Environment
from afx.errors import ExitStatus, UsageError
from afx.spec import Job, resolve as resolve_specs
from afx.spec.schema import did_you_mean


def select(targets: Sequence[str]) -> list[Job]:
    """Jobs named by TARGETS: spec files/folders, job names or matrix base names."""
    paths = [t for t in targets if os.path.exists(t)]
    names = [t for t in targets if t not in paths]
    result = resolve_specs(paths)
    result.raise_for_errors()
    jobs = list(result.jobs) if paths else []
    if names:
        everything = resolve_specs([]) if paths else result
        if not paths:
            everything.raise_for_errors()
        for name in names:
            found = everything.job(name)
            if not found:
                choices = [j.name for j in everything.jobs] + list({j.base_name for j in everything.jobs})
                raise UsageError(f"no job named {name!r} in {everything.root}",
                                 hint=did_you_mean(name, choices) or "list jobs with: afx validate --json")
            jobs.extend(found)
    return list({j.name: j for j in jobs}.values())


def resolve(env: Environment, targets: Sequence[str], *, api: bool) -> int:
    jobs = select(targets)
    if api:
        bodies = [j.to_api_body() for j in jobs]
        env.emit_json(bodies[0] if len(bodies) == 1 and not env.json else bodies)
        return int(ExitStatus.OK)
    if env.json:
        env.emit_json([j.to_dict() for j in jobs])
        return int(ExitStatus.OK)
    import yaml

    chunks = []
    for job in jobs:
        via = f" via templates {' -> '.join(job.template_chain)}" if job.template_chain else ""
        header = f"# {job.name}: {job.source}{via}"
        body = yaml.safe_dump(job.to_dict(), sort_keys=False, allow_unicode=True, width=100)
        chunks.append(f"{header}\n{body}")
    env.out("---\n".join(chunks).rstrip("\n"))
    return int(ExitStatus.OK)

