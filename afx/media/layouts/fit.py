"""fit: the whole picture, fitted over a blurred, darkened copy of itself."""

from __future__ import annotations

from afx.media.layouts.base import Layout, Shot, fit_blur


def chain(shot: Shot) -> str:
    w, h = shot.size
    return fit_blur(w, h, shot.label)


LAYOUT = Layout("fitted over a blurred copy", chain)
