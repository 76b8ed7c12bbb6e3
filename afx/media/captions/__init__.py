"""Word-level captions: ASS in a caption style (STYLES), plus SRT and WebVTT sidecars.

A few words to a line (a pause or a sentence end starts a new one); lines sit inside the
platform safe zone, at `position` (PLACES). How a line's words are shown is the style's
(afx.media.captions.karaoke: the spoken word highlighted).

Add a caption style: a module here that defines `STYLE = Style(summary, events)` (afx.media.
captions.base), and its line in STYLES; then `make schemas` (the schema's
render.captions.style enum is made from STYLES, afx/extensions.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from afx.media.captions import karaoke
from afx.media.captions.base import PLACES, CaptionStyle, Line, Style, ass_colour, clean, override_colour
from afx.media.fonts import font_file
from afx.media.profiles import safe_zone
from afx.media.tts import Word

__all__ = ["PLACES", "STYLES", "CaptionStyle", "Style", "ass_colour", "clean", "font_dir", "group_lines",
           "override_colour", "to_ass", "to_srt", "to_vtt"]

STYLES: dict[str, Style] = {
    "karaoke": karaoke.STYLE,
}


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


def to_ass(lines: Sequence[Line], style: CaptionStyle, width: int, height: int) -> str:
    x0, y0, x1, y1 = safe_zone(width, height)
    scale = width / 1080
    size = int(style.size * scale)
    align, margin_v = PLACES[style.position](y0, y1, height, scale)
    primary, hi = ass_colour(style.color), ass_colour(style.highlight)
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
    return head + "\n".join(STYLES[style.style].events(lines, style)) + "\n"


def _cues(lines: Sequence[Line], uppercase: bool) -> list[tuple[float, float, str]]:
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


def to_srt(lines: Sequence[Line], uppercase: bool = False) -> str:
    return "".join(f"{i}\n{_srt_ts(s)} --> {_srt_ts(e)}\n{t}\n\n"
                   for i, (s, e, t) in enumerate(_cues(lines, uppercase), 1))


def to_vtt(lines: Sequence[Line], uppercase: bool = False) -> str:
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
