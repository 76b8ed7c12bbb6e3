"""Matrix expansion: one spec, the product of its matrix values, as many jobs.

`matrix: {game: [cs2, valorant], platforms: [[tiktok], [youtube]]}` gives four jobs. Keys
are variables in every expanded job; a key that is also a job field sets that field.
`exclude` drops combinations that match all of an entry's keys; `include` adds
combinations. Names are the base name plus the values, slugged, in key order
(`weekly-cs2-tiktok`), unless the name itself uses {{ variables }}.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from afx.spec.budget import slug
from afx.spec.load import Path_

MAX_COMBINATIONS = 256


class MatrixError(Exception):
    def __init__(self, message: str, path: Path_ = ("matrix",)) -> None:
        super().__init__(message)
        self.message, self.path = message, path


@dataclass(frozen=True)
class Combination:
    values: dict[str, Any]
    # where each value was written: ("matrix", key, index) or ("matrix", "include", i, key)
    paths: dict[str, Path_]

    def suffix(self) -> str:
        return "-".join(slug(v) for v in self.values.values())


def expand(matrix: dict[str, Any]) -> list[Combination]:
    axes = [(k, v) for k, v in matrix.items() if k not in ("include", "exclude")]
    combos: list[Combination] = []
    if axes:
        total = 1
        for _, values in axes:
            total *= len(values)
        if total > MAX_COMBINATIONS:
            raise MatrixError(f"expands to {total} jobs, more than the limit of {MAX_COMBINATIONS}",
                              ("matrix",))
        for picks in itertools.product(*(list(enumerate(v)) for _, v in axes)):
            values = {k: v for (k, _), (_, v) in zip(axes, picks)}
            paths: dict[str, Path_] = {k: ("matrix", k, i) for (k, _), (i, _) in zip(axes, picks)}
            combos.append(Combination(values, paths))
    before = len(combos)
    for i, rule in enumerate(matrix.get("exclude", [])):
        unknown = [k for k in rule if k not in dict(axes)]
        if unknown:
            raise MatrixError(f"exclude names {unknown[0]!r}, which is not a matrix key",
                              ("matrix", "exclude", i, unknown[0]))
        combos = [c for c in combos if not all(c.values.get(k) == v for k, v in rule.items())]
    for i, extra in enumerate(matrix.get("include", [])):
        values = dict(extra)
        if any(c.values == values for c in combos):
            continue
        combos.append(Combination(values, {k: ("matrix", "include", i, k) for k in values}))
    if len(combos) > MAX_COMBINATIONS:
        raise MatrixError(f"expands to {len(combos)} jobs, more than the limit of {MAX_COMBINATIONS}")
    if not combos:
        why = " (every combination is excluded)" if before else ""
        raise MatrixError(f"expands to no jobs{why}")
    return combos
