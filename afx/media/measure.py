"""Measurements of finished media: loudness (EBU R128), stream durations, frames.

Used by tests to hold renders to their bars and by the package stage's score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afx.media.ffmpeg import SAFE_INPUT, run
from afx.media.probe import open_media


def loudness(path: Path) -> dict[str, float]:
    """Integrated loudness (LUFS), loudness range (LU) and true peak (dBTP) of the audio."""
    from afx.media.render import parse_ebur128

    lines: list[str] = []
    run([*SAFE_INPUT, "-i", str(path), "-vn", "-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-"],
        what=f"measuring loudness of {path.name}", stderr_lines=lines, loglevel="info")
    return parse_ebur128("\n".join(lines))


def stream_durations(path: Path) -> dict[str, Any]:
    """Durations of the first video and audio streams, from their packets (not the header)."""

    out: dict[str, Any] = {}
    with open_media(path) as c:
        for kind in ("video", "audio"):
            streams = getattr(c.streams, kind)
            if not streams:
                continue
            s = streams[0]
            end = 0.0
            first = None
            for packet in c.demux(s):
                if packet.pts is None:
                    continue
                t0 = float(packet.pts * s.time_base)
                first = t0 if first is None else min(first, t0)
                end = max(end, float((packet.pts + (packet.duration or 0)) * s.time_base))
            out[kind] = round(end - (first or 0.0), 4)
            c.seek(0)
    return out


def frame_at(path: Path, seconds: float, out: Path, width: int | None = None) -> Path:
    """One frame as PNG (to look at, or to test pixels)."""
    scale = ["-vf", f"scale={width}:-2"] if width else []
    run(["-ss", f"{seconds:.3f}", *SAFE_INPUT, "-i", str(path), "-frames:v", "1", *scale, str(out)],
        what=f"extracting a frame of {path.name}")
    return out
