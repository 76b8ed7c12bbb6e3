"""afx validate: every problem in every spec file, or a one-line summary."""

from __future__ import annotations

from collections.abc import Sequence

from afx.cli.env import Environment
from afx.errors import ExitStatus
from afx.spec import resolve
from afx.spec.repo import display_path


def validate(env: Environment, paths: Sequence[str], strict: bool = False) -> int:
    # Local media are often not in git (CI): a missing one is a warning, unless --strict.
    result = resolve(paths, missing_media="error" if strict else "warn")
    if env.json:
        env.emit_json({
            "ok": result.ok,
            "root": display_path(result.root),
            "files": result.files,
            "jobs": [j.name for j in result.jobs],
            "templates": sorted(result.templates),
            "diagnostics": [d.to_dict() for d in result.diagnostics],
            "warnings": [d.to_dict() for d in result.warnings],
        })
        return int(ExitStatus.OK if result.ok else ExitStatus.INVALID)
    result.raise_for_errors()
    for d in result.warnings:
        env.error(env.style("warning", fg="yellow") + f": {d} (--strict makes it an error)")
    expanded = sum(1 for j in result.jobs if j.matrix)
    extra = f" ({expanded} from matrices)" if expanded else ""
    n, t = len(result.jobs), len(result.templates)
    env.info(env.style("ok", fg="green", bold=True) + f": {n} job{'s' * (n != 1)}{extra}, "
             f"{t} template{'s' * (t != 1)} in {result.files} file{'s' * (result.files != 1)} "
             f"({display_path(result.root)})")
    return int(ExitStatus.OK)
