"""Benchmark: validate 1,000 generated job specs with afx and with check-jsonschema.

Both are run as commands on the same files, best of N runs each, in the same process of
this script, so the ratio is meaningful on a noisy machine (issue 2: goal afx faster).

    .venv/bin/python bench/validate.py [--specs 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def generate(folder: Path, count: int, seed: int = 7) -> list[Path]:
    rnd = random.Random(seed)
    (folder / "afx.yaml").write_text("version: 1\n")
    games = ["CS2", "Valorant", "Apex", "Fortnite", "League", "Dota 2", "Rocket League"]
    tones = ["hype", "calm", "educational", "funny", "dramatic"]
    paths = []
    for i in range(count):
        entry = rnd.choice(["fetch", "fetch", "compose", "generate"])
        fmt = rnd.choice(["short", "short", "long"])
        lines = [
            "# yaml-language-server: $schema=../schemas/job.schema.json",
            f"name: job-{i:04d}",
            f"entry: {entry}",
            f"topic: Best {rnd.choice(games)} plays of week {rnd.randint(1, 52)}",
            f"tone: {rnd.choice(tones)}",
            f"format: {fmt}",
            f"durationMins: {1 if fmt == 'short' else rnd.randint(2, 10)}",
            f"platforms: [{', '.join(rnd.sample(['tiktok', 'youtube', 'instagram'], rnd.randint(1, 3)))}]",
            f"publishMode: {rnd.choice(['immediate', 'manual'])}",
            f"staging: {rnd.choice(['true', 'false'])}",
        ]
        if entry == "fetch":
            lines.append(f"url: https://clips.twitch.tv/clip-{i}-{rnd.randrange(10**9)}")
        else:
            lines.append("script: >-\n  " + " ".join(rnd.choice(games) for _ in range(40)))
        lines += ["render:", "  layout: " + rnd.choice(["center", "fit", "split"]),
                  "  captions:", "    uppercase: true", f"    size: {rnd.randint(40, 90)}"]
        path = folder / f"job-{i:04d}.yaml"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def best_of(runs: int, cmd: list[str], cwd: Path) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    checker = shutil.which("check-jsonschema", path=str(BIN)) or shutil.which("check-jsonschema")
    if not checker:
        raise SystemExit("check-jsonschema is not installed: make bench installs it (.[bench])")
    with tempfile.TemporaryDirectory(prefix="afx-bench-") as tmp:
        folder = Path(tmp) / "specs"
        folder.mkdir()
        paths = generate(folder, args.specs)
        afx_cmd = [str(BIN / "afx"), "validate", "-q", str(folder)]
        cj_cmd = [checker, "--schemafile", str(ROOT / "schemas" / "job.schema.json"), *map(str, paths)]
        startup = best_of(args.runs, [str(BIN / "afx"), "--version"], folder)
        afx_s = best_of(args.runs, afx_cmd, folder)
        cj_s = best_of(args.runs, cj_cmd, folder)
    n = args.specs
    result = {
        "specs": n,
        "afx_seconds": round(afx_s, 3),
        "afx_specs_per_second": round(n / afx_s),
        "afx_startup_seconds": round(startup, 3),
        "check_jsonschema_seconds": round(cj_s, 3),
        "check_jsonschema_specs_per_second": round(n / cj_s),
        "speedup": round(cj_s / afx_s, 2),
    }
    print(f"validate {n} specs (best of {args.runs}, whole commands incl. start-up):")
    print(f"  afx validate       {afx_s:7.3f} s  {n / afx_s:8.0f} specs/s  (afx --version: {startup:.3f} s)")
    print(f"  check-jsonschema   {cj_s:7.3f} s  {n / cj_s:8.0f} specs/s")
    print(f"  afx is {cj_s / afx_s:.2f}x the speed of check-jsonschema (goal: > 1)")
    print(json.dumps(result))
    return 0 if afx_s < cj_s else 1


if __name__ == "__main__":
    sys.exit(main())
