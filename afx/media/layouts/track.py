"""track: a crop of the frame's shape that follows where the picture moves (the analyze
stage's motion centres), smoothed and speed-limited."""

from __future__ import annotations

from afx.media.layouts.base import Layout, Shot, even, ramps


def chain(shot: Shot) -> str:
    w, h = shot.size
    p = shot.probe
    cw = min(even(p.height * w / h), p.width)
    return f"crop={cw}:{p.height}:x={crop_x(shot, p.width, cw)}:y=0,scale={w}:{h}:flags=bicubic"


def crop_x(shot: Shot, scaled_w: int, out_w: int) -> str:
    """Crop x (in source pixels) as a function of t: the motion centre, smoothed, then held to
    a speed limit of 15% of the width per second."""
    seg = shot.segment
    span = max(scaled_w - out_w, 0)
    pts = [(t - seg.start, x) for t, x in shot.motion_x if seg.start - 2 <= t <= seg.end + 2]
    if not pts:
        return str(span // 2)
    smooth, value = [], pts[0][1]
    for t, x in pts:  # exponential smoothing
        value = 0.6 * value + 0.4 * x
        smooth.append((t, value))
    limited = [smooth[0]]
    for t, x in smooth[1:]:
        pt, px = limited[-1]
        step = 0.15 * max(t - pt, 0.0)
        limited.append((t, min(max(x, px - step), px + step)))
    xs = [(max(t, 0.0), min(max(c * scaled_w - out_w / 2, 0), span)) for t, c in limited]
    return f"'{ramps(xs)}'"


LAYOUT = Layout("crop that follows motion", chain, pans=True)
