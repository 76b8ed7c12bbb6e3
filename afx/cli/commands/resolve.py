"""afx resolve: the fully resolved job, as a spec document or as the POST /jobs body."""

from __future__ import annotations

from collections.abc import Sequence

from afx.cli.env import Environment
from afx.errors import ExitStatus
from afx.spec.select import select


def resolve(env: Environment, targets: Sequence[str], *, api: bool) -> int:
    _, jobs = select(targets)
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

