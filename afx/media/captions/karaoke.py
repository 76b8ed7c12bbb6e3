"""karaoke: a few words to a line, the whole line shown while it is spoken and the word being
spoken in the highlight colour (the look of short-form video): one ASS event per word."""

from __future__ import annotations

from collections.abc import Sequence

from afx.media.captions.base import CaptionStyle, Line, Style, clean, override_colour, ts


def events(lines: Sequence[Line], style: CaptionStyle) -> list[str]:
    tag_primary, tag_hi = override_colour(style.color), override_colour(style.highlight)
    out = []
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
            out.append(f"Dialogue: 0,{ts(start)},{ts(end)},Caption,,0,0,0,,{' '.join(parts)}")
    return out


STYLE = Style("the line shown whole, the spoken word in the highlight colour", events)
