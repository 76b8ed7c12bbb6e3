"""Pictures for jobs without footage: compose (backgrounds) and generate (made from nothing).

Both are filtergraph fragments for afx.media.render (a Canvas): no frame-by-frame Python.
Images and text are drawn once with Pillow; ffmpeg animates them (pan, fade, slide, xfade).

- compose: the spec's `render.backgrounds` in order, sharing the duration — stills pan
  slowly (Ken Burns), clips are trimmed or looped — with cross-fades; without backgrounds,
  a generated animated background.
- generate: one scene per sentence of the script, timed by the voice: an animated
  gradient in the tone's palette, drifting light shapes, and the sentence's key word in big
  type sliding in, with a different transition between scenes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from afx.media.ffmpeg import SAFE_INPUT
from afx.media.fonts import font_file
from afx.media.render import PLAIN
from afx.media.title import printable

# (deep base, middle, accent) per tone: dark enough for white type, one colour that pops.
PALETTES = {
    "hype": [("0x0d0221", "0x6a0dad", "0xff2e63"), ("0x10002b", "0x3c096c", "0xff9e00"),
             ("0x03071e", "0x6a040f", "0xf48c06"), ("0x0b132b", "0x1c2541", "0x5bc0be")],
    "calm": [("0x0f2027", "0x203a43", "0x2c5364"), ("0x1d2b3a", "0x425e74", "0x8fa9b8"),
             ("0x2c3e50", "0x4b6584", "0x95a5a6"), ("0x16222a", "0x3a6073", "0x7aa5b5")],
    "educational": [("0x0b1d3a", "0x174a7c", "0x2ec4b6"), ("0x14213d", "0x1f4e79", "0xfca311"),
                    ("0x0d1b2a", "0x1b263b", "0x415a77"), ("0x10263f", "0x1b5e8c", "0x56ccf2")],
    "funny": [("0x240046", "0x7b2cbf", "0xff9e00"), ("0x1a1a2e", "0xe94560", "0xf5d547"),
              ("0x2b2d42", "0x8d99ae", "0xef233c"), ("0x003049", "0xd62828", "0xfcbf49")],
    "dramatic": [("0x000000", "0x2b0000", "0x8b0000"), ("0x050505", "0x1c1c1c", "0x7a6a53"),
                 ("0x0a0a0a", "0x1f1b2e", "0x5e4b6b"), ("0x000000", "0x1a0a00", "0xa04000")],
}
TRANSITIONS = ("fade", "slideup", "circleopen", "wipeleft", "smoothup", "radial", "dissolve", "slideleft")
GRAD = (360, 640)  # gradients are smooth: drawn small, scaled up (1080x1920 directly is 4x slower)
XFADE = 0.5


def palette(tone: str | None, i: int) -> tuple[str, str, str]:
    colours = PALETTES.get((tone or "").lower(), PALETTES["educational"])
    return colours[i % len(colours)]


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def gradient(duration: float, colours: tuple[str, str, str], size: tuple[int, int], fps: int, kind: int = 0) -> str:
    gw, gh = GRAD if size[0] < size[1] else GRAD[::-1]
    c0, c1, c2 = colours
    # base, middle, base, accent: the accent is a glow at one end, not the whole frame
    return (f"gradients=s={gw}x{gh}:c0={c0}:c1={c1}:c2={c0}:c3={c2}:nb_colors=4:x0=0:y0=0:x1={gw}:y1={gh}:"
            f"speed=0.015:duration={duration:.3f}:rate={fps}:type={kind}:seed=1")


def _xfade_chain(labels: list[str], lengths: list[float], out: str, seed: int) -> list[str]:
    """Join clips with cross-fades; lengths include the XFADE overlap (all but the last)."""
    chains = []
    current, elapsed = labels[0], 0.0
    for k in range(1, len(labels)):
        elapsed += lengths[k - 1] - XFADE
        target = out if k == len(labels) - 1 else f"x{k}"
        transition = TRANSITIONS[(seed + k) % len(TRANSITIONS)]
        chains.append(f"[{current}][{labels[k]}]xfade=transition={transition}:duration={XFADE}:"
                      f"offset={elapsed:.3f}[{target}]")
        current = target
    if len(labels) == 1:
        chains.append(f"[{labels[0]}]null[{out}]")
    return chains


def _split(duration: float, n: int) -> list[float]:
    """n parts of the duration, each (but the last) longer by the cross-fade overlap."""
    base = duration / n
    return [base + (XFADE if i < n - 1 else 0.0) for i in range(n)]


@dataclass
class ComposeCanvas:
    duration: float
    backgrounds: Sequence[tuple[Path, str]] = ()  # (path, "image" | "video")
    tone: str | None = None
    workdir: Path | None = None  # for the generated background's light shapes

    def build(self, first: int, fps: int, size: tuple[int, int], plain: bool = False) -> tuple[list[str], list[str]]:
        w, h = size
        frames = int(round(self.duration * fps))
        if not self.backgrounds:  # generated: shifting gradients and light, no words
            n = max(1, round(self.duration / 7))
            scenes = [Scene(round(i * self.duration / n, 3), round((i + 1) * self.duration / n, 3), "")
                      for i in range(n)]
            return GenerateCanvas(self.duration, scenes, self.workdir or Path("."), self.tone,
                                  words=False).build(first, fps, size, plain)
        lengths = _split(self.duration, len(self.backgrounds))
        args: list[str] = []
        chains: list[str] = []
        labels = []
        for i, ((path, kind), length) in enumerate(zip(self.backgrounds, lengths)):
            k = first + i
            n = int(round(length * fps))
            if kind == "image":
                bw, bh = _even(w * 1.12), _even(h * 1.12)
                args += ["-framerate", str(fps), *SAFE_INPUT, "-i", str(path)]  # xfade wants equal rates
                # scale once, repeat the frame, pan a 1080x1920 window across it (Ken Burns)
                x = f"(iw-ow)*t/{length:.3f}" if i % 2 == 0 else f"(iw-ow)*(1-t/{length:.3f})"
                chains.append(f"[{k}:v]scale={bw}:{bh}:force_original_aspect_ratio=increase:flags=bicubic,"
                              f"crop={bw}:{bh},format=yuv420p,loop=loop={n - 1}:size=1:start=0,setpts=N/{fps}/TB,"
                              f"crop={w}:{h}:x='{x}':y='(ih-oh)/2',setsar=1,settb=1/{fps}[b{i}]")
            else:
                args += ["-stream_loop", "-1", *SAFE_INPUT, "-i", str(path)]
                chains.append(f"[{k}:v]setpts=PTS-STARTPTS,fps={fps},scale={w}:{h}:force_original_aspect_ratio="
                              f"increase:flags=bicubic,crop={w}:{h},format=yuv420p,setsar=1,"
                              f"trim=end_frame={n},setpts=PTS-STARTPTS,settb=1/{fps}[b{i}]")
            labels.append(f"b{i}")
        chains += _xfade_chain(labels, lengths, "bx", 0)
        chains.append(f"[bx]trim=end_frame={frames},setpts=PTS-STARTPTS[vc]")
        return args, chains


@dataclass
class Scene:
    start: float
    end: float
    keyword: str


@dataclass
class GenerateCanvas:
    duration: float
    scenes: Sequence[Scene]
    workdir: Path
    tone: str | None = None
    seed: int = 0
    words: bool = True  # the key word of each scene in big type

    def build(self, first: int, fps: int, size: tuple[int, int], plain: bool = False) -> tuple[list[str], list[str]]:
        w, h = size
        frames = int(round(self.duration * fps))
        bounds = [0.0] + [s.start for s in self.scenes[1:]] + [self.duration]
        spans = [max(b - a, XFADE + 0.2) for a, b in zip(bounds, bounds[1:])]
        lengths = [sp + (XFADE if i < len(spans) - 1 else 0.0) for i, sp in enumerate(spans)]
        args: list[str] = []
        chains: list[str] = []
        labels = []
        # The whole background (gradients, cross-fades, light shapes) is made at GRAD size and
        # scaled up once: it is all soft, and 9x fewer pixels made the compose benchmark fit
        # in the video's own length.
        gw, gh = GRAD if w < h else GRAD[::-1]
        for i, length in enumerate(lengths):
            colours = palette(self.tone, self.seed + i)
            args += ["-f", "lavfi", "-i", gradient(length, colours, size, fps, (self.seed + i) % 2)]
            chains.append(f"[{first + i}:v]format=yuv420p,setsar=1,settb=1/{fps}[g{i}]")
            labels.append(f"g{i}")
        chains += _xfade_chain(labels, lengths, "bgs", self.seed)
        n = first + len(lengths)
        # two soft light shapes drifting over everything
        for j, (radius, alpha) in enumerate(((int(gw * 0.42), 60), (int(gw * 0.28), 80))):
            sprite = self.workdir / f".shape{j}.png"
            _orb(sprite, radius, alpha)
            args += [*SAFE_INPUT, "-i", str(sprite)]
            chains.append(f"[{n}:v]format=rgba,loop=loop={frames - 1}:size=1:start=0,setpts=N/{fps}/TB[o{j}]")
            speed, phase = (0.23, 0.0) if j == 0 else (0.31, 2.1)
            cx = f"W*{0.15 + 0.5 * j:.2f}+W*0.18*sin(t*{speed}+{phase})-w/2"
            cy = f"H*{0.25 + 0.4 * j:.2f}+H*0.12*cos(t*{speed * 0.8:.3f}+{phase})-h/2"
            base = "bgs" if j == 0 else "s0"
            chains.append(f"[{base}][o{j}]overlay=x='{cx}':y='{cy}':eof_action=pass[s{j}]")
            n += 1
        scenes = self.scenes if self.words else ()
        if plain and scenes:
            # The pictures without the words as well, for thumbnails: frames from the
            # settled part of each scene (a frame in a transition is all edges or speckle,
            # which a sharpness score loves), split off at the small size.
            picks = sorted({min(int(round(t * fps)), frames - 1) for t in _settled(bounds)})
            pick = "+".join(f"eq(n,{f})" for f in picks)
            chains.append(f"[s1]split=2[s1m][pl];[pl]trim=end_frame={frames},setpts=PTS-STARTPTS,"
                          f"select='{pick}'[{PLAIN}];[s1m]scale={w}:{h}:flags=bicubic,format=yuv420p,setsar=1[bg]")
        else:
            chains.append(f"[s1]scale={w}:{h}:flags=bicubic,format=yuv420p,setsar=1[bg]")
        current = "bg"
        # the key word of each sentence, sliding up into place as the sentence starts
        for i, scene in enumerate(scenes):
            card = self.workdir / f".word{i}.png"
            cw, ch = keyword_card(scene.keyword, w, card)
            show = max(scene.end - scene.start, 0.6)
            cf = int(round(show * fps))
            args += [*SAFE_INPUT, "-i", str(card)]
            out = f"k{i}"
            y0 = int(h * 0.30)
            chains.append(
                f"[{n}:v]format=rgba,loop=loop={cf - 1}:size=1:start=0,setpts=N/{fps}/TB+{scene.start:.3f}/TB,"
                f"fade=t=in:st={scene.start:.3f}:d=0.3:alpha=1,fade=t=out:st={scene.start + show - 0.3:.3f}:d=0.3:"
                f"alpha=1[c{i}];[{current}][c{i}]overlay=x=(W-w)/2:y='{y0}+90*max(0,1-(t-{scene.start:.3f})/0.35)':"
                f"eof_action=pass[{out}]")
            current = out
            n += 1
        chains.append(f"[{current}]trim=end_frame={frames},setpts=PTS-STARTPTS[vc]")
        return args, chains


def _settled(bounds: Sequence[float], every: float = 0.5) -> list[float]:
    """Times in each scene's stretch after its transition in: at least two, at most `every`
    seconds apart (ffmpeg queues the frames between two of them: a long gap costs memory)."""
    out = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        a = a + (XFADE if i else 0.0)
        if b > a:
            n = max(2, math.ceil((b - a) / every))
            out += [a + (b - a) * (k + 0.5) / n for k in range(n)]
    return out


def _orb(path: Path, radius: int, alpha: int) -> None:
    """A soft round light: white, fading to nothing at the edge."""
    from PIL import Image, ImageDraw, ImageFilter

    size = radius * 2
    img = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    ImageDraw.Draw(img).ellipse((size * 0.15, size * 0.15, size * 0.85, size * 0.85), fill=(255, 255, 255, alpha))
    img = img.filter(ImageFilter.GaussianBlur(radius * 0.22))
    img.save(path, compress_level=1)


def keyword_card(word: str, width: int, out: Path) -> tuple[int, int]:
    """The word, upper case, big, white on a coloured underline: a transparent PNG."""
    from PIL import Image, ImageDraw, ImageFont

    text = printable(word).upper() or " "
    size = int(width * 0.2)
    font = ImageFont.truetype(str(font_file("title")), size)
    while font.getlength(text) > width * 0.84 and size > width * 0.07:
        size -= 6
        font = ImageFont.truetype(str(font_file("title")), size)
    ascent, descent = font.getmetrics()
    tw = int(font.getlength(text))
    cw, ch = _even(tw + size * 0.4), _even(ascent + descent + size * 0.45)
    img = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    x, y = (cw - tw) // 2, int(size * 0.08)
    draw.text((x + size * 0.04, y + size * 0.05), text, font=font, fill=(0, 0, 0, 120))  # soft drop shadow
    draw.text((x, y), text, font=font, fill=(255, 255, 255, 255))
    bar_y = y + ascent + descent + int(size * 0.1)
    draw.rounded_rectangle((x, bar_y, x + tw, bar_y + max(6, size // 10)), radius=size // 20, fill=(255, 212, 0, 255))
    img.save(out, compress_level=1)
    return cw, ch


_STOPWORDS = frozenset("""a an the and or but of in on at to for with this that these those is are was were be
watch look every because
been it its it's you your we our they their he she his her i me my so if then than as by from into out up
down just only very really here there what when where who why how all any every some one two three no not
do does did can will would should could have has had get got let's""".split())


def keyword(sentence: str, avoid: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """The word that carries a sentence: its longest word that is not a stop word (names
    count extra), preferring one the video has not shown yet."""
    words = [w.strip("\"'“”‘’.,!?;:()") for w in sentence.split()]
    words = [w for w in words if w and w.lower() not in _STOPWORDS and re.search(r"\w", w)]
    if not words:
        return sentence.split()[0] if sentence.split() else ""
    fresh = [w for w in words if w.lower() not in avoid] or words
    return max(fresh, key=lambda w: (len(w) + (3 if w[:1].isupper() and w is not words[0] else 0),
                                     -fresh.index(w)))


def seed_of(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:6], 16) % 97
