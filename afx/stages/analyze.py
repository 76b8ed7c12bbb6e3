"""Stage ingest → analyze: loudness, motion, cuts, silences, facecam of each source (issue 4).

A stage of its own, so analysis is cached apart from downloading (a new analyser version
reruns analysis, not the download) and apart from rendering (a new target length reruns
only the render's cheap highlight choice).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.media.analysis import ANALYSIS_VERSION, analyse
from afx.spec.job import Job
from afx.stages.base import StageContext


class AnalyzeStage:
    name = "analyze"
    version = str(ANALYSIS_VERSION)  # why afx.media.analysis (small) is imported up front
    after: tuple[str, ...] = ("ingest",)

    def fields(self, job: Job) -> Mapping[str, Any]:
        return {}

    def files(self, job: Job) -> Mapping[str, Path]:
        from afx.stages.ingest import source_files

        return source_files(job)  # a source read in place

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        from afx.media.probe import Probe
        from afx.stages.ingest import source_path

        ingest = ctx.inputs["ingest"]
        sources = ingest.meta.get("sources", [])
        summary = []
        for i, src in enumerate(sources):
            info = Probe.from_dict(src["probe"])

            def progress(f: float, i: int = i) -> None:
                ctx.progress((i + f) / len(sources), f"analysing {i + 1}")

            result = analyse(source_path(ctx, src), info.duration, info.has_audio, progress)
            ctx.output(f"analysis{i}.json").write_text(json.dumps(result.to_dict()))
            summary.append({"cuts": len(result.cuts), "silences": len(result.silences),
                            "keyframes": len(result.keyframes), "facecam": result.facecam})
        return {"sources": summary}
