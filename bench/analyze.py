"""Benchmark: analysis of a 10-minute 1920x1080 30 fps source, as a multiple of real time.

Energy, scene cuts, motion, facecam search and the highlight choice for a 60 s short, run
as one process (start-up included). Goal (issue 4): >= 30x real time on 2 cores, so a
one-hour VOD is analysed in under two minutes. The source has a keyframe every 2 s, like a
stream recording (more keyframes than x264's default: the harder case for afx).

    .venv/bin/python bench/analyze.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import sys

from _util import DATA, long_clip, measure, python, speechlike_clip

CODE = """
import sys
from pathlib import Path
from afx.media.probe import probe
from afx.media.analysis import analyse
from afx.media.highlights import select
p = Path(sys.argv[1])
info = probe(p)
a = analyse(p, info.duration, info.has_audio)
segs = select([a], 60.0)
print(len(a.keyframes), len(a.cuts), len(segs), info.duration)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    args = parser.parse_args()
    base = speechlike_clip(DATA / "src-60s-1080p.mp4")
    source = long_clip(DATA / f"src-{args.minutes}min-1080p.mp4", args.minutes, base)
    wall, peak = measure([python(), "-c", CODE, str(source)])
    seconds = args.minutes * 60
    ratio = seconds / wall
    print(f"analysis of {args.minutes} min 1920x1080: {wall:.2f} s wall, peak {peak:.0f} MB")
    print(f"  {ratio:.1f}x real time (goal >= 30x); a 1-hour VOD would take ~{3600 / ratio:.0f} s")
    print(json.dumps({"minutes": args.minutes, "wall_s": round(wall, 2), "x_realtime": round(ratio, 1),
                      "peak_mb": round(peak), "goal_met": ratio >= 30}))
    return 0 if ratio >= 30 else 1


if __name__ == "__main__":
    sys.exit(main())
