"""Stage 3, render: the video file(s), one per distinct platform profile (issue 4)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.engine.stage import StageContext, pick
from afx.errors import StageError
from afx.spec.job import Job


class RenderStage:
    name = "render"
    version = "1"
    after: tuple[str, ...] = ("ingest", "script")

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "entry", "format", "durationMins", "platforms", "topic", "render.layout",
                    "render.facecam", "render.captions", "render.title", "render.music.volume",
                    "render.backgrounds")

    def files(self, job: Job) -> Mapping[str, Path]:
        out: dict[str, Path] = {}
        music = job.local_path_at(("render", "music", "file"))
        if music is not None:
            out["music"] = music
        for i, _ in enumerate(job.get("render", {}).get("backgrounds", ())):
            path = job.local_path_at(("render", "backgrounds", i))
            if path is not None:
                out[f"background{i}"] = path
        return out

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        raise StageError("render has no media implementation yet (issue 4)")
