"""Recordings in containers that seek badly, made seekable: remuxed into Matroska (issue 12).

A render seeks into every segment (`-ss` before `-i`). MP4/MOV and Matroska seek exactly;
FLV (stream downloads), MPEG-TS/PS, AVI and the like often do not: an FLV without a keyframe
index, seeked to 0 s, gave no video frame at all and a third of its audio. Remuxing copies
the streams into Matroska, which is indexed (Cues) and takes any codec; a stream Matroska
cannot hold, or a remux ffmpeg refuses, is transcoded to H.264/AAC instead.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from afx.media.ffmpeg import SOURCE_INPUT, MediaError, run
from afx.media.probe import Probe, probe

SPARE = 256 * 1024 * 1024  # bytes of disk left free beyond the copy


def check_room(folder: Path, needed: int, label: str, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + SPARE:
        raise MediaError(f"{label}: not enough free disk for {what}",
                         f"it needs about {needed / 1e9:.1f} GB and {free / 1e9:.1f} GB are free in {folder}")


def remux(src: Path, dst: Path, info: Probe, label: str,
          on_progress: Callable[[float], None] = lambda f: None) -> str:
    """`src` as Matroska at `dst`: "remuxed" (streams copied) or "transcoded"."""
    check_room(dst.parent, src.stat().st_size, label, "remuxing it into Matroska")
    audio = ["-map", "0:a?"] if info.has_audio else []
    common = [*SOURCE_INPUT, "-fflags", "+genpts", "-i", str(src), "-map", "0:v:0", *audio, "-map_metadata", "-1",
              "-dn", "-sn"]
    try:
        run([*common, "-c", "copy", "-f", "matroska", str(dst)], what=f"remuxing {label}",
            duration=info.duration, on_progress=on_progress)
        probe(dst, label=label)
        return "remuxed"
    except MediaError:
        dst.unlink(missing_ok=True)
    run([*common, "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "192k", "-f", "matroska", str(dst)],
        what=f"transcoding {label}", duration=info.duration, on_progress=on_progress)
    return "transcoded"
