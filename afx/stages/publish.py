"""Stage 5, publish: per-platform publish records, through a ledger (issue 6)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.engine.stage import StageContext, pick
from afx.errors import StageError
from afx.spec.job import Job


class PublishStage:
    name = "publish"
    version = "1"
    after: tuple[str, ...] = ("render", "package")

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "platforms", "publishMode", "staging", "scheduledAt")

    def files(self, job: Job) -> Mapping[str, Path]:
        return {}

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        raise StageError("publish has no implementation yet (issue 6)")
