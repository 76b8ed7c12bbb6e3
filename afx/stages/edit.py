"""Stage analyze → edit: which parts of the sources make the video, and what is said in them.

Highlight choice (issue 4) moved here from render so the script stage can write from what
the chosen footage says, and render and captions use the same cut. The speech around the
chosen segments is recognised (faster-whisper, offline, on windows reaching 10 s past each
segment, never the whole of a long source); where the source speaks, each cut is moved onto
a sentence boundary, so no clip starts or ends inside a word or a sentence (issue 12). The
words of the final cut are written in the output's timeline (transcript.json).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from afx.errors import StageError
from afx.spec.job import Job
from afx.stages.base import StageContext, pick
from afx.stages.ingest import source_path

log = logging.getLogger("afx.edit")

SHORT_MAX = 60.0
WINDOW = 8.0  # seconds of speech recognised beyond each chosen segment: where its cuts may move (speech.REACH)


def target_seconds(job: Job) -> float:
    opts = job.get("render") or {}
    if job.get("format", "short") == "short":
        return min(float(opts.get("seconds", SHORT_MAX)), SHORT_MAX)
    return float(opts.get("seconds", float(job.get("durationMins", 1)) * 60))


class EditStage:
    name = "edit"
    version = "5"
    after: tuple[str, ...] = ("ingest", "analyze")

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "entry", "format", "durationMins", "render.seconds", "render.segments", "render.layout")

    def files(self, job: Job) -> Mapping[str, Path]:
        from afx.stages.ingest import source_files

        return source_files(job)  # a source read in place

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        from afx.media.analysis import Analysis
        from afx.media.highlights import select
        from afx.media.layouts import LAYOUTS
        from afx.media.profiles import profiles_for
        from afx.media.speech import snap

        sources = ctx.inputs["ingest"].meta.get("sources", [])
        if not sources:
            return {"segments": [], "seconds": 0.0, "speech_words": 0}
        analyses = [Analysis.from_dict(json.loads(ctx.inputs["analyze"].path(f"analysis{i}.json").read_text()))
                    for i in range(len(sources))]
        fps = profiles_for(ctx.job.get("format", "short"), ())[0].fps  # every profile of a format shares it
        target = target_seconds(ctx.job)
        pinned = (ctx.job.get("render") or {}).get("segments")
        segments = pinned_segments(pinned, analyses, fps) if pinned else select(analyses, target, fps)
        clock = time.perf_counter()
        heard = self._hear(ctx, sources, segments)
        timings = {"speech": round(time.perf_counter() - clock, 3)}
        if any(heard) and not pinned:
            # The source speaks: no cut inside a word or a sentence (issue 12).
            segments = snap(segments, heard, [a.duration for a in analyses], target, fps)
        layout = LAYOUTS[(ctx.job.get("render") or {}).get("layout", "auto")]
        framings: list[dict | None] = [None] * len(segments)
        faces_kept: list[int] = []
        if ctx.job.get("format", "short") == "short" and layout.frames_faces:
            clock = time.perf_counter()
            segments, framings, faces_kept = self._frame(ctx, sources, analyses, segments,
                                                         [p.get("framing") for p in pinned] if pinned else None)
            timings["framing"] = round(time.perf_counter() - clock, 3)
        # (timings are logged, not kept: a manifest must not differ from run to run)
        log.info("%s: speech recognition %.1f s, framing %.1f s", ctx.job.name, timings["speech"],
                 timings.get("framing", 0.0))
        words = []
        offset = 0.0
        for seg in segments:
            for w in heard[seg.source]:
                if w.start >= seg.start - 0.05 and w.end <= seg.end + 0.05:
                    words.append({"text": w.text, "start": round(offset + max(w.start - seg.start, 0.0), 3),
                                  "end": round(offset + min(w.end, seg.end) - seg.start, 3)})
            offset += seg.duration
        ctx.output("transcript.json").write_text(json.dumps(words))
        return {"segments": [{**s.to_dict(), **({"framing": f} if f else {})} for s, f in zip(segments, framings)],
                "seconds": round(offset, 3), "speech_words": len(words), "pinned": bool(pinned),
                **({"faces": {"moments": faces_kept[0], "kept": faces_kept[1]}} if faces_kept else {})}

    def _frame(self, ctx: StageContext, sources: list, analyses: list, segments: list,
               pins: list | None = None) -> tuple[list, list, list[int]]:
        """The auto layout's framing of each shot of the cut (afx.media.framing): segments are
        split at scene cuts, each part framed on its own. Faces are looked for a few times a
        second over the chosen parts only, never over the whole of a long source. Pinned
        segments (render.segments) are not split; a pinned framing is used as it is, or as
        its hand-written form says ({x: 0.3}, {face: left}, {mode: fit})."""
        from afx.media import faces, framing
        from afx.media.highlights import Segment
        from afx.media.highlights import snap as frame_snap
        from afx.media.probe import Probe

        out_segments, out_framings = [], []
        check = [0, 0]  # moments with a face, moments with one wholly in the output (the score's)

        def count(samples: list, f: dict, cw: float) -> None:
            moments, hits = framing.kept(samples, f, cw)
            check[0] += moments
            check[1] += hits

        total = sum(s.duration for s in segments) or 1.0
        done = 0.0
        for k, seg in enumerate(segments):
            info = Probe.from_dict(sources[seg.source]["probe"])
            a = analyses[seg.source]
            pin = (pins[k] or {}) if pins is not None else None
            if pin and (pin.get("path") or pin.get("windows") or "x" in pin or pin.get("mode") == "fit"):
                out_segments.append(seg)
                out_framings.append(_pinned_framing(pin, seg.duration))
                done += seg.duration
                continue
            if info.width <= info.height * 1.05 or info.rotation in (90, 270):
                out_segments.append(seg)  # portrait or square: fitted, nothing to pan across
                out_framings.append(framing.Framing("fit").to_dict())
                done += seg.duration
                continue
            path = source_path(ctx, sources[seg.source])
            cw = framing.crop_width(info.width, info.height, 1080, 1920)
            seen, cuts = faces.scan(path, seg.start, seg.end, rotation=info.rotation)
            if pin is not None:  # pinned: one framing for the part as pinned (the camera set at its cuts)
                if pin.get("face"):
                    seen = [(t, framing.choose(boxes, pin["face"])) for t, boxes in seen]
                out_segments.append(seg)
                out_framings.append(_pinned_shot(seen, cuts, pin, seg, a, cw, info.height / info.width))
                count(seen, out_framings[-1], cw)
                done += seg.duration
                continue
            for lo, hi in framing.shots(0.0, seg.duration, cuts):
                a0, a1 = frame_snap(seg.start + lo, 30), frame_snap(seg.start + hi, 30)
                shot = [(t - lo, boxes) for t, boxes in seen if lo - 1e-3 <= t < hi]
                motion = [(t - a0, x) for t, x in zip(a.keyframes, a.motion_x) if a0 - 1 <= t <= a1 + 1]
                out_segments.append(Segment(seg.source, a0, a1))
                out_framings.append(framing.frame(shot, a1 - a0, cw, motion, aspect=info.height / info.width
                                                  ).to_dict())
                count(shot, out_framings[-1], cw)
            done += seg.duration
            ctx.progress(min(done / total, 1.0), "framing")
        return out_segments, out_framings, check

    def _hear(self, ctx: StageContext, sources: list, segments: list) -> list[list]:
        """Each source's words (source time) around the chosen segments: recognition on
        windows reaching WINDOW seconds past each segment, not on the whole of a long source."""
        from afx.media.asr import transcribe_file
        from afx.media.tts import Word

        heard: list[list[Word]] = [[] for _ in sources]
        windows: list[list[list[float]]] = [[] for _ in sources]
        for seg in segments:
            if sources[seg.source]["probe"].get("has_audio"):
                duration = float(sources[seg.source]["probe"]["duration"])
                lo, hi = max(seg.start - WINDOW, 0.0), min(seg.end + WINDOW, duration)
                if windows[seg.source] and lo <= windows[seg.source][-1][1]:
                    windows[seg.source][-1][1] = max(windows[seg.source][-1][1], hi)
                else:
                    windows[seg.source].append([lo, hi])
        todo = sum(len(w) for w in windows)
        done = 0
        for i, spans in enumerate(windows):
            path = source_path(ctx, sources[i])
            for lo, hi in spans:
                for w in transcribe_file(path, lo, hi - lo):
                    heard[i].append(Word(w.text, round(lo + w.start, 3), round(lo + w.end, 3)))
                done += 1
                ctx.progress(done / max(todo, 1), "transcribing")
        return heard


def seconds_of(value: Any) -> float:
    """A timecode of render.segments (62.5, "1:02:10", "00:01:02.500") in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    total = 0.0
    for part in str(value).split(":"):
        total = total * 60 + float(part)
    return total


def pinned_segments(pinned: Any, analyses: list, fps: int) -> list:
    """render.segments as Segments on the frame grid, checked against the sources."""
    from afx.media.highlights import Segment
    from afx.media.highlights import snap as frame_snap

    out = []
    for i, part in enumerate(pinned):
        where = f"render.segments[{i}]"
        source = int(part.get("source", 0))
        if source >= len(analyses):
            raise StageError(f"{where}.source: {source} names no source (the job has {len(analyses)})")
        start, end = seconds_of(part["start"]), seconds_of(part["end"])
        duration = analyses[source].duration
        if end <= start:
            raise StageError(f"{where}: end ({part['end']}) is not after start ({part['start']})")
        if start >= duration or end > duration + 0.05:
            raise StageError(f"{where}: {part['start']}-{part['end']} is not within the source "
                             f"({duration:.2f} s long)")
        out.append(Segment(source, frame_snap(start, fps), frame_snap(min(end, duration), fps)))
    return out


def _pinned_shot(seen: list[Any], cuts: list[float], pin: dict[str, Any], seg: Any, a: Any, cw: float,
                 aspect: float) -> dict[str, Any]:
    """A pinned segment framed as one part: the camera follows its faces (or the one picked,
    `face: left`) and the motion, set anew at its cuts; `mode: crop` never stacks two people."""
    from afx.media import framing

    motion = [(t - seg.start, x) for t, x in zip(a.keyframes, a.motion_x) if seg.start - 1 <= t <= seg.end + 1]
    return framing.frame(seen, seg.duration, cw, motion, cuts, aspect=aspect,
                         stack=pin.get("mode") != "crop" and not pin.get("face")).to_dict()


def _pinned_framing(pin: dict, duration: float) -> dict:
    """A framing written in a spec, in the form render uses."""
    if "x" in pin and not pin.get("path"):
        return {"mode": "crop", "subjects": 0, "path": [[0.0, float(pin["x"])], [round(duration, 3), float(pin["x"])]]}
    mode = pin.get("mode") or ("stack" if pin.get("windows") else "crop" if pin.get("path") else "fit")
    return {k: v for k, v in {**pin, "mode": mode}.items() if k in ("mode", "path", "windows", "subjects")}
