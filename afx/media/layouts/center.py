"""center: the middle of the source, cropped to the frame's shape, then scaled."""

from __future__ import annotations

from afx.media.layouts.base import Layout, Shot, cover


def chain(shot: Shot) -> str:
    w, h = shot.size
    return cover(w, h, shot.probe.width, shot.probe.height)


LAYOUT = Layout("crop the middle", chain)
