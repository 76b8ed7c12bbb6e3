"""What a caption style is (Style), the options it is drawn with (CaptionStyle), and the ASS
pieces styles share: colours, timestamps, text made safe for libass, and where lines sit.

Text goes to libass in a file; braces and backslashes, which ASS would read as commands, are
removed, and emoji are dropped (the bundled fonts cannot draw them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from afx.media.title import printable
from afx.media.tts import Word

NAMED = {"white": "#FFFFFF", "black": "#000000", "yellow": "#FFD400", "red": "#FF3B30", "green": "#34C759",
         "blue": "#0A84FF", "orange": "#FF9F0A", "pink": "#FF2D92", "purple": "#BF5AF2", "cyan": "#32ADE6"}

Line = Sequence[Word]  # the words shown together


@dataclass(frozen=True)
class CaptionStyle:
    """render.captions: the options every caption style is drawn with."""

    font: str = "Roboto"
    size: int = 80  # at 1080 px width
    color: str = "#FFFFFF"
    highlight: str = "#FFD400"
    position: str = "bottom"  # a name in PLACES
    uppercase: bool = False
    words_per_line: int = 3
    style: str = "karaoke"  # a name in afx.media.captions.STYLES

    @classmethod
    def from_options(cls, opts: Mapping[str, Any]) -> CaptionStyle:
        return cls(font=opts.get("font", "Roboto"), size=int(opts.get("size", 80)),
                   color=opts.get("color", "#FFFFFF"), highlight=opts.get("highlightColor", "#FFD400"),
                   position=opts.get("position", "bottom"), uppercase=bool(opts.get("uppercase", False)),
                   words_per_line=int(opts.get("wordsPerLine", 3)), style=opts.get("style", "karaoke"))


@dataclass(frozen=True)
class Style:
    """A look for word-level captions; `render.captions.style` names one (STYLES)."""

    summary: str  # a few words for the schema's description of render.captions.style
    events: Callable[[Sequence[Line], CaptionStyle], list[str]]  # the ASS Dialogue lines, style "Caption"


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


def ts(t: float) -> str:
    """An ASS timestamp: h:mm:ss.cc."""
    cs = int(round(max(t, 0.0) * 100))
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


# position -> (ASS alignment, vertical margin) from the safe zone's top and bottom (y0, y1),
# the frame's height and its scale against 1080 px
PLACES: dict[str, Callable[[int, int, int, float], tuple[int, int]]] = {
    "top": lambda y0, y1, height, scale: (8, int(y0 + 0.28 * (y1 - y0))),  # below the title
    "center": lambda y0, y1, height, scale: (5, 0),
    "bottom": lambda y0, y1, height, scale: (2, height - y1 + int(20 * scale)),  # above the platforms' own text
}
