"""Benchmark: the API's job queue, SQLite (afx serve's own workers) beside PostgreSQL
(procrastinate: `afx serve --no-workers` + `afx worker` processes), on loopback.

- 40 short jobs (the cheap pipeline) through the API, all submitted at once: the time until
  every one is done, with 1 and then 2 `afx worker` processes (one job at a time each). On
  a 2-core machine expect ~1x: the point is that the path works; more machines scale it.
- The queue's overhead per job: submitted to an idle worker one at a time, the time from
  the job's row being created to its claim (`started`), SQLite mode next to PostgreSQL's.
- A warm remote-cache `afx run` of a fresh clone as a multiple of the local no-op run
  (bench/cache.py, on a SeaweedFS server).

Exits non-zero only if a job does not complete (the path is broken).

    .venv/bin/python bench/scale.py [--jobs 40] [--probes 10] [--cache-specs 50] [--skip-cache]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.server.serverproc import Server, WorkerProc, wait_for  # noqa: E402

DONE = ("complete", "published", "failed", "cancelled")
BODY = {"entry": "compose", "topic": "Scale bench"}


def through(server: Server, key: str, count: int) -> tuple[float, list[str]]:
    """Submit `count` jobs at once; seconds until all are done, and the ids of those that failed."""
    with server.client(key) as api:
        started = time.monotonic()
        ids = [api.post("/jobs", json=BODY).json()["jobId"] for _ in range(count)]
        ends = {j: wait_for(api, j, DONE, timeout=600)["status"] for j in ids}
        took = time.monotonic() - started
    return took, [j for j, s in ends.items() if s not in ("complete", "published")]


def overhead(server: Server, key: str, database_url: str, probes: int) -> list[float]:
    """Created -> claimed, in ms, of jobs submitted one at a time to an idle worker."""
    from sqlalchemy import select

    from afx.server import db

    ids = []
    with server.client(key) as api:
        for _ in range(probes):
            job = api.post("/jobs", json=BODY).json()["jobId"]
            wait_for(api, job, DONE, timeout=120)
            ids.append(job)
            time.sleep(0.3)  # the worker idle again, waiting on its queue
    engine = db.connect(database_url)
    try:
        with db.read(engine) as conn:
            rows = conn.execute(select(db.jobs.c.created, db.jobs.c.started).where(db.jobs.c.id.in_(ids))).all()
    finally:
        engine.dispose()
    return [(r.started - r.created) * 1000 for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--cache-specs", type=int, default=50, help="jobs of the warm remote-cache run")
    parser.add_argument("--skip-cache", action="store_true", help="leave out the remote-cache run")
    args = parser.parse_args()
    from afx.testing import services

    broken: list[str] = []
    with tempfile.TemporaryDirectory(prefix="afx-bench-scale-") as tmp:
        root = Path(tmp)
        big = ("--max-active", str(args.jobs + args.probes), "--tick", "0.2")
        # SQLite: afx serve runs the jobs itself, one at a time
        with Server(root / "sqlite", "--workers", "1", *big) as srv:
            key = srv.key(credits=10_000)
            sqlite_took, failed = through(srv, key, args.jobs)
            broken += failed
            sqlite_ms = overhead(srv, key, f"sqlite:///{root / 'sqlite' / 'afx.sqlite'}", args.probes)
        try:
            cluster = services.postgres()
            url = cluster.__enter__()
        except services.Unavailable as exc:
            print(f"PostgreSQL unavailable ({exc}): SQLite only")
            print(f"sqlite  {args.jobs} jobs, 1 worker: {sqlite_took:.1f} s; claim overhead p50 "
                  f"{statistics.median(sqlite_ms):.0f} ms")
            return 1 if broken else 0
        try:
            took: dict[int, float] = {}
            pg_ms: list[float] = []
            for n in (1, 2):
                pg = services.new_database(url, f"afx_bench_scale_{n}")
                env = {"AFX_DATABASE_URL": pg}
                data = root / f"pg{n}"
                with Server(data, "--no-workers", *big, env=env) as front:
                    key = front.key(credits=10_000)
                    workers = [WorkerProc(data, "-j", "1", "--tick", "0.2", env=env).start() for _ in range(n)]
                    try:
                        time.sleep(1.0)  # (their start-up is not the queue's)
                        took[n], failed = through(front, key, args.jobs)
                        broken += failed
                        if n == 1:
                            pg_ms = overhead(front, key, pg, args.probes)
                    finally:
                        for w in workers:
                            w.stop()
        finally:
            cluster.__exit__(None, None, None)
    rate = {n: args.jobs / t for n, t in took.items()}
    print(f"sqlite      {args.jobs} jobs, 1 worker:            {sqlite_took:6.1f} s  "
          f"({args.jobs / sqlite_took:.2f} jobs/s)")
    for n in (1, 2):
        print(f"postgresql  {args.jobs} jobs, {n} worker process(es): {took[n]:6.1f} s  ({rate[n]:.2f} jobs/s)")
    print(f"2 workers / 1 worker: {rate[2] / rate[1]:.2f}x (2 cores shared: ~1x expected)")
    print(f"queue overhead, created -> claimed: sqlite p50 {statistics.median(sqlite_ms):.0f} ms "
          f"(max {max(sqlite_ms):.0f}), postgresql p50 {statistics.median(pg_ms):.0f} ms (max {max(pg_ms):.0f}); "
          f"ratio {statistics.median(pg_ms) / max(statistics.median(sqlite_ms), 0.1):.2f}")
    if not args.skip_cache:  # CI at scale: a fresh clone with a warm remote cache (bench/cache.py)
        import cache

        cache.report(cache.measure(args.cache_specs, 1))
    if broken:
        print(f"BROKEN: {len(broken)} job(s) did not complete: {broken[:5]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
