"""split: the facecam (render.facecam, else the one the analyze stage found) on the top third,
the gameplay below; without a facecam, the whole picture fitted (as `fit`)."""

from __future__ import annotations

from afx.media.layouts.base import Layout, Shot, cover, even, fit_blur

FACECAM_SHARE = 1 / 3  # of the height


def chain(shot: Shot) -> str:
    w, h = shot.size
    p = shot.probe
    label = shot.label
    if not shot.facecam:
        return fit_blur(w, h, label)
    fx, fy, fw, fh = shot.facecam
    top_h = even(h * FACECAM_SHARE)
    cw, ch = even(fw * p.width), even(fh * p.height)
    cam = f"crop={cw}:{ch}:{int(fx * p.width)}:{int(fy * p.height)}"
    return (f"split=2[{label}c][{label}g];[{label}c]{cam},{cover(w, top_h, cw, ch)}[{label}top];"
            f"[{label}g]{cover(w, h - top_h, p.width, p.height)}[{label}bot];[{label}top][{label}bot]vstack")


LAYOUT = Layout("facecam on top, gameplay below", chain, pans=True)
