"""Stage 3, render: the video, one file per distinct encode profile (issue 4).

fetch/upload: highlights of the analysed sources, reframed (short: 9:16 by render.layout;
long: 16:9), the topic as a hook title, loudness-normalised, encoded once per distinct set
of encode settings among the job's platforms.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.engine.stage import StageContext, pick
from afx.errors import StageError
from afx.media.analysis import Analysis
from afx.media.ffmpeg import MediaError
from afx.media.highlights import select
from afx.media.probe import Probe, probe
from afx.media.profiles import check_duration, group, profiles_for
from afx.media.render import Output, RenderJob, Source, render
from afx.media.title import title_card
from afx.spec.job import Job, thaw

SHORT_MAX = 60.0


def target_seconds(job: Job) -> float:
    render_opts = job.get("render") or {}
    if job.get("format", "short") == "short":
        return min(float(render_opts.get("seconds", SHORT_MAX)), SHORT_MAX)
    return float(render_opts.get("seconds", float(job.get("durationMins", 1)) * 60))


class RenderStage:
    name = "render"
    version = "2"
    after: tuple[str, ...] = ("ingest", "analyze", "script")

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "entry", "format", "durationMins", "platforms", "topic", "render.layout",
                    "render.seconds", "render.facecam", "render.captions", "render.title", "render.music.volume",
                    "render.backgrounds")

    def files(self, job: Job) -> Mapping[str, Path]:
        out: dict[str, Path] = {}
        music = job.local_path_at(("render", "music", "file"))
        if music is not None:
            out["music"] = music
        for i, _ in enumerate((job.get("render") or {}).get("backgrounds", ())):
            path = job.local_path_at(("render", "backgrounds", i))
            if path is not None:
                out[f"background{i}"] = path
        return out

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        job = ctx.job
        if job.get("entry") in ("compose", "generate"):
            raise StageError(f"entry {job['entry']} is rendered from a voiceover (issue 5), not built yet")
        try:
            return self._render_sources(ctx)
        except MediaError as exc:
            raise StageError(str(exc)) from None

    def _render_sources(self, ctx: StageContext) -> dict[str, Any]:
        job = ctx.job
        opts = thaw(job.get("render") or {})
        ingest, analyzed = ctx.inputs["ingest"], ctx.inputs["analyze"]
        sources, analyses = [], []
        for i, src in enumerate(ingest.meta["sources"]):
            info = Probe.from_dict(src["probe"])
            a = Analysis.from_dict(json.loads(analyzed.path(f"analysis{i}.json").read_text()))
            facecam = opts.get("facecam") or a.facecam
            sources.append(Source(ingest.path(src["name"]), info, list(zip(a.keyframes, a.motion_x)), facecam))
            analyses.append(a)
        if not sources:
            raise StageError("no source media to render")
        fmt = job.get("format", "short")
        profiles = profiles_for(fmt, job.get("platforms", ()))
        fps = profiles[0].fps
        segments = select(analyses, target_seconds(job), fps)
        seconds = round(sum(s.duration for s in segments), 3)
        problems = check_duration(profiles, seconds)
        if problems:
            raise StageError("; ".join(problems))
        groups = group(profiles, seconds)
        outputs, exports = [], {}
        for k, (encode, members) in enumerate(groups.items()):
            name = "video.mp4" if k == 0 else f"video-{members[0].name}.mp4"
            outputs.append(Output(encode, ctx.output(name, export=name)))
            exports[name] = [p.name for p in members]
        title_opts = opts.get("title") or {}
        text = title_opts.get("text") or job.get("topic") or ""
        title = None
        xy = (0, 0)
        width, height = outputs[0].encode.width, outputs[0].encode.height
        if title_opts.get("enabled", True) and text.strip():
            title = ctx.workdir / ".title.png"
            card = title_card(text, width, height, title)
            xy = (card["x"], card["y"])
        layout = opts.get("layout", "center")
        rj = RenderJob(sources, segments, outputs, layout=layout, title=title, title_xy=xy,
                       title_seconds=min(float(title_opts.get("seconds", 3.0)), seconds))
        meta = render(rj, ctx.workdir, lambda f: ctx.progress(f, "rendering"))
        files = {}
        for out in outputs:
            info = probe(out.path, label=out.path.name, check_complete=False)
            limit = min(p.max_bytes for p in groups[out.encode])
            if info.size > limit:
                raise StageError(f"{out.path.name} is {info.size / 1048576:.0f} MB, over the "
                                 f"{limit / 1048576:.0f} MB limit of {', '.join(exports[out.path.name])}")
            files[out.path.name] = {"profiles": exports[out.path.name], "width": info.width,
                                    "height": info.height, "fps": info.fps, "seconds": info.duration,
                                    "bytes": info.size}
        return {"seconds": seconds, "layout": layout, "segments": [s.to_dict() for s in segments],
                "outputs": files, "title": bool(title), **meta}
