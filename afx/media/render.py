"""Render a video in one ffmpeg run: trim + concat, reframe (afx.media.layouts), title, loudness,
encode (issue 4).

The filtergraph holds only numbers and afx's own labels. User text (the title) reaches
ffmpeg as a picture file; file paths reach it as `-i` arguments; ffmpeg runs in the work
folder. Loudness is measured first on the audio alone (a fast pass), so the render applies
a known gain (and a peak limiter only where needed): -14 LUFS integrated, true peak under
-1 dBTP.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from afx.media.ffmpeg import SAFE_INPUT, SOURCE_INPUT, MediaError, run
from afx.media.highlights import Segment
from afx.media.layouts import Shot, reframe
from afx.media.probe import Probe
from afx.media.profiles import Encode

TARGET_LUFS = -14.0
TARGET_TP = -2.0  # plain gain up to here; above it, a limiter (see _normaliser)


@dataclass
class Source:
    path: Path
    probe: Probe
    motion_x: list[tuple[float, float]] = field(default_factory=list)  # (time, 0-1) for layout track
    facecam: list[float] | None = None


@dataclass
class Output:
    encode: Encode
    path: Path


PLAIN = "vplain"  # see Canvas.build


class Canvas(Protocol):
    """Generated or composed pictures (compose/generate): inputs and a chain ending in [vc]."""

    duration: float

    def build(self, first_input: int, fps: int, size: tuple[int, int], plain: bool = False
              ) -> tuple[list[str], list[str]]:
        """(input arguments, filter chains); inputs are numbered from first_input. With
        `plain`, also [vplain]: the pictures without any words drawn on them (thumbnails)."""


@dataclass
class RenderJob:
    sources: Sequence[Source]
    segments: Sequence[Segment]
    outputs: Sequence[Output]
    layout: str = "auto"  # a name in afx.media.layouts.LAYOUTS (shorts); long always fits 16:9
    framings: Sequence[dict[str, Any] | None] = ()  # auto: per segment, afx.media.framing.Framing.to_dict()
    title: Path | None = None  # transparent PNG (afx.media.title.title_card)
    title_xy: tuple[int, int] = (0, 0)  # where it goes in the frame
    title_seconds: float = 3.0
    canvas: Canvas | None = None  # instead of sources/segments
    voice: Path | None = None  # voiceover (any rate, mono): ducks the source or music under it
    music: Path | None = None  # background music, looped, ducked under the voice
    music_db: float = -18.0
    captions: str | None = None  # ASS file name in the work folder; fonts in `.fonts` beside it
    stills: Path | None = None  # frames without captions, for the thumbnail: MJPEG in MKV
    preroll: float = 0.0  # seconds the first frame is held (silent) before the footage: the hook's room
    postroll: float = 0.0  # seconds the last frame is held after it: the call to action's
    preset: str = "veryfast"
    crf: int = 23

    @property
    def duration(self) -> float:
        if self.canvas is not None:
            return round(self.canvas.duration, 6)
        return round(self.preroll + sum(s.duration for s in self.segments) + self.postroll, 6)

    @property
    def size(self) -> tuple[int, int]:
        return self.outputs[0].encode.width, self.outputs[0].encode.height

    @property
    def still_every(self) -> float:
        """Seconds between stills: every 2 s, at most ~48 of them."""
        return round(max(2.0, self.duration / 48), 3)

    @property
    def fps(self) -> int:
        return self.outputs[0].encode.fps


def _reframe(job: RenderJob, source: Source, seg: Segment, label: str, framing: dict[str, Any] | None = None
             ) -> str:
    return reframe(job.layout, Shot(job.size, source.probe, seg, label, source.motion_x, source.facecam, framing))


@dataclass
class _Graph:
    """A render's ffmpeg command in the making: the input arguments, and the chains of its two
    filtergraphs (sound, pictures), each a list joined by ';' at the end."""

    args: list[str] = field(default_factory=list)
    sound: list[str] = field(default_factory=list)
    pictures: list[str] = field(default_factory=list)
    inputs: int = 0  # the `-i`s so far: the next input's number

    def add_input(self, *args: str) -> int:
        """Arguments ending in one `-i`; the number ffmpeg gives that input."""
        self.args += args
        self.inputs += 1
        return self.inputs - 1


def _graph(job: RenderJob, audio_only: bool = False, loudness: dict[str, float] | None = None
           ) -> tuple[list[str], list[str], list[str]]:
    """(input arguments, filtergraphs, output labels).

    Pictures and sound are two filtergraphs (two -filter_complex): in one graph, a second
    video sink (the stills) that ends with the video made ffmpeg 9 end the sound early in
    about one render in five (a voiced upload's voice read to 4.5 s of 6).
    """
    g = _Graph()
    bed = None  # the audio under the voice: the sources' sound, or music
    plain = False  # the canvas gave its pictures without words ([vplain])
    if job.canvas is None:
        _footage(job, g, audio_only)
        bed = "ac"
    elif not audio_only:
        canvas_args, canvas_chains = job.canvas.build(g.inputs, job.fps, job.size, plain=job.stills is not None)
        plain = any(f"[{PLAIN}]" in c for c in canvas_chains)
        g.args += canvas_args
        g.pictures += canvas_chains
        g.inputs += sum(1 for a in canvas_args if a == "-i")
    mix = _mix(job, g, bed)
    if loudness is None:  # the measuring pass
        g.sound.append(f"[{mix}]ebur128=peak=true:framelog=quiet[aout]")
    else:
        g.sound.append(f"[{mix}]{_normaliser(loudness)}[aout]")
    if audio_only:
        return g.args, [";".join(g.sound)], ["aout"]
    video, stills = _overlays(job, g, plain)
    extra = [stills] if stills else []
    m = len(job.outputs)
    if m == 1:
        return g.args, [";".join(g.pictures), ";".join(g.sound)], [video, "aout", *extra]
    g.pictures.append(f"[{video}]split={m}" + "".join(f"[vo{j}]" for j in range(m)))
    g.sound.append("[aout]asplit=" + str(m) + "".join(f"[ao{j}]" for j in range(m)))
    return (g.args, [";".join(g.pictures), ";".join(g.sound)],
            [x for j in range(m) for x in (f"vo{j}", f"ao{j}")] + extra)


def _footage(job: RenderJob, g: _Graph, audio_only: bool) -> None:
    """The segments, each reframed by the layout, in order: [ac] and [vc] (the first and last
    frames held over the pre- and postroll, the footage's sound silent meanwhile)."""
    fps = job.fps
    for i, seg in enumerate(job.segments):
        _segment(job, g, i, seg, audio_only)
    k = len(job.segments)
    held = job.preroll > 0 or job.postroll > 0
    g.sound.append("".join(f"[a{i}]" for i in range(k)) + f"concat=n={k}:v=0:a=1[{'ah' if held else 'ac'}]")
    if not audio_only:
        g.pictures.append("".join(f"[v{i}]" for i in range(k)) + f"concat=n={k}:v=1:a=0[{'vh' if held else 'vc'}]")
    if not held:
        return
    total = int(round(job.duration * 48000))
    pre = int(round(job.preroll * 48000))
    g.sound.append(f"[ah]adelay=delays={pre}S:all=1,apad=whole_len={total},atrim=end_sample={total},"
                   "asetpts=N/SR/TB[ac]")
    if not audio_only:
        frames = int(round(job.duration * fps))
        g.pictures.append(f"[vh]tpad=start_duration={job.preroll:.6f}:start_mode=clone:"
                          f"stop_duration={job.postroll + 1:.6f}:stop_mode=clone,trim=end_frame={frames},"
                          "setpts=PTS-STARTPTS[vc]")


def _segment(job: RenderJob, g: _Graph, i: int, seg: Segment, audio_only: bool) -> None:
    """Segment i, input-seeked: its sound as [a{i}], its pictures as [v{i}], each exactly its length."""
    fps = job.fps
    src = job.sources[seg.source]
    d = round(seg.duration, 6)
    frames = int(round(d * fps))
    samples = int(round(d * 48000))
    skip_video = ["-vn"] if audio_only else []
    seek = ["-ss", f"{seg.start:.6f}"] if seg.start > 0 else []  # (-ss 0 costs a seek, for nothing)
    vin = g.add_input(*SOURCE_INPUT, *skip_video, *seek, "-t", f"{d + 0.5:.6f}", "-i", str(src.path))
    if src.probe.has_audio:
        ain = f"{vin}:a:0"
    else:
        ain = f"{g.add_input('-f', 'lavfi', '-t', f'{d + 0.5:.6f}', '-i', 'anullsrc=r=48000:cl=stereo')}:a"
    if not audio_only:
        framing = job.framings[i] if i < len(job.framings) else None
        # fps with start_time=0, not setpts=PTS-STARTPTS: timestamps stay those of the
        # input (0 = the seek point), so a video stream that starts after the sound (0.85
        # s into a real stage clip) is padded with its first frame and stays in sync.
        g.pictures.append(f"[{vin}:v:0]fps=fps={fps}:start_time=0,{_reframe(job, src, seg, f's{i}', framing)},"
                          f"setsar=1,format=yuv420p,tpad=stop_mode=clone:stop_duration=1,"
                          f"trim=end_frame={frames},setpts=PTS-STARTPTS[v{i}]")
    g.sound.append(f"[{ain}]aresample=async=1:first_pts=0,{_STEREO},apad=whole_len={samples},"
                   f"atrim=end_sample={samples},asetpts=N/SR/TB[a{i}]")


def _mix(job: RenderJob, g: _Graph, bed: str | None) -> str:
    """The programme's sound before loudness: the bed (footage sound or music) ducked under the
    voice, either alone, or silence; the label it ends in."""
    total = int(round(job.duration * 48000))
    if job.music is not None and job.canvas is not None:
        n = g.add_input("-stream_loop", "-1", *SAFE_INPUT, "-i", str(job.music))
        g.sound.append(f"[{n}:a:0]{_STEREO},volume={job.music_db:.1f}dB,atrim=end_sample={total},"
                       f"asetpts=N/SR/TB[mu]")
        bed = "mu"
    voice = None
    if job.voice is not None:
        n = g.add_input(*SAFE_INPUT, "-i", str(job.voice))
        g.sound.append(f"[{n}:a:0]{_STEREO},apad=whole_len={total},atrim=end_sample={total},asetpts=N/SR/TB[vo]")
        voice = "vo"
    if bed and voice:  # duck the bed under the voice
        g.sound.append("[vo]asplit=2[vsc][vmx];"
                       f"[{bed}][vsc]sidechaincompress=threshold=0.02:ratio=12:attack=10:release=400:makeup=1[bd];"
                       "[bd][vmx]amix=inputs=2:normalize=0:duration=first[mix]")
        return "mix"
    lone = bed or voice
    if lone:
        return lone
    n = g.add_input("-f", "lavfi", "-t", f"{job.duration:.6f}", "-i", "anullsrc=r=48000:cl=stereo")
    g.sound.append(f"[{n}:a]atrim=end_sample={total}[sil]")
    return "sil"


def _overlays(job: RenderJob, g: _Graph, plain: bool) -> tuple[str, str | None]:
    """Title, stills and captions over [vc]: (the picture's label, the stills' label or None)."""
    fps = job.fps
    video = "vc"
    if job.title is not None:
        # Decoded once and repeated by `loop` (not `-loop 1`, which decodes the PNG per frame).
        n = g.add_input(*SAFE_INPUT, "-i", str(job.title))
        frames = max(int(round(job.title_seconds * fps)), 1)
        fade_out = max(job.title_seconds - 0.3, 0.0)
        x, y = job.title_xy
        g.pictures.append(f"[{n}:v]format=rgba,loop=loop={frames - 1}:size=1:start=0,setpts=N/{fps}/TB,"
                          f"fade=t=in:st=0:d=0.25:alpha=1,fade=t=out:st={fade_out:.3f}:d=0.3:alpha=1[title];"
                          f"[vc][title]overlay={x}:{y}:eof_action=pass[vt]")
        video = "vt"
    stills = None
    if job.stills is not None:
        # The picture before the captions, a frame every few seconds: the thumbnail's
        # candidates (after the title has gone), from this same decode. Split after the
        # title's overlay: split before it, ffmpeg buffers every frame between two stills
        # (1.7 GB for stills 10 s apart, bench/render.py's source).
        if plain:  # generated pictures: the canvas's chosen frames from before its words (a
            # generate job's big key words would sit under the thumbnail's title), kept at the
            # canvas's small size (soft gradients: the thumbnail scales them up)
            g.pictures.append(f"[{PLAIN}]format=yuv420p,setsar=1[stills]")
        else:
            g.pictures.append(f"[{video}]split=2[vs0][vst];[vst]fps=1/{job.still_every:g}:round=near[stills]")
            video = "vs0"
        stills = "stills"
    if job.captions:
        # Fixed names only (the ASS file and its fonts live in the work folder, ffmpeg's cwd).
        g.pictures.append(f"[{video}]ass={job.captions}:fontsdir=.fonts[vcap]")
        video = "vcap"
    return video, stills


_STEREO = "aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo"


LIMIT = 0.708  # -3 dBFS sample peak: true peak stays under -1 dBTP after AAC (tests measure it)


def _normaliser(m: dict[str, float]) -> str:
    """-14 LUFS integrated, true peak under -1 dBTP, from a measurement of the programme.

    Plain gain when it keeps the peaks under the ceiling (speech, commentary); otherwise gain
    and a fast peak limiter. (loudnorm's dynamic mode does this too, but at 192 kHz: in this
    graph it cost ~6% of the render time and doubled ffmpeg's memory, bench/render.py.)
    """
    if m["integrated"] < -69:  # silence, or nearly: nothing to normalise
        return "anull"
    gain = m.get("gain", TARGET_LUFS - m["integrated"])
    if m["true_peak"] + gain <= TARGET_TP:
        return f"volume={gain:.2f}dB"
    return f"volume={gain:.2f}dB,alimiter=limit={LIMIT}:attack=5:release=50:level=0"


def measure_loudness(job: RenderJob, workdir: Path) -> dict[str, float]:
    """Audio-only passes with ebur128 (~5x faster than a loudnorm pass): the programme's
    loudness; when the limiter will act, more passes through gain + limiter find the gain
    that lands on the target (the limiter takes away more the harder it is driven, so one
    correction falls short: a voiced generate job came out at -15 LUFS; a secant search
    gets within 0.2 LU in two or three passes)."""
    args, graphs, labels = _graph(job, audio_only=True)
    graph = graphs[0]

    def measure(g: str) -> dict[str, float]:
        lines: list[str] = []
        run([*args, "-filter_complex", g, "-map", f"[{labels[0]}]", "-f", "null", "-"],
            what="measuring loudness", cwd=workdir, stderr_lines=lines, loglevel="info")
        return parse_ebur128("\n".join(lines))

    m = measure(graph)
    if "alimiter" not in _normaliser(m):
        return m
    m["gain"] = gain_search(lambda g: measure(graph.replace("]ebur128=", f"]{_normaliser({**m, 'gain': g})},ebur128="))
                            ["integrated"], TARGET_LUFS - m["integrated"])
    return m


def gain_search(level_at: Callable[[float], float], gain: float, passes: int = 5, within: float = 0.2) -> float:
    """The gain (dB) whose output `level_at` is TARGET_LUFS, by secant steps from `gain`
    (output level rises with gain, never faster than it: the slope is kept in [0.1, 1])."""
    tried: list[tuple[float, float]] = []
    for _ in range(passes):
        level = level_at(gain)
        tried.append((gain, level))
        if abs(level - TARGET_LUFS) <= within:
            return round(gain, 2)
        slope = 1.0
        if len(tried) > 1:
            (g0, l0), (g1, l1) = tried[-2], tried[-1]
            slope = min(max((l1 - l0) / (g1 - g0), 0.1), 1.0) if g1 != g0 else 1.0
        step = min(gain + (TARGET_LUFS - level) / slope, tried[0][0] + 24)
        if abs(step - gain) < 0.01:  # at the cap: measuring it again would tell nothing new
            break
        gain = step
    return round(min(tried, key=lambda t: abs(t[1] - TARGET_LUFS))[0], 2)


def parse_ebur128(text: str) -> dict[str, float]:
    summary = text[text.rfind("Summary:"):]
    if not summary:
        raise MediaError("measuring loudness", "ebur128 printed no summary")

    def grab(label: str, unit: str, after: str = "") -> float:
        part = summary[summary.find(after):] if after else summary
        m = re.search(rf"{label}:\s*(-?[\d.]+|-inf|inf)\s*{unit}", part)
        if not m:
            raise MediaError("measuring loudness", f"no {label} in the ebur128 summary")
        return -120.0 if "inf" in m.group(1) else float(m.group(1))

    return {"integrated": grab("I", "LUFS"), "threshold": grab("Threshold", "LUFS"),
            "range": grab("LRA", "LU"), "true_peak": grab("Peak", "dBFS", "True peak")}


def render(job: RenderJob, workdir: Path, on_progress: Callable[[float], None] = lambda f: None) -> dict[str, Any]:
    if not job.segments and job.canvas is None:
        raise MediaError("nothing to render", "no segments were chosen")
    loudness = measure_loudness(job, workdir)
    on_progress(0.05)
    args, graphs, labels = _graph(job, loudness=loudness)
    cmd = [*args, *(x for g in graphs for x in ("-filter_complex", g))]
    for j, out in enumerate(job.outputs):
        e = out.encode
        cmd += ["-map", f"[{labels[2 * j]}]", "-map", f"[{labels[2 * j + 1]}]",
                "-c:v", "libx264", "-preset", job.preset, "-crf", str(job.crf), "-profile:v", "high",
                "-pix_fmt", "yuv420p", "-r", str(e.fps), "-g", str(2 * e.fps), "-maxrate", str(e.maxrate),
                "-bufsize", str(e.bufsize), "-c:a", "aac", "-b:a", str(e.audio_bitrate), "-ar", "48000",
                "-ac", "2", "-movflags", "+faststart", "-map_metadata", "-1", "-metadata", "encoder=afx",
                os.fspath(out.path)]
    if job.stills is not None:
        cmd += ["-map", f"[{labels[-1]}]", "-fps_mode", "passthrough", "-c:v", "mjpeg", "-q:v", "3",
                "-pix_fmt", "yuvj420p", "-an",
                "-map_metadata", "-1", os.fspath(job.stills)]
    run(cmd, what="rendering", duration=job.duration, on_progress=lambda f: on_progress(0.05 + 0.95 * f),
        cwd=workdir)
    return {"loudness_in": loudness, "normaliser": _normaliser(loudness).split("=")[0]}
