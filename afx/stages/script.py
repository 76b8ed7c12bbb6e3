"""Stage 2, script & voice: script text, voiceover, word timings (issue 5)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.engine.stage import StageContext, pick
from afx.errors import StageError
from afx.spec.job import Job


class ScriptStage:
    name = "script"
    version = "1"
    after: tuple[str, ...] = ("ingest",)

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "entry", "topic", "tone", "script", "format", "durationMins", "render.voice")

    def files(self, job: Job) -> Mapping[str, Path]:
        return {}

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        raise StageError("script has no implementation yet (issue 5)")
