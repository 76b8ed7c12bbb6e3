"""Word-level captions: ASS with the spoken word highlighted, plus SRT and WebVTT sidecars.

A few words per line; each word gets its own ASS event showing the whole line with that word
in the highlight colour (the karaoke look of short-form video). Lines sit inside the
platform safe zone. Text goes to libass in a file; braces and backslashes, which ASS would
read as commands, are removed, and emoji are dropped (the bundled fonts cannot draw them).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from afx.media.fonts import font_file
from afx.media.profiles import safe_zone
from afx.media.title import printable
from afx.media.tts import Word

NAMED = {"white": "#FFFFFF", "black": "#000000", "yellow": "#FFD400", "red": "#FF3B30", "green": "#34C759",
         "blue": "#0A84FF", "orange": "#FF9F0A", "pink": "#FF2D92", "purple": "#BF5AF2", "cyan": "#32ADE6"}


@dataclass(frozen=True)
class CaptionStyle:
    font: str = "Roboto"
    size: int = 80  # at 1080 px width
    color: str = "#FFFFFF"
    highlight: str = "#FFD400"
    position: str = "bottom"  # top | center | bottom
    uppercase: bool = False
    words_per_line: int = 3

    @classmethod
    def from_options(cls, opts: dict) -> CaptionStyle:
        return cls(font=opts.get("font", "Roboto"), size=int(opts.get("size", 80)),
                   color=opts.get("color", "#FFFFFF"), highlight=opts.get("highlightColor", "#FFD400"),
                   position=opts.get("position", "bottom"), uppercase=bool(opts.get("uppercase", False)),
                   words_per_line=int(opts.get("wordsPerLine", 3)))


def ass_colour(value: str, alpha: int = 0) -> str:
    """#RRGGBB[AA] or a colour name -> &HAABBGGRR."""
    value = NAMED.get(value.lower(), value) if not value.startswith("#") else value
    if not re.fullmatch(r"#[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?", value):
        value = "#FFFFFF"
    r, g, b = value[1:3], value[3:5], value[5:7]
    a = f"{255 - int(value[7:9], 16):02X}" if len(value) == 9 else f"{alpha:02X}"
    return f"&H{a}{b}{g}{r}".upper()


def override_colour(value: str) -> str:
    """A colour for an inline \\c tag: &HBBGGRR& (no alpha)."""
    return f"&H{ass_colour(value)[4:]}&"


def clean(text: str, uppercase: bool = False) -> str:
    text = printable(text).replace("{", "(").replace("}", ")").replace("\\", "/")
    return text.upper() if uppercase else text


def group_lines(words: Sequence[Word], per_line: int, max_gap: float = 0.7) -> list[list[Word]]:
    """Consecutive words, at most `per_line` to a line; a pause or a sentence end starts a new one."""
    lines: list[list[Word]] = []
    for w in words:
        if not clean(w.text).strip():
            continue
        if lines and len(lines[-1]) < per_line and w.start - lines[-1][-1].end <= max_gap \
                and not lines[-1][-1].text.rstrip().endswith((".", "!", "?")):
            lines[-1].append(w)
        else:
            lines.append([w])
    return lines


def _ts(t: float) -> str:
    cs = int(round(max(t, 0.0) * 100))
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def to_ass(lines: Sequence[Sequence[Word]], style: CaptionStyle, width: int, height: int) -> str:
    x0, y0, x1, y1 = safe_zone(width, height)
    scale = width / 1080
    size = int(style.size * scale)
    if style.position == "top":
        align, margin_v = 8, int(y0 + 0.28 * (y1 - y0))
    elif style.position == "center":
        align, margin_v = 5, 0
    else:
        align, margin_v = 2, height - y1 + int(20 * scale)
    primary, hi = ass_colour(style.color), ass_colour(style.highlight)
    tag_primary, tag_hi = override_colour(style.color), override_colour(style.highlight)
    head = (
        "[Script Info]\nScriptType: v4.00+\nWrapStyle: 0\nScaledBorderAndShadow: yes\n"
        f"PlayResX: {width}\nPlayResY: {height}\n\n[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
        "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, "
        "MarginL, MarginR, MarginV, Encoding\n"
        f"Style: Caption,{clean(style.font)},{size},{primary},{hi},&H00000000,&H80000000,-1,0,0,0,100,100,0,0,1,"
        f"{max(2, size // 14)},{max(1, size // 30)},{align},{x0 + int(20 * scale)},{width - x1 + int(20 * scale)},"
        f"{margin_v},1\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
    )
    events = []
    for n, line in enumerate(lines):
        texts = [clean(w.text, style.uppercase) for w in line]
        next_start = lines[n + 1][0].start if n + 1 < len(lines) else float("inf")
        for i, w in enumerate(line):
            start = w.start
            # a line stays up a moment after its last word, but never over the next line
            end = line[i + 1].start if i + 1 < len(line) else min(w.end + 0.15, next_start)
            if end <= start:
                continue
            parts = [f"{{\\c{tag_hi}}}{t}{{\\c{tag_primary}}}" if j == i else t for j, t in enumerate(texts)]
            events.append(f"Dialogue: 0,{_ts(start)},{_ts(end)},Caption,,0,0,0,,{' '.join(parts)}")
    return head + "\n".join(events) + "\n"


def _cues(lines: Sequence[Sequence[Word]], uppercase: bool) -> list[tuple[float, float, str]]:
    out = []
    for line in lines:
        text = " ".join(clean(w.text, uppercase) for w in line).strip()
        if text:
            out.append((line[0].start, line[-1].end + 0.15, text))
    # a cue must not run into the next one
    return [(s, min(e, out[i + 1][0]) if i + 1 < len(out) else e, t) for i, (s, e, t) in enumerate(out)]


def _srt_ts(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def to_srt(lines: Sequence[Sequence[Word]], uppercase: bool = False) -> str:
    return "".join(f"{i}\n{_srt_ts(s)} --> {_srt_ts(e)}\n{t}\n\n"
                   for i, (s, e, t) in enumerate(_cues(lines, uppercase), 1))


def to_vtt(lines: Sequence[Sequence[Word]], uppercase: bool = False) -> str:
    body = "".join(f"{_srt_ts(s).replace(',', '.')} --> {_srt_ts(e).replace(',', '.')}\n{t}\n\n"
                   for s, e, t in _cues(lines, uppercase))
    return "WEBVTT\n\n" + body


def font_dir(workdir: Path) -> Path:
    """The bundled fonts, copied next to the ASS file so the filter names only `.fonts`."""
    folder = workdir / ".fonts"
    folder.mkdir(exist_ok=True)
    for role in ("bold", "regular", "title"):
        src = font_file(role)
        target = folder / src.name
        if not target.exists():
            shutil.copyfile(src, target)
    return folder
