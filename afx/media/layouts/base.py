"""What a layout is (Layout), what it is given (Shot), and the filter pieces layouts share.

A layout turns one shot, a segment of a source, into the ffmpeg filter chain that fills a
portrait frame (a short) with it. The chain holds only numbers and the shot's own pad labels
(afx.media.render keeps user text out of filtergraphs). A landscape frame (long) is not a
layout's: it is always filled by `landscape`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from afx.media.highlights import Segment
from afx.media.probe import Probe


@dataclass(frozen=True)
class Shot:
    """One segment of one source, and the frame it must fill."""

    size: tuple[int, int]  # the output frame, width x height
    probe: Probe  # the source, as displayed (rotation applied)
    segment: Segment
    label: str  # prefix of the chain's own pad labels ([s0b], [s0f]...): unique in the graph
    motion_x: Sequence[tuple[float, float]] = ()  # (source time, 0-1 across): where the picture moves
    facecam: Sequence[float] | None = None  # [x, y, w, h] as fractions of the source
    framing: Mapping[str, Any] | None = None  # auto: afx.media.framing.Framing.to_dict(), from the edit stage

    @property
    def portrait_source(self) -> bool:
        return self.probe.width / self.probe.height < 1.0


@dataclass(frozen=True)
class Layout:
    """A way of making a portrait frame from footage; `render.layout` names one (LAYOUTS)."""

    summary: str  # a few words for the schema's description of render.layout
    chain: Callable[[Shot], str]  # the filter chain that fills shot.size with the shot
    pans: bool = False  # it moves a crop across a landscape source: a portrait source is fitted instead
    frames_faces: bool = False  # the edit stage frames each shot's faces for it (afx.media.framing)


def even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def cover(w: int, h: int, sw: int, sh: int) -> str:
    """Fill w x h from an sw x sh picture: crop to the target shape first, then scale
    (scaling a 1080p frame up to 3413x1920 and cropping after costs 3x the time)."""
    if sw * h > sh * w:  # wider than the target: keep the height
        cw, ch = even(sh * w / h), sh
    else:
        cw, ch = sw, even(sw * h / w)
    return f"crop={min(cw, sw)}:{min(ch, sh)},scale={w}:{h}:flags=bicubic"


def fit_blur(w: int, h: int, label: str) -> str:
    """Fitted picture over a blurred, darkened copy of itself (blur done small, for speed)."""
    sw, sh = even(w / 4), even(h / 4)
    return (f"split=2[{label}b][{label}f];"
            f"[{label}b]scale={sw}:{sh}:force_original_aspect_ratio=increase,crop={sw}:{sh},"
            f"boxblur=8:2,scale={w}:{h},eq=brightness=-0.12[{label}bg];"
            f"[{label}f]scale={w}:{h}:force_original_aspect_ratio=decrease:flags=bicubic[{label}fg];"
            f"[{label}bg][{label}fg]overlay=(W-w)/2:(H-h)/2")


def ramps(points: Sequence[tuple[float, float]], min_step: float | None = None) -> str:
    """x(t) through `points` (time, x) as a sum of clipped ramps: a flat expression (no
    nesting) that holds numbers only. With `min_step`, steps of at most that many pixels are
    left out."""
    expr = f"{points[0][1]:.1f}"
    for (t0, x0), (t1, x1) in zip(points, points[1:]):
        if t1 > t0 and (min_step is None or abs(x1 - x0) > min_step):
            expr += f"+{(x1 - x0) / (t1 - t0):.4f}*clip(t-{t0:.3f},0,{t1 - t0:.3f})"
    return expr


def landscape(shot: Shot) -> str:
    """A long video's frame: the source scaled when it has the frame's shape, else fitted."""
    w, h = shot.size
    p = shot.probe
    same_shape = abs(p.width / p.height - w / h) < 0.02
    return f"scale={w}:{h}:flags=bicubic" if same_shape else fit_blur(w, h, shot.label)
