"""Stages analyze → moments → clips: a long recording becomes its N best shorts (issue 14).

Only for a job with `clips` (afx.stages.base.Applies); for it they are its last two stages:

- **moments** finds the candidate moments (afx.media.moments): sound and picture over the
  whole source, then speech recognition on the best `pool` candidates only (never on hours
  of audio), each cut from its set-up to a sentence end. Its key holds what changes the
  moments (min, max, keywords, the pool size), not `count`: asking for more clips within the
  pool reuses it.
- **clips** takes the best that do not overlap (render.segments' parts first, pinned), writes
  out/<job>/clips.json (every candidate, its score and signals, why it was or was not taken)
  and fans the job out (afx.stages.base.FansOut) into clip jobs `<job>-01`... in rank order:
  each the job's own fields without `clips`, its cut pinned as `render.segments`, run and
  cached like any job. The same source and settings always give the same clips and names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.spec.job import Job, thaw
from afx.stages.base import Artifacts, StageContext, pick
from afx.stages.ingest import source_files, source_path

log = logging.getLogger("afx.clips")
FPS = 30  # every render profile's frame rate (afx.media.profiles): clip cuts sit on its grid


def has_clips(job: Job) -> bool:
    return job.get("clips") is not None and job.get("entry", "fetch") in ("fetch", "upload")


def clip_name(job: str, rank: int) -> str:
    return f"{job}-{rank:02d}"


class MomentsStage:
    name = "moments"
    version = "1"
    after: tuple[str, ...] = ("ingest", "analyze")

    def applies(self, job: Job) -> bool:
        return has_clips(job)

    def fields(self, job: Job) -> Mapping[str, Any]:
        from afx.media.moments import Settings

        settings = Settings.of(job.get("clips"))
        return {**pick(job, "clips.min", "clips.max", "clips.keywords"), "pool": settings.pool}

    def files(self, job: Job) -> Mapping[str, Path]:
        return source_files(job)  # a source read in place

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        from afx.media.analysis import Analysis
        from afx.media.asr import transcribe_file
        from afx.media.moments import Moment, Settings, find, whole
        from afx.media.words import Word

        settings = Settings.of(ctx.job.get("clips"))
        sources = ctx.inputs["ingest"].meta.get("sources", [])
        analyses = [Analysis.from_dict(json.loads(ctx.inputs["analyze"].path(f"analysis{i}.json").read_text()))
                    for i in range(len(sources))]
        total = sum(a.duration for a in analyses)
        for i, a in enumerate(analyses):
            if a.duration < settings.min and total > settings.min + 0.5 / FPS:
                log.warning("%s: source %d is %.1f s long, shorter than one clip (clips.min %g s): a clip of it "
                            "is at most that long", ctx.job.name, i, a.duration, settings.min)
        if total <= settings.min + 0.5 / FPS:
            longest = max(range(len(analyses)), key=lambda i: analyses[i].duration)
            log.warning("%s: the source is %.1f s long, shorter than one clip (clips.min %g s): one clip of "
                        "the whole source", ctx.job.name, total, settings.min)
            pool: list[Moment] = [whole(analyses[longest], longest, FPS)]
            rest: list[Moment] = []
        else:
            def hear(source: int, start: float, end: float) -> list[Word]:
                if not sources[source]["probe"].get("has_audio"):
                    return []
                words = transcribe_file(source_path(ctx, sources[source]), start, end - start)
                return [Word(w.text, round(start + w.start, 3), round(start + w.end, 3)) for w in words]

            pool, rest = find(analyses, settings, hear, FPS, ctx.progress)
        doc = {"pool": [m.to_dict() for m in pool], "rest": [m.to_dict() for m in rest],
               "durations": [a.duration for a in analyses]}
        ctx.output("moments.json").write_text(json.dumps(doc))
        return {"moments": len(pool), "candidates": len(pool) + len(rest)}


class ClipsStage:
    name = "clips"
    version = "1"
    after: tuple[str, ...] = ("moments",)

    def applies(self, job: Job) -> bool:
        return has_clips(job)

    def fields(self, job: Job) -> Mapping[str, Any]:
        # (min, max and keywords are in clips.json too: moments that come out the same for
        # other settings must not leave the old ones there)
        return pick(job, "name", "clips.count", "clips.minGap", "clips.min", "clips.max", "clips.keywords",
                    "render.segments")

    def files(self, job: Job) -> Mapping[str, Path]:
        return {}

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        from afx.media.moments import Moment, Settings, choose

        job = ctx.job
        settings = Settings.of(job.get("clips"))
        doc = json.loads(ctx.inputs["moments"].path("moments.json").read_text())
        pool = [Moment.from_dict(m) for m in doc["pool"]]
        rest = [Moment.from_dict(m) for m in doc["rest"]]
        pins = _pins(job, doc["durations"])
        if len(pins) > settings.count:
            log.warning("%s: %d parts pinned in render.segments, more than clips.count (%d): each is a clip",
                        job.name, len(pins), settings.count)
        taken, left = choose(pool, settings.count, settings.gap, pins, lambda rank: clip_name(job.name, rank))
        if len(taken) < settings.count:
            log.warning("%s: %d of the %d clips asked for: the source has no more moments that do not overlap "
                        "(a shorter clips.max or minGap leaves room for more)", job.name, len(taken), settings.count)
        clips = []
        for pick_ in taken:
            m = pick_.moment
            clips.append({"name": clip_name(job.name, pick_.rank), "rank": pick_.rank, "source": m.source,
                          "start": round(m.start, 3), "end": round(m.end, 3), "seconds": round(m.duration, 3),
                          "score": round(m.score, 3), "signals": m.to_dict()["signals"], "why": pick_.why,
                          "cut": list(m.notes), **({"pinned": pick_.pinned} if pick_.pinned is not None else {})})
        names = {(c["source"], c["start"], c["end"]): c["name"] for c in clips}
        candidates = []
        for p in [*taken, *left]:
            if p.pinned is not None:
                continue
            entry = p.moment.to_dict()
            entry["taken"] = names.get((p.moment.source, round(p.moment.start, 3), round(p.moment.end, 3)))
            entry["why"] = p.why if entry["taken"] else f"not taken: {p.why}"
            candidates.append(entry)
        for m in rest:
            entry = m.to_dict()
            entry.update({"taken": None, "why": "not taken: below the moments whose speech was checked (the "
                          f"{len(pool)} best by sound and picture)"})
            candidates.append(entry)
        candidates.sort(key=lambda c: (c["source"], c["start"]))
        out = {"job": job.name, "count": settings.count,
               "settings": {"min": settings.min, "max": settings.max, "minGap": settings.gap,
                            "keywords": list(settings.keywords)},
               "clips": clips, "candidates": candidates}
        ctx.output("clips.json", export="clips.json").write_text(json.dumps(out, indent=2) + "\n")
        return {"clips": [{k: c[k] for k in ("name", "rank", "source", "start", "end")} |
                          ({"pinned": c["pinned"]} if "pinned" in c else {}) for c in clips]}

    # -- FansOut ----------------------------------------------------------------------------
    def promise(self, job: Job) -> str:
        count = int((job.get("clips") or {}).get("count", 1))
        return f"{count} clip{'s' * (count != 1)}, after analysis"

    def children(self, job: Job, artifacts: Mapping[str, Artifacts]) -> list[Job]:
        fields = thaw(job.fields)
        fields.pop("clips", None)
        render = dict(fields.get("render") or {})
        pinned = list(render.get("segments") or [])
        out = []
        for clip in artifacts["clips"].meta.get("clips", []):
            if "pinned" in clip and clip["pinned"] < len(pinned):
                segment = dict(pinned[clip["pinned"]])
            else:
                segment = {"source": clip["source"], "start": clip["start"], "end": clip["end"]}
            name = clip["name"]
            out.append(job.derive(name, {**fields, "name": name, "render": {**render, "segments": [segment]}}))
        return out


def _pins(job: Job, durations: list[float]) -> list[Any]:
    """render.segments of a job with clips: each part a clip of its own, pinned by hand."""
    from afx.media.moments import Moment
    from afx.stages.edit import pinned_segments

    segments = (job.get("render") or {}).get("segments")
    if not segments:
        return []

    class _Span:  # what pinned_segments reads of an analysis
        def __init__(self, duration: float) -> None:
            self.duration = duration

    parts = pinned_segments(thaw(segments), [_Span(d) for d in durations], FPS)
    return [Moment(p.source, (p.start + p.end) / 2, p.start, p.end, 0.0, 0.0, notes=["pinned by hand"])
            for p in parts]
