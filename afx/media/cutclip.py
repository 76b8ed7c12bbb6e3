"""One clip of a recording, cut frame-accurately into a file of its own (issue 14).

`afx push` to an API without `clips` makes each clip a job with clips became here, and
uploads it as a file of its own. A stream copy (`-c copy`) can only start a clip on a
keyframe, which in a stream recording comes every 2 to 10 s: the clip would start seconds
early (or, cut after the keyframe, open on frames nothing can decode), and a clip's start
is chosen to the frame (on its set-up, before a sentence). So the clip is re-encoded:
H.264/AAC at CRF 18, fast, as good as the source to the eye (the API renders from it again),
a few seconds' work for a clip of a minute. The seek is ffmpeg's input seek (`-ss` before
`-i`), exact when transcoding: it decodes from the keyframe before and drops what comes
before `start`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from afx.media.ffmpeg import SOURCE_INPUT, MediaError, run
from afx.media.probe import probe

VERSION = "1"  # what a cut is made with: a new one makes new files (their name holds it)
SLACK = 0.5  # seconds a cut may end past the end of the source (rounding of durations)


def cut(src: Path, start: float, end: float, dst: Path, *, label: str,
        on_progress: Callable[[float], None] = lambda f: None) -> Path:
    """`src` from `start` to `end` (seconds) as an MP4 at `dst`, written atomically."""
    info = probe(src, label=label)
    if not 0 <= start < end:
        raise MediaError(f"{label}: cannot cut {start:g}-{end:g} s", "a clip starts at 0 s or later and ends after it")
    if start >= info.duration or end > info.duration + SLACK:
        raise MediaError(f"{label}: cannot cut {start:g}-{end:g} s", f"the recording is {info.duration:.1f} s long")
    end = min(end, info.duration)
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(f".{dst.name}.part")
    audio = ["-map", "0:a:0?", "-c:a", "aac", "-b:a", "192k"] if info.has_audio else []
    try:
        run([*SOURCE_INPUT, "-ss", f"{start:.3f}", "-i", str(src), "-t", f"{end - start:.3f}", "-map", "0:v:0",
             *audio, "-map_metadata", "-1", "-dn", "-sn", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
             "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(part)],
            what=f"cutting {start:g}-{end:g} s of {label}", duration=end - start, on_progress=on_progress)
        os.replace(part, dst)
    finally:
        part.unlink(missing_ok=True)
    return dst
