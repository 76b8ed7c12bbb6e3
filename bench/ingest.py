"""Benchmark: a 2 GB, 30-minute 1080p local recording through `afx run` (issue 12).

A generated 30-minute 1920x1080 30 fps recording at ~9 Mb/s (a minute of testsrc2 with
speech-like sound, joined 30 times without re-encoding, as an OBS MKV and as an MP4) is
uploaded as `file:` and run to the end of render: a 60 s short. Reported: wall time, the
store's growth against the file's size (goal: ingest adds < 10 %: the recording is read in
place), and the peak memory of the process tree.

    .venv/bin/python bench/ingest.py [--minutes 30] [--container mkv|mp4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _util import DATA, ffmpeg, measure

AFX = str(Path(sys.executable).parent / "afx")


def recording(minutes: int, container: str) -> Path:
    base = DATA / "rec-60s-1080p-9mbps.mp4"
    if not base.exists():
        base.parent.mkdir(parents=True, exist_ok=True)
        audio = ("anoisesrc=c=pink:a=0.5:d=60:r=48000,"
                 "volume='0.15+0.85*gt(sin(2*PI*4*t),0)*gt(sin(2*PI*0.25*t),-0.3)':eval=frame")
        subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc2=size=1920x1080:rate=30:duration=60", "-f", "lavfi", "-i", audio,
                        "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "9M", "-g", "60", "-pix_fmt", "yuv420p",
                        "-c:a", "aac", "-b:a", "160k", "-shortest", str(base.with_suffix(".tmp.mp4"))], check=True)
        os.replace(base.with_suffix(".tmp.mp4"), base)
    out = DATA / f"rec-{minutes}min-1080p.{container}"
    if not out.exists():
        listing = DATA / "rec-list.txt"
        listing.write_text("".join(f"file '{base.name}'\n" for _ in range(minutes)))
        subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i",
                        str(listing), "-c", "copy", str(out.with_suffix(f".tmp.{container}"))], check=True,
                       cwd=DATA)
        os.replace(out.with_suffix(f".tmp.{container}"), out)
        listing.unlink()
    return out


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--container", default="mkv", choices=["mkv", "mp4"])
    args = parser.parse_args()
    source = recording(args.minutes, args.container)
    size = source.stat().st_size
    with tempfile.TemporaryDirectory(prefix="afx-ingest-bench-") as tmp:
        repo = Path(tmp)
        (repo / "afx.yaml").write_text("version: 1\n")
        (repo / "media").mkdir()
        os.link(source, repo / "media" / source.name) if _same_fs(source, repo) else shutil.copy(source, repo / "media")
        (repo / "vod.yaml").write_text(f"entry: upload\nfile: media/{source.name}\ntopic: Stream highlights\n"
                                       "platforms: [tiktok]\n")
        wall, peak = measure([AFX, "run", "--until", "render"], cwd=repo)
        store = tree_bytes(repo / ".afx")
        video = repo / "out" / "vod" / "video.mp4"
        result = {"minutes": args.minutes, "container": args.container, "file_mb": round(size / 1e6),
                  "wall_s": round(wall, 1), "store_mb": round(store / 1e6, 1),
                  "store_vs_file": round(store / size, 4), "peak_rss_mb": round(peak),
                  "video_ok": video.is_file() and video.stat().st_size > 0,
                  "goal_met": store < 0.10 * size and video.is_file()}
    print(f"{args.minutes}-minute {args.container} ({result['file_mb']} MB) to a 60 s short: {result['wall_s']} s; "
          f"the store grew {result['store_mb']} MB ({result['store_vs_file'] * 100:.1f} % of the file; goal < 10 %); "
          f"peak RSS {result['peak_rss_mb']} MB")
    print(json.dumps(result))
    return 0 if result["goal_met"] else 1


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    sys.exit(main())
