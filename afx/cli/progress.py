"""How a run looks: a live display on a terminal, plain lines otherwise, JSON lines for machines."""

from __future__ import annotations

import json
import time
from typing import Any

from afx.cli.env import Environment


class JsonLines:
    """--json: one event per line on stdout, flushed as it happens."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    def __call__(self, event: dict[str, Any]) -> None:
        self.env.stdout.write(json.dumps({"t": round(time.time(), 3), **event}, default=str) + "\n")
        self.env.stdout.flush()

    def close(self) -> None:
        pass


class Plain:
    """Not a terminal (CI logs, cron mail): one line per stage that runs, fails or finishes."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    def __call__(self, event: dict[str, Any]) -> None:
        env, kind = self.env, event.get("event")
        job, stage = event.get("job", ""), event.get("stage", "")
        if kind == "stage":
            status = event.get("status")
            if status == "running":
                env.info(f"{job}: {stage}: running ({event.get('reason', '')})")
            elif status == "done":
                env.info(f"{job}: {stage}: done in {event.get('seconds', 0):.2f}s")
            elif status == "failed":
                env.error(f"{job}: {stage}: " + env.style("FAILED", fg="red", bold=True) +
                          f": {_after_stage(event.get('error', ''), stage)}")
            elif status == "cached" and event.get("remote"):
                env.info(f"{job}: {stage}: {event.get('reason', 'fetched from the remote cache')}")
            elif status == "cached":
                env.debug(f"{job}: {stage}: up to date")
        elif kind == "job" and event.get("status") == "skipped":
            env.info(f"{job}: skipped (an earlier job failed; -k keeps going)")
        elif kind == "fanout":
            env.info(f"{job}: {fanned(event)}")
        elif kind in ("warning", "note"):
            env.info(("warning: " if kind == "warning" else "") + str(event.get("message", "")))
        elif kind == "waiting":
            env.info(str(event.get("message", "")))

    def close(self) -> None:
        pass


def fanned(event: dict[str, Any]) -> str:
    """`5 clip jobs: vod-01 … vod-05`."""
    jobs = list(event.get("jobs", []))
    shown = ", ".join(jobs) if len(jobs) <= 3 else f"{jobs[0]} … {jobs[-1]}"
    return f"{len(jobs)} clip job{'s' * (len(jobs) != 1)}: {shown}"


def _after_stage(error: str, stage: str) -> str:
    return error[len(stage) + 2:] if error.startswith(f"{stage}: ") else error


def _bars() -> Any:
    """rich's Progress, with each stage's last progress message on a line of its own under
    the bars (the whole width of the terminal, cut short with an ellipsis, never wrapped):
    `analysing source 1/1: 42:10 of 3:00:00, about 1m20s left`."""
    from rich.progress import Progress
    from rich.text import Text

    class Bars(Progress):
        def get_renderables(self) -> Any:
            yield self.make_tasks_table(self.tasks)
            shown = [t for t in self.tasks if t.visible and t.fields.get("message")]
            for task in shown:
                who = f"{task.fields.get('job', '')}: " if len(shown) > 1 else ""
                yield Text(f"  {who}{task.fields['message']}", no_wrap=True, overflow="ellipsis", style="dim")

    return Bars


class Live:
    """A terminal: a bar per running stage and one for the whole run, finished lines above."""

    def __init__(self, env: Environment) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self.env = env
        self.console = Console(file=env.stderr, force_terminal=True, no_color=not env.color,
                               highlight=False)
        self.progress = _bars()(TextColumn("{task.description}"), BarColumn(bar_width=30),
                                TaskProgressColumn(), TimeElapsedColumn(), console=self.console,
                                transient=True)
        self.total: Any = None
        self.tasks: dict[tuple[str, str], Any] = {}
        self.stages: list[str] = []
        self.progress.start()

    def __call__(self, event: dict[str, Any]) -> None:
        kind, job, stage = event.get("event"), event.get("job", ""), event.get("stage", "")
        p = self.progress
        if kind == "start":
            self.stages = list(event.get("stages", []))
            self.total = p.add_task(f"[bold]{len(event.get('jobs', []))} jobs", total=len(event.get("jobs", [])))
        elif kind == "stage":
            status = event.get("status")
            task_key = (job, stage)
            if status == "running":
                self.tasks[task_key] = p.add_task(f"{job} [cyan]{stage}[/]", total=1.0, job=job)
            elif status in ("done", "failed", "cancelled") and task_key in self.tasks:
                p.remove_task(self.tasks.pop(task_key))
            if status == "done":
                self.console.print(f"[green]✓[/] {job} [cyan]{stage}[/] [dim]{event.get('seconds', 0):.2f}s[/]")
            elif status == "failed":
                self.console.print(f"[red]✗ {job} {stage}[/]: {_after_stage(event.get('error', ''), stage)}",
                                   markup=True)
            elif status == "cached" and event.get("remote"):
                self.console.print(f"[blue]↓[/] {job} [cyan]{stage}[/] [dim]{event.get('reason', '')}[/]")
        elif kind == "progress":
            task = self.tasks.get((job, stage))
            if task is not None:
                p.update(task, completed=float(event.get("fraction", 0)), message=str(event.get("message") or ""))
        elif kind == "fanout":
            if self.total is not None:  # the run has more jobs than it started with
                task = next(t for t in p.tasks if t.id == self.total)
                total = (task.total or 0) + len(event.get("jobs", []))
                p.update(self.total, total=total, description=f"[bold]{int(total)} jobs")
            self.console.print(f"[cyan]→[/] {job}: {fanned(event)}", markup=True)
        elif kind == "uptodate" and self.total is not None:  # that many jobs, found up to date
            p.advance(self.total, int(event.get("jobs", 0)))
        elif kind == "job" and self.total is not None:
            p.advance(self.total)
            if event.get("status") == "skipped":
                self.console.print(f"[yellow]- {job}[/] skipped (an earlier job failed; -k keeps going)")
        elif kind in ("warning", "note", "waiting"):
            self.console.print(("[yellow]warning:[/] " if kind == "warning" else "") + str(event.get("message", "")),
                               markup=kind == "warning")

    def close(self) -> None:
        self.progress.stop()


def display(env: Environment) -> Any:
    if env.json:
        return JsonLines(env)
    if env.live:
        return Live(env)
    return Plain(env)
