"""Stage 1, ingest: the job's source media, normalised and probed (issue 4)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.engine.stage import StageContext, pick
from afx.errors import StageError
from afx.spec.job import Job


class IngestStage:
    name = "ingest"
    version = "1"
    after: tuple[str, ...] = ()

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "entry", "url", "urls", "fileId")

    def files(self, job: Job) -> Mapping[str, Path]:
        path = job.local_path("file")
        return {"file": path} if path is not None else {}

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        raise StageError("ingest has no media implementation yet (issue 4)")
