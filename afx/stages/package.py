"""Stage 4, package: thumbnail, publish copy per platform, and the quality score (issue 6)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.errors import StageError
from afx.spec.job import Job, thaw
from afx.stages.base import StageContext, pick
from afx.stages.edit import target_seconds

log = logging.getLogger("afx.package")
LONG_THUMB = (1280, 720)  # YouTube's custom thumbnail size


class PackageStage:
    name = "package"
    version = "4"
    after: tuple[str, ...] = ("edit", "script", "render")

    def fields(self, job: Job) -> Mapping[str, Any]:
        return {**pick(job, "entry", "topic", "tone", "platforms", "format", "durationMins", "copy",
                       "render.thumbnail", "render.seconds"), **({"clip": True} if job.parent else {})}

    def files(self, job: Job) -> Mapping[str, Path]:
        path = job.local_path_at(("render", "thumbnail", "file"))
        return {"thumbnail": path} if path is not None else {}

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        return self._package(ctx)  # a MediaError is the input's: the engine reports it (issue 13)

    def _package(self, ctx: StageContext) -> dict[str, Any]:
        from afx.media import copy as copywriter
        from afx.media import thumbnail
        from afx.media.probe import probe

        job = ctx.job
        render, script = ctx.inputs["render"], ctx.inputs["script"]
        video = render.path("video.mp4")
        info = probe(video, check_complete=False)
        opts = thaw((job.get("render") or {}).get("thumbnail") or {})
        fmt = job.get("format", "short")
        line = _clip_line(ctx)
        # thumbnail
        size = (info.width, info.height) if fmt == "short" else LONG_THUMB
        text = opts.get("text", thumbnail.short_text(line or job.get("topic") or ""))
        faces: tuple[Any, ...] = ()  # of the chosen frame: the title keeps off them
        if "file" in opts:
            picture, chosen = ctx.files["thumbnail"].read_bytes(), {"file": opts["file"]}
        else:
            if "time" in opts:
                t = float(opts["time"])
                if t >= info.duration:
                    raise StageError(f"render.thumbnail.time {t:g} s is beyond the video ({info.duration:.1f} s)")
                chosen = {"time": t}
                picture = thumbnail.frame(video, t)
            else:
                # The render's stills (no captions) or, from a render without them, the
                # video's keyframes; either way after the title.
                clean = "stills.mkv" in render.files
                source = render.path("stills.mkv") if clean else video
                skip = float(((job.get("render") or {}).get("title") or {}).get("seconds", 3.0))
                ranked = sorted(thumbnail.candidates(source, skip=skip), key=lambda c: (-c.score, c.time))
                best = ranked[0] if ranked else thumbnail.Candidate(min(info.duration / 2, 1.0), 0.0, {})
                chosen = {"time": best.time, "score": best.score, "parts": best.parts, "clean": clean}
                faces = best.faces
                picture = thumbnail.frame(source, chosen["time"])
        chosen.update(thumbnail.compose(picture, size, text, ctx.output("thumb.jpg", export="thumb.jpg"), faces))
        # publish copy, per platform and in general (the API's publishCopy)
        script_text = script.path("script.txt").read_text(encoding="utf-8")
        overrides = thaw(job.get("copy") or {})
        topic, tone = job.get("topic") or "", job.get("tone")
        if line and "title" not in overrides:
            joined = f"{line} | {topic}" if topic else line
            overrides["title"] = joined if len(joined) <= 90 else line
        per_platform, warnings = {}, []
        general = copywriter.write(topic, tone, script_text, fmt, None, overrides)
        warnings += general.warnings
        for platform in job.get("platforms", ()):
            c = copywriter.write(topic, tone, script_text, fmt, platform, overrides)
            warnings += c.warnings
            per_platform[platform] = {**c.to_dict(), "caption": c.caption()}
        for w in warnings:
            log.warning("%s: %s", job.name, w)
        ctx.output("copy.json", export="copy.json").write_text(
            json.dumps({"publishCopy": general.to_dict(), "platforms": per_platform}, indent=2, ensure_ascii=False))
        # score
        result = self._score(ctx, video, info)
        return {"publishCopy": general.to_dict(), "copy": per_platform, "thumbnail": chosen,
                "score": result, "warnings": warnings}

    def _score(self, ctx: StageContext, video: Path, info: Any) -> dict[str, Any]:
        from afx.media.analysis import analyse
        from afx.media.measure import loudness
        from afx.media.profiles import profiles_for
        from afx.media.score import score

        job = ctx.job
        render, script = ctx.inputs["render"], ctx.inputs["script"]
        a = analyse(video, info.duration, info.has_audio)
        level = loudness(video)
        profiles = profiles_for(job.get("format", "short"), job.get("platforms", ()))
        words = json.loads(script.path("words.json").read_text())
        edit = ctx.inputs["edit"]
        pre = float(script.meta.get("preroll", 0.0))  # the footage starts after the held opening frame
        heard = [{**w, "start": w["start"] + pre, "end": w["end"] + pre}
                 for w in (json.loads(edit.path("transcript.json").read_text()) if "transcript.json" in edit.files
                           else [])]
        speech = [(w["start"], w["end"]) for w in [*words, *heard]]
        srt = render.path("captions.srt") if "captions.srt" in render.files else None
        caption_text = " ".join(line for line in srt.read_text(encoding="utf-8").splitlines()
                                if line.strip() and "-->" not in line and not line.strip().isdigit()) if srt else ""
        captions = render.meta.get("captions") or {}
        captioned = speech if captions.get("burned") else []
        entry = job.get("entry", "fetch")
        target = float(script.meta.get("seconds", info.duration)) if entry in ("compose", "generate") \
            else target_seconds(job)
        hook_text = bool(render.meta.get("title")) or any(s < 3.0 for s, _ in speech if captions.get("burned"))
        seams = max(len(render.meta.get("segments") or []) - 1, 0) + int(render.meta.get("scenes", 0))
        p = profiles[0]
        return score(analysis=a, loudness=level, width=info.width, height=info.height, fps=info.fps,
                     expected=(p.width, p.height, p.fps), seconds=info.duration,
                     target=min(target, min(x.max_seconds for x in profiles)),
                     max_seconds=min(x.max_seconds for x in profiles), speech=speech, captioned=captioned,
                     text_in_hook=hook_text, seams=seams, heard=heard, caption_text=caption_text,
                     voice=[(w["start"], w["end"]) for w in words], faces=edit.meta.get("faces"))


def _clip_line(ctx: StageContext) -> str:
    """A clip job (issue 14) is one of many from a recording: its title and thumbnail say its
    own liveliest line, not only the topic every clip shares ("" for other jobs)."""
    from afx.media.copy import quote

    edit = ctx.inputs["edit"]
    if not ctx.job.parent or "transcript.json" not in edit.files:
        return ""
    return quote(json.loads(edit.path("transcript.json").read_text()))
