"""Stage 3, render: the video, one file per distinct encode profile (issues 4 and 5).

- fetch/upload: the segments edit chose, reframed (short: 9:16 by render.layout; long:
  16:9), the source's sound ducked under the voice's hook and call to action.
- compose: the voiceover over the spec's backgrounds (or a generated one), music ducked.
- generate: the voiceover over generated scenes, one per sentence.
All get the hook title (not generate: its scenes carry the words), word-level captions
(burned in, plus captions.srt / captions.vtt) and -14 LUFS loudness. The same ffmpeg run
keeps a frame without captions every few seconds in stills.mkv, from
which package picks the thumbnail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from afx.errors import StageError
from afx.spec.job import Job, thaw
from afx.stages.base import StageContext, pick

if TYPE_CHECKING:
    from afx.media.highlights import Segment
    from afx.media.render import Source
    from afx.media.tts import Word
    from afx.media.visuals import ComposeCanvas, GenerateCanvas, Scene

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class RenderStage:
    name = "render"
    version = "13"
    after: tuple[str, ...] = ("ingest", "analyze", "edit", "script")

    def fields(self, job: Job) -> Mapping[str, Any]:
        return pick(job, "entry", "format", "durationMins", "platforms", "topic", "tone", "render.layout",
                    "render.seconds", "render.facecam", "render.captions", "render.title", "render.music.volume",
                    "render.backgrounds")

    def files(self, job: Job) -> Mapping[str, Path]:
        from afx.stages.ingest import source_files

        out: dict[str, Path] = source_files(job)  # a source read in place
        music = job.local_path_at(("render", "music", "file"))
        if music is not None:
            out["music"] = music
        for i, _ in enumerate((job.get("render") or {}).get("backgrounds", ())):
            path = job.local_path_at(("render", "backgrounds", i))
            if path is not None:
                out[f"background{i}"] = path
        return out

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        return self._render(ctx)  # a MediaError is the input's: the engine reports it (issue 13)

    def _render(self, ctx: StageContext) -> dict[str, Any]:
        from afx.media.profiles import check_duration, group, profiles_for
        from afx.media.render import Output, RenderJob, render
        from afx.media.tts import Word

        job = ctx.job
        opts = thaw(job.get("render") or {})
        entry = job.get("entry", "fetch")
        script = ctx.inputs["script"]
        voice = script.path("voice.wav") if "voice.wav" in script.files else None
        voice_words = [Word(**w) for w in json.loads(script.path("words.json").read_text())]
        profiles = profiles_for(job.get("format", "short"), job.get("platforms", ()))
        sources: list[Source] = []
        segments: list[Segment] = []
        canvas = None
        preroll = postroll = 0.0
        spoken: list[Word] = list(voice_words)
        if entry in ("compose", "generate"):
            seconds = round(float(script.meta.get("seconds", 0.0)), 3)
            if seconds <= 0:
                raise StageError("nothing to render: the script has no voice or words")
            canvas = (self._generate(ctx, voice_words, seconds) if entry == "generate"
                      else self._compose(ctx, opts, seconds))
        else:
            sources, segments = self._sources(ctx, opts)
            preroll = float(script.meta.get("preroll", 0.0))
            postroll = float(script.meta.get("postroll", 0.0))
            seconds = round(preroll + sum(s.duration for s in segments) + postroll, 3)
            heard = [Word(w["text"], round(w["start"] + preroll, 3), round(w["end"] + preroll, 3))
                     for w in json.loads(ctx.inputs["edit"].path("transcript.json").read_text())]
            spoken = _merge(voice_words, heard)
        problems = check_duration(profiles, seconds)
        if problems:
            raise StageError("; ".join(problems))
        groups = group(profiles, seconds)
        outputs, exports = [], {}
        for k, (encode, members) in enumerate(groups.items()):
            name = "video.mp4" if k == 0 else f"video-{members[0].name}.mp4"
            outputs.append(Output(encode, ctx.output(name, export=name)))
            exports[name] = [p.name for p in members]
        width, height = outputs[0].encode.width, outputs[0].encode.height
        title_opts = opts.get("title") or {}
        title, xy = _title(ctx, title_opts, entry, width, height)
        lines, captions_file = _captions(ctx, opts.get("captions") or {}, spoken, width, height)
        music = ctx.files.get("music")
        framings = [s.get("framing") for s in ctx.inputs["edit"].meta.get("segments", [])] if sources else []
        rj = RenderJob(sources, segments, outputs, layout=opts.get("layout", "auto"), title=title, framings=framings,
                       title_xy=xy, title_seconds=min(float(title_opts.get("seconds", 3.0)), seconds),
                       canvas=canvas, voice=voice, music=music,
                       music_db=float((opts.get("music") or {}).get("volume", -18)), captions=captions_file,
                       stills=ctx.output("stills.mkv"), preroll=preroll if sources else 0.0,
                       postroll=postroll if sources else 0.0)
        meta = render(rj, ctx.workdir, lambda f: ctx.progress(f, "rendering"))
        files = _checked(outputs, groups, exports)
        return {"seconds": seconds, "entry": entry, "layout": opts.get("layout", "auto") if sources else entry,
                "segments": [s.to_dict() for s in segments], "outputs": files, "title": bool(title),
                "captions": {"lines": len(lines), "burned": bool(captions_file)},
                "stills": {"every": rj.still_every},
                "scenes": max(len(getattr(canvas, "scenes", ()) or getattr(canvas, "backgrounds", ())) - 1, 0)
                if canvas is not None else 0, **meta}

    def _sources(self, ctx: StageContext, opts: dict) -> tuple[list[Source], list[Segment]]:
        from afx.media.analysis import Analysis
        from afx.media.highlights import Segment
        from afx.media.probe import Probe
        from afx.media.render import Source
        from afx.stages.ingest import source_path

        ingest, analyzed = ctx.inputs["ingest"], ctx.inputs["analyze"]
        sources = []
        for i, src in enumerate(ingest.meta["sources"]):
            a = Analysis.from_dict(json.loads(analyzed.path(f"analysis{i}.json").read_text()))
            sources.append(Source(source_path(ctx, src), Probe.from_dict(src["probe"]),
                                  list(zip(a.keyframes, a.motion_x)), opts.get("facecam") or a.facecam))
        if not sources:
            raise StageError("no source media to render")
        segments = [Segment(s["source"], s["start"], s["end"]) for s in ctx.inputs["edit"].meta.get("segments", [])]
        return sources, segments

    def _compose(self, ctx: StageContext, opts: dict, seconds: float) -> ComposeCanvas:
        from afx.media.probe import probe, sniff_mp4
        from afx.media.visuals import ComposeCanvas

        backgrounds = []
        for i, _ in enumerate(opts.get("backgrounds", ())):
            path = ctx.files[f"background{i}"]
            if path.suffix.lower() in IMAGE_SUFFIXES:
                backgrounds.append((path, "image"))
            elif sniff_mp4(path) or path.suffix.lower() in (".mp4", ".mov", ".webm", ".mkv"):
                probe(path, label=opts["backgrounds"][i], check_complete=False)
                backgrounds.append((path, "video"))
            else:
                raise StageError(f"render.backgrounds[{i}]: {opts['backgrounds'][i]} is neither an image "
                                 "(png, jpg, webp) nor a video")
        return ComposeCanvas(seconds, backgrounds, ctx.job.get("tone"), ctx.workdir)

    def _generate(self, ctx: StageContext, words: list[Word], seconds: float) -> GenerateCanvas:
        from afx.media.tts import sentences
        from afx.media.visuals import GenerateCanvas, seed_of

        text = ctx.inputs["script"].path("script.txt").read_text(encoding="utf-8")
        scenes = _scenes(sentences(text), words, seconds)
        return GenerateCanvas(seconds, scenes, ctx.workdir, ctx.job.get("tone"), seed_of(ctx.job.get("topic") or ""))


def _scenes(parts: list[str], words: list[Word], seconds: float) -> list[Scene]:
    """One scene per sentence, timed by the voice's words (in order, counted per sentence)."""
    from afx.media.visuals import Scene, keyword

    scenes, i = [], 0
    used: set[str] = set()
    for sentence in parts:
        n = len(sentence.split())
        chunk = words[i:i + n] or words[-1:]
        start = chunk[0].start if chunk else 0.0
        end = chunk[-1].end if chunk else seconds
        word = keyword(sentence, avoid=used)
        used.add(word.lower())
        scenes.append(Scene(round(start, 3), round(end, 3), word))
        i += n
    if not scenes:
        scenes = [Scene(0.0, seconds, "")]
    scenes[0] = Scene(0.0, scenes[0].end, scenes[0].keyword)
    return scenes


def _title(ctx: StageContext, title_opts: dict[str, Any], entry: str, width: int,
           height: int) -> tuple[Path | None, tuple[int, int]]:
    """The title card (render.title; the topic by default, none over generated visuals): its
    image in the work folder and where it goes, or (None, (0, 0))."""
    from afx.media.title import title_card

    text = title_opts.get("text") or ctx.job.get("topic") or ""
    if not (title_opts.get("enabled", entry != "generate") and text.strip()):
        return None, (0, 0)
    title = ctx.workdir / ".title.png"
    card = title_card(text, width, height, title)
    return title, (card["x"], card["y"])


def _captions(ctx: StageContext, caption_opts: dict[str, Any], spoken: list[Any], width: int,
              height: int) -> tuple[list[Any], str | None]:
    """The caption lines of what is said, exported as SRT and VTT, and the ASS file to burn
    in (None when render.captions.enabled is false or nothing is said)."""
    from afx.media import captions as caps

    lines = caps.group_lines(spoken, int(caption_opts.get("wordsPerLine", 3)))
    style = caps.CaptionStyle.from_options(caption_opts)
    if not lines:
        return lines, None
    ctx.output("captions.srt", export="captions.srt").write_text(caps.to_srt(lines, style.uppercase))
    ctx.output("captions.vtt", export="captions.vtt").write_text(caps.to_vtt(lines, style.uppercase))
    if not caption_opts.get("enabled", True):
        return lines, None
    (ctx.workdir / ".captions.ass").write_text(caps.to_ass(lines, style, width, height), encoding="utf-8")
    caps.font_dir(ctx.workdir)
    return lines, ".captions.ass"


def _checked(outputs: list[Any], groups: dict[Any, Any], exports: dict[str, list[str]]) -> dict[str, Any]:
    """Each rendered file as probed, refused when it is over its platforms' size limit."""
    from afx.media.probe import probe

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
    return files


def _merge(voice: list[Word], heard: list[Word]) -> list[Word]:
    """Captions of what is said: the footage's speech word for word, and the voice's words
    where it speaks (the voice is placed clear of the footage's speech; where a spec's own
    placement made them meet, the voice's words win the seconds it speaks)."""
    spans: list[list[float]] = []
    for w in voice:
        if spans and w.start - spans[-1][1] < 0.8:
            spans[-1][1] = w.end
        else:
            spans.append([w.start, w.end])
    free = [w for w in heard if not any(s - 0.2 < w.end and w.start < e + 0.2 for s, e in spans)]
    return sorted([*voice, *free], key=lambda w: w.start)
