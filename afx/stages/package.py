"""Stage 4, package: thumbnail, publish copy, quality score (issue 6)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.engine.stage import StageContext, pick
from afx.errors import StageError
from afx.spec.job import Job


class PackageStage:
    name = "package"
    version = "1"
    after: tuple[str, ...] = ("script", "render")

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "topic", "tone", "platforms", "format")

    def files(self, job: Job) -> Mapping[str, Path]:
        return {}

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        raise StageError("package has no implementation yet (issue 6)")
