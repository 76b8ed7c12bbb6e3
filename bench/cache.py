"""Benchmark: a warm remote-cache `afx run` of a fresh clone, as a multiple of the local no-op run (issue 15).

A repo of --specs jobs (the cheap pipeline: afx's real stage declarations, cheap work) is run
once with `--cache s3://...` on a SeaweedFS server on loopback (afx/testing/services.py),
filling the remote cache; then a fresh clone at the same path (no .afx/, no out/) runs
with the same cache, fetching every stage; then that clone's local no-op run. Printed: the
ratio fetch run / no-op run (a ratio to watch, not a timed assertion).

    .venv/bin/python bench/cache.py [--specs 50] [-j 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noop import generate  # noqa: E402  (bench/ is the script.s folder: on sys.path)

from afx.testing import services  # noqa: E402

AFX = str(Path(sys.executable).parent / "afx")


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    proc = subprocess.run([AFX, *args], cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"afx {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return took, [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def measure(specs: int, jobs: int) -> dict[str, Any]:
    """A cold run filling the remote cache, a fresh clone's warm run, the local no-op run."""
    with services.s3() as server, tempfile.TemporaryDirectory(prefix="afx-cache-") as tmp:
        server.make_bucket("afx-bench")
        url = "s3://afx-bench/repo"
        env = {**os.environ, **server.env, "AFX_PIPELINE": "afx.testing.pipeline:PIPELINE", "NO_COLOR": "1"}
        env.pop("AFX_CACHE_DIR", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        root = Path(tmp) / "specs"
        generate(root, specs)
        cold, _ = timed(["run", "-q", "-j", str(jobs), "--cache", url], root, env)
        shutil.rmtree(root / ".afx")
        shutil.rmtree(root / "out")
        warm, events = timed(["run", "--json", "-j", str(jobs), "--cache", url], root, env)
        noop = min(timed(["run", "-q"], root, env)[0] for _ in range(3))
    done = events[-1]
    return {"specs": specs, "jobs": jobs, "cold_s": round(cold, 3), "warm_remote_s": round(warm, 3),
            "noop_s": round(noop, 3), "ratio": round(warm / noop, 2), "fetched": done.get("fetched"),
            "ran": done.get("ran")}


def report(m: dict[str, Any]) -> None:
    print(f"{m['specs']} jobs, cheap pipeline, remote cache on SeaweedFS (loopback), -j {m['jobs']}:")
    print(f"  first run, filling the cache     {m['cold_s']:7.3f} s")
    print(f"  fresh clone, warm remote cache   {m['warm_remote_s']:7.3f} s   ({m['fetched']} stages fetched, "
          f"{m['ran']} run: publish, never shared)")
    print(f"  local no-op run                  {m['noop_s']:7.3f} s")
    print(f"  warm remote / local no-op        {m['ratio']:7.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=50)
    parser.add_argument("-j", "--jobs", type=int, default=1)
    args = parser.parse_args()
    m = measure(args.specs, args.jobs)
    report(m)
    print(json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
