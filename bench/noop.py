"""Benchmark: a fully cached `afx run` over 200 jobs, next to `afx --version` (issue 3).

The specs use a template and variables like a real repo; the stages are afx's real stage
declarations with cheap work (afx.testing.pipeline), so the run measures the engine:
resolving specs, fingerprinting inputs, checking the store and out/, and deciding that
nothing needs doing. Goal: under 0.5 s above start-up.

Then the same repo with the real publish stage (to the outbox, through the ledger): after
an edit to every published job, the run (each job's publish stage checks whether its post
moved to another job) against the same edit without publishing. Goal: under 2x.

Issue 15: with `--specs 10000` the goal is under 1 s above start-up (unchanged specs come
from the resolve cache, up-to-date jobs from the fast path's records); `--skip-edit` leaves
out the publish comparison (two more full builds of the repo).

    .venv/bin/python bench/noop.py [--specs 200] [--runs 5] [--skip-edit]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def generate(root: Path, count: int) -> None:
    (root / "templates").mkdir(parents=True)
    (root / "media").mkdir()
    (root / "afx.yaml").write_text("version: 1\n")
    (root / "templates" / "weekly.yaml").write_text(
        "tone: hype\nplatforms: [tiktok, youtube]\ntopic: 'Best {{ game }} plays, week {{ week }}'\n"
        "render: {layout: split, captions: {uppercase: true}}\n")
    for i in range(count):
        kind = i % 4
        if kind == 0:
            body = f"fromTemplateId: weekly\nurl: https://clips.example/{i}.mp4\nvars: {{game: G{i}, week: {i % 52}}}\n"
        elif kind == 1:
            # (smaller in a big repo: 2,500 uploads of 256 KiB would be 640 MB, twice)
            (root / "media" / f"{i}.mp4").write_bytes(os.urandom(256 * 1024 if count <= 2000 else 16 * 1024))
            body = f"fromTemplateId: weekly\nentry: upload\nfile: media/{i}.mp4\nvars: {{game: U{i}, week: 1}}\n"
        elif kind == 2:
            body = f"entry: compose\ntopic: Tip {i}\nscript: Tip number {i}, explained in one breath.\n"
        else:
            body = f"entry: generate\ntopic: Fact {i}\ntone: calm\nplatforms: [instagram]\n"
        (root / f"job-{i:03d}.yaml").write_text(body)


def timed(cmd: list[str], cwd: Path, env: dict[str, str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        best = min(best, time.perf_counter() - started)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-edit", action="store_true", help="leave out the publish comparison")
    args = parser.parse_args()
    goal = 0.5 if args.specs <= 200 else 1.0
    env = {**os.environ, "AFX_PIPELINE": "afx.testing.pipeline:PIPELINE", "NO_COLOR": "1"}
    env.pop("AFX_CACHE_DIR", None)
    # measure an ordinary installation, which has its bytecode cached (some sandboxes turn that off)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    afx = str(BIN / "afx")
    with tempfile.TemporaryDirectory(prefix="afx-noop-") as tmp:
        root = Path(tmp) / "specs"
        generate(root, args.specs)
        started = time.perf_counter()
        first = subprocess.run([afx, "run", "-q"], cwd=root, env=env, capture_output=True, text=True)
        cold = time.perf_counter() - started
        if first.returncode != 0:
            raise SystemExit(first.stderr)
        version = timed([afx, "--version"], root, env, args.runs)
        noop = timed([afx, "run", "-q"], root, env, args.runs)
        status = timed([afx, "status", "--check", "-q"], root, env, args.runs)
        # a change to the publish copy only (every spec): only package and publish rerun
        for spec in root.glob("job-*.yaml"):
            spec.write_text(spec.read_text() + "copy: {title: New title}\n")
        proc = subprocess.run([afx, "run", "--json"], cwd=root, env=env, capture_output=True, text=True)
        ran = sorted({e["stage"] for e in map(json.loads, proc.stdout.splitlines())
                      if e.get("event") == "stage" and e.get("status") == "done"})
        if args.skip_edit:
            edit_plain = edit_pub = 1.0
        else:
            edit_plain = edited_run(root.parent / "plain", env, "PIPELINE", args.specs)
            edit_pub = edited_run(root.parent / "published", env, "PUBLISHING", args.specs)
    overhead = noop - version
    status_overhead = status - version
    publish_ratio = edit_pub / edit_plain
    print(f"no-op run of {args.specs} cached jobs (best of {args.runs}):")
    print(f"  afx --version          {version:7.3f} s")
    print(f"  afx run (all cached)   {noop:7.3f} s   (+{overhead:.3f} s over start-up; goal < {goal} s)")
    print(f"  afx status --check     {status:7.3f} s   (+{status_overhead:.3f} s over start-up)")
    print(f"  first run (all stages) {cold:7.3f} s")
    print(f"  after a copy-only change, stages that ran: {', '.join(ran)} (expected: package, publish)")
    if not args.skip_edit:
        print(f"  edit of every job, published {edit_pub:7.3f} s vs not published {edit_plain:.3f} s: "
              f"{publish_ratio:.2f}x (goal < 2)")
    met = overhead < goal and status_overhead < goal and ran == ["package", "publish"] and publish_ratio < 2
    print(json.dumps({"specs": args.specs, "version_s": round(version, 3), "noop_s": round(noop, 3),
                      "overhead_s": round(overhead, 3), "status_s": round(status, 3),
                      "status_overhead_s": round(status_overhead, 3), "cold_s": round(cold, 3),
                      "copy_change_reran": ran, "edit_published_s": round(edit_pub, 3),
                      "edit_plain_s": round(edit_plain, 3), "publish_ratio": round(publish_ratio, 2),
                      "goal_met": met}))
    return 0 if met else 1


def edited_run(root: Path, env: dict[str, str], pipeline: str, count: int) -> float:
    """A fresh repo built (and, with the publishing pipeline, published), then every job's
    topic edited: the time of the run after the edit."""
    generate(root, count)
    env = {**env, "AFX_PIPELINE": f"afx.testing.pipeline:{pipeline}"}
    afx = str(BIN / "afx")
    first = subprocess.run([afx, "run", "-q"], cwd=root, env=env, capture_output=True, text=True)
    if first.returncode != 0:
        raise SystemExit(first.stderr[-3000:])
    for spec in root.glob("job-*.yaml"):
        spec.write_text(spec.read_text() + "copy: {title: Edited}\n")
    started = time.perf_counter()
    proc = subprocess.run([afx, "run", "-q"], cwd=root, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return took


if __name__ == "__main__":
    sys.exit(main())
