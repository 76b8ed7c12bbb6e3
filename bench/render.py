"""Benchmark: the render path against one hand-written ffmpeg command and against moviepy 2.

Work: a generated 60 s 1920x1080 30 fps source with speech-like audio -> a 1080x1920 short:
centre crop, scale, hook title for 3 s, loudness normalised to -14 LUFS, H.264 veryfast
crf 23 + AAC, +faststart. Each contender runs as its own process; wall time and the peak
memory of its process tree are measured in this same run (ratios, not absolute times).

- afx: afx.media.render as the render stage calls it (title card, loudness measurement
  pass, one ffmpeg render that also keeps the clean stills the thumbnail is chosen from).
- ffmpeg: one hand-written command doing the same crop/scale/text/loudness/encode (one
  command can only normalise loudness in one pass: loudnorm's dynamic mode).
- moviepy: moviepy 2.2.1 in its own venv (bench/.venv-moviepy: it pins pillow < 12).

Goals (issue 4): afx <= 1.15x hand ffmpeg, >= 4x faster than moviepy.

    .venv/bin/python bench/render.py [--runs 2] [--no-moviepy]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _util import DATA, ROOT, ffmpeg, measure, python, speechlike_clip

TITLE = "Best CS2 plays this week"

AFX_CODE = """
import sys
from pathlib import Path
from afx.media.highlights import Segment
from afx.media.probe import probe
from afx.media.profiles import group, profiles_for
from afx.media.render import Output, RenderJob, Source, render
from afx.media.title import title_card
src, work, title = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
info = probe(src, check_complete=False)
encode = next(iter(group(profiles_for("short", ["tiktok"]), info.duration)))
card = title_card(title, 1080, 1920, work / "title.png")
job = RenderJob([Source(src, info)], [Segment(0, 0.0, info.duration)], [Output(encode, work / "afx.mp4")],
                layout="center", title=work / "title.png", title_xy=(card["x"], card["y"]), title_seconds=3.0,
                stills=work / "stills.mkv")
render(job, work)
"""

MOVIEPY_CODE = """
import sys
from moviepy import CompositeVideoClip, TextClip, VideoFileClip
src, out, title, font = sys.argv[1:5]
clip = VideoFileClip(src)
w, h = clip.size
cw = int(h * 9 / 16) // 2 * 2
base = clip.cropped(x_center=w / 2, width=cw, height=h).resized((1080, 1920))
text = TextClip(font=font, text=title, font_size=90, color="white", stroke_color="black", stroke_width=4,
                size=(900, None), method="caption").with_duration(3).with_position(("center", 300))
CompositeVideoClip([base, text]).write_videofile(out, codec="libx264", preset="veryfast", audio_codec="aac",
    audio_fps=48000, audio_bitrate="192k", ffmpeg_params=["-crf", "23", "-movflags", "+faststart"],
    temp_audiofile=out + ".m4a", threads=2, logger=None)
"""


def moviepy_python() -> str | None:
    venv = ROOT / "bench" / ".venv-moviepy"
    exe = venv / "bin" / "python"
    if not exe.exists():
        print("setting up bench/.venv-moviepy (moviepy 2.2.1) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        proc = subprocess.run([str(exe), "-m", "pip", "install", "-q", "moviepy==2.2.1", "imageio-ffmpeg"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"moviepy could not be installed: {proc.stderr[-500:]}", file=sys.stderr)
            return None
    return str(exe)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-moviepy", action="store_true")
    args = parser.parse_args()
    from afx.media.fonts import font_file

    src = speechlike_clip(DATA / "src-60s-1080p.mp4")
    font = str(font_file("title"))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="afx-bench-render-") as tmp:
        work = Path(tmp)
        (work / "title.txt").write_text(TITLE)
        hand = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-vf",
                f"crop=ih*9/16:ih,scale=1080:1920,drawtext=fontfile={font}:textfile=title.txt:fontsize=90:"
                "fontcolor=white:borderw=4:bordercolor=black:box=1:boxcolor=black@0.6:boxborderw=30:"
                "x=(w-tw)/2:y=320:enable='lt(t,3)'",
                "-af", "loudnorm=I=-14:TP=-1.5:LRA=11,aresample=48000",
                # the same encoder settings as the platform profile afx uses (VBV ceiling, GOP)
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-profile:v", "high", "-g", "60",
                "-maxrate", "10000000", "-bufsize", "20000000", "-c:a", "aac", "-b:a", "192k",
                "-movflags", "+faststart", "hand.mp4"]
        contenders = {
            "ffmpeg": (hand, {}),
            "afx": ([python(), "-c", AFX_CODE, str(src), str(work), TITLE], {}),
        }
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        for _ in range(args.runs):  # interleaved, so a noisy minute hurts both alike
            for name, (cmd, _) in contenders.items():
                runs[name].append(measure(cmd, cwd=work))
        for name, rs in runs.items():
            results[name] = {"wall_s": round(min(r[0] for r in rs), 2), "peak_mb": round(max(r[1] for r in rs))}
        if not args.no_moviepy:
            mp = moviepy_python()
            if mp:
                env = {**os.environ, "IMAGEIO_FFMPEG_EXE": ffmpeg()}
                wall, peak = measure([mp, "-c", MOVIEPY_CODE, str(src), str(work / "moviepy.mp4"), TITLE, font],
                                     cwd=work, env=env)
                results["moviepy"] = {"wall_s": round(wall, 2), "peak_mb": round(peak)}
    afx, hand_s = results["afx"]["wall_s"], results["ffmpeg"]["wall_s"]
    print(f"render 60 s 1920x1080 -> 1080x1920 short (best of {args.runs}; moviepy once):")
    for name, r in results.items():
        print(f"  {name:<8} {r['wall_s']:7.2f} s   peak {r['peak_mb']:5.0f} MB")
    ratio = afx / hand_s
    print(f"  afx / hand ffmpeg = {ratio:.2f} (goal <= 1.15)")
    summary = {"afx_over_ffmpeg": round(ratio, 3), **{f"{k}_{m}": v for k, r in results.items() for m, v in r.items()}}
    ok = ratio <= 1.15
    if "moviepy" in results:
        speedup = results["moviepy"]["wall_s"] / afx
        print(f"  moviepy / afx = {speedup:.1f}x (goal >= 4)")
        summary["moviepy_over_afx"] = round(speedup, 2)
        ok = ok and speedup >= 4
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
