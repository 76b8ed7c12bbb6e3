"""The hook title overlay: text laid out with Pillow into a transparent PNG, inside the safe zone.

The text never reaches an ffmpeg filter string (docs/architecture.md): ffmpeg only overlays the
picture. Pillow measures with the same font it draws with, so wrapping and fitting are exact.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from afx.media.fonts import font_file
from afx.media.profiles import safe_zone


def printable(text: str) -> str:
    """Text the bundled fonts can draw: emoji and other symbols are dropped, space collapsed."""
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ord(ch) >= 0x1F000 or cat in ("So", "Cs", "Co", "Cn") or (cat.startswith("C") and ch not in "\n"):
            continue
        kept.append(ch)
    return " ".join("".join(kept).split())


def wrap(words: list[str], font: object, max_width: int) -> list[str]:
    """Words into lines no wider than max_width in `font` (a word longer than that stands alone)."""
    lines: list[str] = []
    for word in words:
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(trial) <= max_width:  # type: ignore[attr-defined]
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def title_card(text: str, width: int, height: int, out: Path, *, max_lines: int = 3) -> dict:
    """Draw `text` at the top of the safe zone of a width x height frame.

    The PNG holds only the text's box (small to decode and overlay); `x`, `y` in the result
    say where it goes in the frame, `box` is (x0, y0, x1, y1) in frame pixels.
    """
    from PIL import Image, ImageDraw, ImageFont

    text = printable(text)
    x0, y0, x1, _ = safe_zone(width, height)
    pad = int(width * 0.03)
    max_width = (x1 - x0) - 2 * pad
    words = text.split() or [" "]
    size = int(width * 0.09)
    while True:
        font = ImageFont.truetype(str(font_file("title")), size)
        lines = wrap(words, font, max_width)
        if (len(lines) <= max_lines and all(font.getlength(line) <= max_width for line in lines)) \
                or size <= int(width * 0.04):
            break
        size -= 4
    if len(lines) > max_lines:  # still too long at the smallest size: cut with an ellipsis
        lines = lines[:max_lines]
        while lines[-1] and font.getlength(lines[-1] + "…") > max_width:
            lines[-1] = lines[-1][:-1]
        lines[-1] = lines[-1].rstrip() + "…"
    ascent, descent = font.getmetrics()
    line_h = int((ascent + descent) * 1.08)
    block_w = int(max(font.getlength(line) for line in lines))
    block_h = line_h * len(lines)
    top = y0 + int(height * 0.03)
    box = ((width - block_w) // 2 - pad, top - pad // 2, (width + block_w) // 2 + pad, top + block_h + pad // 2)
    bx0, by0 = box[0] - box[0] % 2, box[1] - box[1] % 2
    bw, bh = (box[2] - bx0 + 1) // 2 * 2, (box[3] - by0 + 1) // 2 * 2
    image = Image.new("RGBA", (bw, bh), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((box[0] - bx0, box[1] - by0, box[2] - bx0, box[3] - by0), radius=pad, fill=(0, 0, 0, 170))
    stroke = max(2, size // 24)
    for i, line in enumerate(lines):
        w = font.getlength(line)
        draw.text(((width - w) / 2 - bx0, top + i * line_h - by0), line, font=font, fill=(255, 255, 255, 255),
                  stroke_width=stroke, stroke_fill=(0, 0, 0, 255))
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=False, compress_level=1)
    return {"box": list(box), "x": bx0, "y": by0, "lines": lines, "size": size}
