"""Layouts by name, as `render.layout` names them: how footage fills a short's portrait frame.

Add a layout: a module here that defines `LAYOUT = Layout(summary, chain)` (afx.media.layouts.
base), and its line in LAYOUTS; then `make schemas` (the schema's render.layout enum and
description are made from LAYOUTS, afx/extensions.py).
"""

from __future__ import annotations

from afx.media.layouts import auto, center, fit, split, track
from afx.media.layouts.base import Layout, Shot, landscape

__all__ = ["LAYOUTS", "Layout", "Shot", "reframe"]

LAYOUTS: dict[str, Layout] = {
    "auto": auto.LAYOUT,
    "center": center.LAYOUT,
    "fit": fit.LAYOUT,
    "track": track.LAYOUT,
    "split": split.LAYOUT,
}


def reframe(name: str, shot: Shot) -> str:
    """The filter chain for one shot: a portrait frame by the named layout (a portrait source
    has nothing to pan across: fitted), a landscape one always by `landscape`."""
    w, h = shot.size
    layout = LAYOUTS[name]
    if w <= h and layout.pans and shot.portrait_source:
        return fit.LAYOUT.chain(shot)
    if w < h:
        return layout.chain(shot)
    return landscape(shot)
