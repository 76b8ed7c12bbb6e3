"""Stage analyze → edit: which parts of the sources make the video, and what is said in them.

Highlight choice (issue 4) moved here from render so the script stage can write from what
the chosen footage says, and render and captions use the same cut. The speech of the
chosen segments is transcribed (faster-whisper, offline) into the output's timeline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.engine.stage import StageContext, pick
from afx.errors import StageError
from afx.spec.job import Job

SHORT_MAX = 60.0


def target_seconds(job: Job) -> float:
    opts = job.get("render") or {}
    if job.get("format", "short") == "short":
        return min(float(opts.get("seconds", SHORT_MAX)), SHORT_MAX)
    return float(opts.get("seconds", float(job.get("durationMins", 1)) * 60))


class EditStage:
    name = "edit"
    version = "2"
    after: tuple[str, ...] = ("ingest", "analyze")

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "entry", "format", "durationMins", "render.seconds")

    def files(self, job: Job) -> Mapping[str, Path]:
        from afx.stages.ingest import source_files

        return source_files(job)  # a source read in place

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        from afx.media.analysis import Analysis
        from afx.media.ffmpeg import MediaError
        from afx.media.highlights import select
        from afx.media.profiles import profiles_for
        from afx.stages.ingest import source_path

        sources = ctx.inputs["ingest"].meta.get("sources", [])
        if not sources:
            return {"segments": [], "seconds": 0.0, "speech_words": 0}
        analyses = [Analysis.from_dict(json.loads(ctx.inputs["analyze"].path(f"analysis{i}.json").read_text()))
                    for i in range(len(sources))]
        fps = profiles_for(ctx.job.get("format", "short"), ())[0].fps  # every profile of a format shares it
        segments = select(analyses, target_seconds(ctx.job), fps)
        words = []
        offset = 0.0
        try:
            from afx.media.asr import transcribe_file

            for k, seg in enumerate(segments):
                path = source_path(ctx, sources[seg.source])
                if sources[seg.source]["probe"].get("has_audio"):
                    for w in transcribe_file(path, seg.start, seg.duration):
                        if w.start < seg.duration:
                            words.append({"text": w.text, "start": round(offset + w.start, 3),
                                          "end": round(offset + min(w.end, seg.duration), 3)})
                offset += seg.duration
                ctx.progress((k + 1) / len(segments), "transcribing")
        except MediaError as exc:
            raise StageError(str(exc)) from None
        ctx.output("transcript.json").write_text(json.dumps(words))
        return {"segments": [s.to_dict() for s in segments], "seconds": round(offset, 3),
                "speech_words": len(words)}
