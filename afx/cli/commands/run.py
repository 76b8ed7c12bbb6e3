"""afx run / plan / status: run what is stale, or say what would run and why."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from afx.cli.env import Environment
from afx.cli.progress import display
from afx.cli.targets import select_roots as select
from afx.errors import ExitStatus, UsageError

if TYPE_CHECKING:  # imported when a command runs (afx --version must stay quick)
    from afx.engine.runner import RunOptions
    from afx.engine.session import Engine
    from afx.spec.job import Job
    from afx.spec.resolve import Resolution


def _engine(targets: Sequence[str], cache: str | None = None) -> tuple[Engine, list[Job]]:
    from afx.engine.remote import configured
    from afx.engine.session import Engine

    result, jobs = select(targets)
    return Engine(result.root, result.config, cache=configured(result.config, cache, result.root)), jobs


def _options(engine: Engine, force: Sequence[str], until: str | None, verbose: bool = False) -> RunOptions:
    from afx.engine.runner import RunOptions

    names = engine.pipeline.names
    for stage in [*force, *([until] if until else [])]:
        if stage != "*" and stage not in names:
            raise UsageError(f"no stage named {stage!r}", hint="stages: " + ", ".join(names))
    return RunOptions(force=frozenset(force), until=until, verbose=verbose)


def plan(env: Environment, targets: Sequence[str], *, force: Sequence[str] = (), until: str | None = None,
         check: bool = False, brief: bool = False, cache: str | None = None) -> int:
    engine, jobs = _engine(targets, cache)
    reports = engine.plan(jobs, _options(engine, force, until), artifacts=env.json)
    for message in getattr(engine, "warnings", []):
        env.info(f"warning: {message}")
    stale = [r for r in reports if r.stale]
    if env.json:
        from afx.stages.result import choices

        env.emit_json({"stale": len(stale), "jobs": [{**r.to_dict(), **({"choices": c} if (c := choices(r.artifacts))
                                                                           else {})} for r in reports]})
    elif brief:
        for r in reports:
            if not r.stale:  # (a job the fast path found up to date: its stages are not read)
                env.out(f"{r.job:<32} {env.style('up to date', fg='green')}{_fans(r, '  ')}")
                continue
            first = next((s for s in r.stages if s.run), None)
            built = next((s for s in r.stages if s.run and not s.fetch), None)
            fetch = sum(s.fetch for s in r.stages)
            if first and fetch:  # a fresh clone with a warm remote cache: say so, not "needs to run"
                state = env.style("stale", fg="yellow") + f"  {fetch} stage{'s' * (fetch != 1)} in the remote cache" + (
                    f", then {built.stage}: {built.reason}" if built else " (afx run fetches them, builds nothing)")
            elif first:
                state = env.style("stale", fg="yellow") + f"  {first.stage}: {first.reason}"
            elif not r.out_current:
                state = env.style("stale", fg="yellow") + "  out/ needs updating"
            else:
                state = env.style("up to date", fg="green")
            env.out(f"{r.job:<32} {state}{_fans(r, '  ')}")
    else:
        width = max((len(s.stage) for r in reports for s in r.stages), default=8)
        for r in reports:
            env.out(env.style(r.job, bold=True) + _fans(r, ": "))
            for s in r.stages:
                status = env.style(s.status, fg="yellow") if s.run else env.style("up to date", fg="green")
                env.out(f"  {s.stage:<{width}}  {status}{'  ' + s.reason if s.reason else ''}")
            if not any(s.run for s in r.stages) and not r.out_current:
                env.out(f"  {'out':<{width}}  " + env.style("will update", fg="yellow") + f"  out/{r.job}/")
    if not env.json:
        env.info(f"{len(stale)} of {len(reports)} job{'s' * (len(reports) != 1)} stale")
    return int(ExitStatus.STALE if (check and stale) else ExitStatus.OK)


def _fans(report: Any, sep: str) -> str:
    """What a job with clips becomes: `5 clips, after analysis`, or the clip jobs it became."""
    if report.promise:
        return sep + report.promise
    if report.children:
        names = [c.name for c in report.children]
        shown = ", ".join(names) if len(names) <= 3 else f"{names[0]} … {names[-1]}"
        return f"{sep}{len(names)} clip{'s' * (len(names) != 1)} ({shown})"
    return ""


def run(env: Environment, targets: Sequence[str], *, jobs: int, keep_going: bool, force: Sequence[str],
        until: str | None, dry_run: bool, wait: bool, cache: str | None = None, shard: str | None = None) -> int:
    from afx.engine import shards

    part = shards.parse(shard) if shard is not None else None
    if dry_run and part is None:
        return plan(env, targets, force=force, until=until, cache=cache)
    result, selected = select(targets)
    if part is not None:
        selected = shards.pick(selected, *part)
        env.info(f"shard {part[0]}/{part[1]}: {len(selected)} job{'s' * (len(selected) != 1)}")
        if dry_run:
            return plan(env, [j.name for j in selected], force=force, until=until, cache=cache) if selected else 0
    # A shard's afx.lock keeps the other shards' jobs as they were: `afx lock merge` prunes.
    return execute(env, result, selected, jobs=jobs, keep_going=keep_going, force=force, until=until, wait=wait,
                   prune_lock=not targets and part is None, cache=cache)


def execute(env: Environment, result: Resolution, selected: Sequence[Job], *, jobs: int = 1, keep_going: bool = True,
            force: Sequence[str] = (), until: str | None = None, wait: bool = True, prune_lock: bool = False,
            cache: str | None = None) -> int:
    """Run `selected` jobs of a resolved repo, showing progress; the exit status."""
    from afx.engine.remote import configured
    from afx.engine.session import Engine

    engine = Engine(result.root, result.config, cache=configured(result.config, cache, result.root))
    options = _options(engine, force, until, verbose=env.verbosity > 0)
    sink = display(env)
    started = time.perf_counter()
    counts = {"ran": 0, "cached": 0, "fetched": 0}

    def emit(event: dict[str, Any]) -> None:
        if event.get("event") == "stage" and event.get("status") in ("done", "cached"):
            counts["ran" if event["status"] == "done" else "cached"] += 1
            counts["fetched"] += bool(event.get("remote"))
        elif event.get("event") == "uptodate":  # jobs the fast path found up to date, in one
            counts["cached"] += int(event.get("stages", 0))
        sink(event)

    try:
        reports = engine.run(selected, options, parallel=max(jobs, 1), keep_going=keep_going, wait_for_lock=wait,
                             emit=emit, on_wait=lambda msg: sink({"event": "waiting", "message": msg}),
                             prune_lock=prune_lock, each_cached=env.json or env.verbosity > 0)
    finally:
        sink.close()
    failed = [r for r in reports if r.status == "failed"]
    seconds = time.perf_counter() - started
    if env.json:
        sink({"event": "done", "ok": not failed, "ran": counts["ran"], "cached": counts["cached"],
              "fetched": counts["fetched"],
              "failed": [r.job for r in failed], "seconds": round(seconds, 3)})
    else:
        done = sum(r.status in ("complete", "partial") for r in reports)
        summary = (f"{done} job{'s' * (done != 1)} done, {len(failed)} failed: ran {counts['ran']} "
                   f"stage{'s' * (counts['ran'] != 1)}, reused {counts['cached']}"
                   + (f" ({counts['fetched']} fetched from the remote cache)" if counts["fetched"] else "")
                   + f" in {seconds:.2f}s")
        if failed:
            env.error(env.style("afx: ", fg="red", bold=True) + summary)
            for r in failed:
                env.error(f"  {r.job}: {r.error.splitlines()[0] if r.error else 'failed'}")
        else:
            env.info(summary)
    return int(ExitStatus.STAGE_FAILED if failed else ExitStatus.OK)
