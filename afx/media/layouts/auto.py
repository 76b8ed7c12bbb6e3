"""auto: each shot framed as the edit stage chose (afx.media.framing): a crop whose centre
follows its path, two stacked windows, or the whole picture fitted."""

from __future__ import annotations

from afx.media.layouts.base import Layout, Shot, cover, even, fit_blur, ramps


def chain(shot: Shot) -> str:
    w, h = shot.size
    p = shot.probe
    label = shot.label
    framing = shot.framing or {"mode": "fit"}
    if framing["mode"] == "stack" and len(framing.get("windows", ())) == 2:
        half = even(h / 2)
        parts = []
        for k, (x, y, ww, wh) in enumerate(framing["windows"]):
            cw, ch = min(even(ww * p.width), p.width), min(even(wh * p.height), p.height)
            cx = min(max(int(x * p.width), 0), p.width - cw)
            cy = min(max(int(y * p.height), 0), p.height - ch)
            parts.append(f"[{label}{k}]crop={cw}:{ch}:{cx}:{cy},{cover(w, half if k == 0 else h - half, cw, ch)}"
                         f"[{label}w{k}]")
        return f"split=2[{label}0][{label}1];{';'.join(parts)};[{label}w0][{label}w1]vstack"
    if framing["mode"] != "crop" or not framing.get("path"):
        return fit_blur(w, h, label)
    cw = min(even(p.height * w / h), p.width)
    span = max(p.width - cw, 0)
    xs = [(float(t), min(max(c * p.width - cw / 2, 0.0), span)) for t, c in framing["path"]]
    # (steps under 0.05 px are the camera holding still: left out, the expression stays short)
    return f"crop={cw}:{p.height}:x='{ramps(xs, min_step=0.05)}':y=0,scale={w}:{h}:flags=bicubic"


LAYOUT = Layout("the people in each shot kept whole in frame by a steady virtual camera, two people apart "
                "stacked, no face: the motion followed", chain, frames_faces=True)
