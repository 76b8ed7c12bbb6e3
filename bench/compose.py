"""Benchmark: a whole 45 s compose short, against its own length and a plain ffmpeg encode.

The job (script -> piper voice -> generated background, title, karaoke captions, loudness
-> 1080x1920 H.264) runs through `afx run`, start-up included. Baselines in the same run:
the video's duration (goal: the whole job takes less than the video lasts, on 2 cores) and
a plain ffmpeg encode of the same length: a lavfi gradient scaled to 1080x1920 with the
same encoder settings (what the encode alone costs).

    .venv/bin/python bench/compose.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from _util import ffmpeg, measure

SCRIPT = ("Three changes you need to know before tonight's matches. First, the smoke grenade lasts two "
          "seconds less, so your executes need to be faster, and your timing has to be perfect. Second, the "
          "rifle price dropped by one hundred, which makes force buys stronger than ever before. Third, the "
          "new map pool rotates out Vertigo and brings back a classic that veterans will love. Practice the "
          "new lineups before you queue, and watch the pros this weekend to see what actually works. "
          "One more thing: the economy changes mean your team should talk about buys before every round, "
          "not after. Save this video, share it with your squad, and test one change at a time, so you "
          "know what really made the difference. Follow for the full breakdown every week.")


def main() -> int:
    afx = str(Path(sys.executable).parent / "afx")
    with tempfile.TemporaryDirectory(prefix="afx-bench-compose-") as tmp:
        root = Path(tmp) / "specs"
        root.mkdir()
        (root / "afx.yaml").write_text("version: 1\n")
        (root / "patch.yaml").write_text(f"entry: compose\ntopic: Patch notes, explained\ntone: educational\n"
                                         f"script: \"{SCRIPT}\"\n")
        env = {**os.environ, "NO_COLOR": "1"}
        env.pop("AFX_PIPELINE", None)
        wall, peak = measure([afx, "run", "--until", "render", "-q"], cwd=root, env=env)
        from afx.media.probe import probe

        seconds = probe(root / "out" / "patch" / "video.mp4").duration
        plain, plain_peak = measure([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                                     f"gradients=s=360x640:c0=0x0b1d3a:c1=0x174a7c:duration={seconds}:rate=30:"
                                     "speed=0.015:seed=1", "-f", "lavfi", "-i", f"sine=f=220:r=48000:d={seconds}",
                                     "-vf", "scale=1080:1920:flags=bicubic",
                                     "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
                                     "-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart", "plain.mp4"], cwd=root)
    ratio = wall / seconds
    print(f"compose short of {seconds:.1f} s (script, voice, background, captions, encode):")
    print(f"  afx run            {wall:6.2f} s  peak {peak:4.0f} MB  = {ratio:.2f}x the video's length (goal < 1)")
    print(f"  plain ffmpeg encode {plain:5.2f} s  peak {plain_peak:4.0f} MB  (afx = {wall / plain:.2f}x of it)")
    print(json.dumps({"video_s": round(seconds, 2), "afx_s": round(wall, 2), "x_video_length": round(ratio, 3),
                      "plain_encode_s": round(plain, 2), "afx_over_plain": round(wall / plain, 2),
                      "peak_mb": round(peak), "goal_met": ratio < 1}))
    return 0 if ratio < 1 else 1


if __name__ == "__main__":
    sys.exit(main())
