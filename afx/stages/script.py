"""Stage 2, script & voice: script text, voiceover, word timings.

Version 1 (issue 4) writes the script only: the spec's `script`, or one line from the topic.
Issue 5 gives this stage its writer (templates per tone, optional LLM), the piper voice and
word timings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.engine.stage import StageContext, pick
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
        text = ctx.job.get("script") or (ctx.job.get("topic") or "").strip()
        ctx.output("script.txt", export="script.txt").write_text(text + "\n", encoding="utf-8")
        return {"words": len(text.split()), "written_by": "spec" if ctx.job.get("script") else "topic",
                "voice": None}
