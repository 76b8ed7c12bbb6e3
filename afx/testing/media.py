"""Generated media for tests, benchmarks and the demo: ffmpeg lavfi sources, nothing committed.

    python -m afx.testing.media specs/media/ace-round.mp4 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def make_clip(path: str | os.PathLike[str], *, seconds: float = 10.0, width: int = 1920, height: int = 1080,
              fps: int = 30, audio: bool = True, tone_hz: int = 440) -> Path:
    """An H.264/AAC MP4 with moving test pattern and a tone; written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=48000:duration={seconds}"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "96k", "-shortest"]
    cmd += ["-movflags", "+faststart", str(tmp)]
    try:
        subprocess.run(cmd, check=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--if-missing", action="store_true", help="do nothing when the file exists")
    args = parser.parse_args(argv)
    if args.if_missing and Path(args.path).exists():
        return 0
    w, h = (int(x) for x in args.size.split("x"))
    make_clip(args.path, seconds=args.seconds, width=w, height=h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
