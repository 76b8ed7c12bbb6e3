"""afx publish / approve / schedule / jobs: the publish side, driven by the ledger (issue 6).

- `afx publish JOB...` asks for a publish now (manual jobs, or ahead of schedule) and runs
  the jobs; `afx publish --due` publishes every scheduled job whose time has come. Both
  are idempotent: the ledger never lets a platform get a job twice, and the run lock
  makes concurrent calls (two crons) wait for each other. `afx publish JOB --again`
  posts the job's current video where the platform has an older render of it, once.
- `afx approve JOB...` releases staged jobs (staging: true) and runs them.
- `afx schedule JOB --at TIME` / `--clear` sets or clears the publish time (it wins over
  the spec's scheduledAt; the next `publish --due` or `run` acts on it).
- `afx jobs` lists every job with its stages' state and where it stands per platform.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from afx import times
from afx.cli.env import Environment
from afx.cli.targets import select_jobs as select
from afx.errors import ExitStatus, UsageError

if TYPE_CHECKING:
    from afx.spec.job import Job
    from afx.spec.resolve import Resolution


def _run(env: Environment, jobs: Sequence[Job], result: Resolution, **kw: Any) -> int:
    from afx.cli.commands.run import execute

    return execute(env, result, jobs, **kw)


def publish(env: Environment, targets: Sequence[str], *, due: bool, again: bool = False) -> int:
    from afx.publish.service import PublishService

    if not targets and not due:
        raise UsageError("name the jobs to publish, or use --due for every scheduled job whose time has come")
    if again and (due or not targets):
        raise UsageError("--again needs the jobs named (it makes new posts), and not --due")
    result, jobs = select(targets)
    service = PublishService.for_repo(result.root, result.config)
    if due:
        jobs = service.due(jobs, time.time())
    else:
        service.request([j.name for j in jobs], again=again)
    if not jobs:
        env.info("nothing is due")
        return int(ExitStatus.OK)
    return _run(env, jobs, result)


def approve(env: Environment, targets: Sequence[str]) -> int:
    from afx.publish.service import PublishService

    result, jobs = select(targets)
    PublishService.for_repo(result.root, result.config).approve([j.name for j in jobs])
    for job in jobs:
        if not job.get("staging"):
            env.info(f"{job.name}: not staged (staging is not true); nothing to approve")
    return _run(env, jobs, result)


def schedule(env: Environment, targets: Sequence[str], *, at: str | None, clear: bool) -> int:
    from afx.publish.service import PublishService

    if bool(at) == bool(clear):
        raise UsageError("give --at TIME or --clear")
    value = None
    if at:
        try:
            value = times.rfc3339(at)
        except times.BadTime as exc:
            raise UsageError(f"--at {exc}") from None
    result, jobs = select(targets)
    PublishService.for_repo(result.root, result.config).schedule([j.name for j in jobs], value)
    for job in jobs:
        env.info(f"{job.name}: " + (f"publishes at {value}" if value else "unscheduled"))
    if env.json:
        env.emit_json({"jobs": [j.name for j in jobs], "scheduledAt": value})
    return int(ExitStatus.OK)


def jobs(env: Environment, targets: Sequence[str]) -> int:
    from afx.engine.session import Engine
    from afx.publish.service import PublishService

    result, selected = select(targets)
    engine = Engine(result.root, result.config)
    reports = {r.job: r for r in engine.plan(selected)}
    store = engine.store()
    service = PublishService.for_repo(result.root, result.config, file_digest=store.file_digest)
    rows_out: list[dict[str, Any]] = []
    older: list[str] = []  # a job's name for each of its posts that is of an older version
    now = time.time()
    try:
        standings = {job.name: service.standing(job, now) for job in selected}
    finally:
        store.close()
    for job in selected:
        standing = standings[job.name]
        older.extend(job.name for _ in standing["olderPosts"])
        report = reports[job.name]
        first = next((s for s in report.stages if s.run), None)
        row = {"job": job.name, "entry": job.get("entry"), "built": not report.stale,
               "stale": f"{first.stage}: {first.reason}" if first else "",
               "publishMode": job.get("publishMode"), "scheduledAt": standing["scheduledAt"],
               "platforms": standing["platforms"], "olderPosts": standing["olderPosts"]}
        if report.children or report.promise:  # a job with clips publishes nothing itself: its clips do
            row.update({"platforms": {}, "clips": [c.name for c in report.children] or report.promise})
        if job.parent:
            row["parent"] = job.parent
        rows_out.append(row)
    if env.json:
        env.emit_json({"jobs": rows_out})
        return int(ExitStatus.OK)
    for row in rows_out:
        built = env.style("built", fg="green") if row["built"] else env.style("stale", fg="yellow")
        where = ", ".join(f"{p}: {s}" + (" (an older version)" if p in row["olderPosts"] else "")
                          for p, s in row["platforms"].items()) or "no platforms"
        if "clips" in row:
            clips = row["clips"]
            where = f"→ {len(clips)} clips: {clips[0]} … {clips[-1]}" if isinstance(clips, list) else f"→ {clips}"
        when = f" at {row['scheduledAt']}" if row["scheduledAt"] else ""
        env.out(f"{row['job']:<28} {built:<6} {row['publishMode'] or '':<10}{when}  {where}")
    if older:
        names = " ".join(dict.fromkeys(older))
        env.info(f"an older version of a job is what went out; to post the current one: "
                 f"afx publish {names} --again")
    return int(ExitStatus.OK)
