"""Shared helpers for benchmarks: generated media, timing with peak memory of a process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / ".data"


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def speechlike_clip(path: Path, seconds: int = 60, size: str = "1920x1080", gop: int = 60) -> Path:
    """testsrc2 video; audio: pink noise shaped into syllables and pauses (speech-like
    envelope) over a quiet bed. Generated once and kept in bench/.data."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    audio = (f"anoisesrc=c=pink:a=0.5:d={seconds}:r=48000,"
             "volume='0.15+0.85*gt(sin(2*PI*4*t),0)*gt(sin(2*PI*0.25*t),-0.3)':eval=frame")
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
                    "-f", "lavfi", "-i", audio, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "26",
                    "-g", str(gop), "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-shortest",
                    str(tmp)], check=True)
    os.replace(tmp, path)
    return path


def long_clip(path: Path, minutes: int, base: Path) -> Path:
    """`minutes` of video made by joining copies of `base` without re-encoding."""
    if path.exists():
        return path
    reps = max(1, round(minutes * 60 / 60))
    listing = path.with_suffix(".txt")
    listing.write_text("".join(f"file '{base.name}'\n" for _ in range(reps)))
    tmp = path.with_suffix(".tmp.mp4")
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-c", "copy", str(tmp)], check=True, cwd=base.parent)
    os.replace(tmp, path)
    listing.unlink()
    return path


def _tree_rss_kb(pid: int) -> int:
    total = 0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    except OSError:
        return 0
    return total + sum(_tree_rss_kb(int(c)) for c in children)


def measure(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS of the whole process tree in MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - started
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {err[-2000:]}")
    return wall, peak[0] / 1024


def python() -> str:
    return sys.executable
