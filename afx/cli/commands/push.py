"""afx push: make the repo's jobs on an AuraFlux-compatible API and bring the results home.

The work is afx/remote/push.py's (upload, submit, poll, download, afx.lock); this command
selects the jobs, runs the pusher, shows its events as `<job>: <what happened>` lines on
stderr, prints the --json document, and maps the outcome to the exit status:

0 all complete (or submitted, with --no-wait), 3 a remote job failed or was cancelled, 4 an
API error or --timeout, 130 Ctrl-C (the jobs keep running remotely; push again to wait for
them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from afx import times
from afx.cli.env import Environment
from afx.client import Client
from afx.errors import ExitStatus
from afx.remote import events as ev
from afx.remote.api import credentials
from afx.remote.items import Item
from afx.remote.push import Outcome, Polling, Pusher
from afx.spec.select import select


class Show:
    """Renders a push's events as lines on the Environment's stderr."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.shown: dict[str, str] = {}  # per job, the status line shown last: a poll that changes nothing is quiet

    def __call__(self, event: ev.Event) -> None:
        text = self.text(event)
        if text is not None:
            self.env.info(f"{self.env.style(event.job, bold=True)}: {text}")

    def text(self, e: ev.Event) -> str | None:
        style = self.env.style
        match e:
            case ev.NotSent():
                why = "a local file the server cannot read" if e.extensions else "not a POST /jobs field"
                return f"{', '.join(e.fields)} not sent ({why})"
            case ev.Converted():
                return f"{e.file}: {e.how}"
            case ev.Analysing():
                return f"this API has no clips: running the job here up to its clips ({e.what})"
            case ev.LocalStage():
                if e.status == "running":
                    return None
                took = f" in {e.seconds:.1f}s" if e.seconds is not None and e.status == "done" else ""
                return f"{e.stage}: {e.status}{took}"
            case ev.Note():
                return style(e.message, fg="yellow")
            case ev.Cut():
                how = "cut already" if e.current else "cut"
                return f"{how} {e.start:g}-{e.end:g} s into {e.file}"
            case ev.Following():
                return f"its clip jobs: {', '.join(e.clips)}"
            case ev.Uploading():
                return f"uploading {e.file} ({_size(e.size)})"
            case ev.Uploaded():
                return f"uploaded {e.file} as {e.file_id}" + (" (the server had it already)" if e.replayed else "")
            case ev.FileUnknown():
                return f"the server does not know {e.file_id}; uploading again"
            case ev.Resubmitting():
                return f"{e.job_id} {e.status or 'is gone from the server'}; submitting again"
            case ev.Found():
                self.shown[e.job] = e.status
                return f"{e.job_id}: {e.status} (submitted {e.submitted or 'before'})"
            case ev.Submitted():
                self.shown[e.job] = e.status
                costs = f" ({e.cost} credit{'s' * (e.cost != 1)}, balance {e.balance})" \
                    if e.cost is not None and e.new else ""
                return f"{'submitted as' if e.new else 'already submitted as'} {e.job_id}{costs}"
            case ev.Scheduled():
                return f"publishes at {e.at}"
            case ev.Progress():
                line = e.status
                if e.stage:
                    line += f" ({e.stage}{f' {e.progress * 100:.0f}%' if e.progress is not None else ''})"
                return self.changed(e.job, line)
            case ev.Waiting():
                return None if self.changed(e.job, "waiting") is None else f"waiting for a free slot ({e.why})"
            case ev.NotSubmitted():
                return style(f"error: {e.message}", fg="red")
            case ev.Failed():
                return style(f"{e.status}: {e.error}", fg="red")
            case ev.Downloaded():
                return style(e.status, fg="green") + (f"; {e.folder} is up to date" if e.current
                                                      else f" -> {e.folder} ({', '.join(e.files)})")
        return None

    def changed(self, job: str, line: str) -> str | None:
        """`line`, unless it is what the job shows already."""
        if line == self.shown.get(job):
            return None
        self.shown[job] = line
        return line


def push(env: Environment, targets: Sequence[str], *, api_url: str | None = None, wait: bool = True,
         timeout: float = 3600.0, clock: times.Clock = times.SYSTEM, polling: Polling = Polling()) -> int:
    url, key = credentials(env.environ, api_url)
    result, jobs = select(targets)
    started = clock.monotonic()
    client = Client(url, key)
    pusher = Pusher(client, result.root, wait=wait, clock=clock, polling=polling, on_event=Show(env),
                    config=result.config)
    items = [Item(job) for job in jobs]
    try:
        outcome = pusher.run(items, timeout)
    except KeyboardInterrupt:
        pusher.save(items)
        running = [i for i in items if i.active]
        env.error("afx: interrupted" + (f"; {len(running)} job(s) keep running on {pusher.api}: `afx push` again "
                                        "waits for them (afx.lock has their ids)" if running else ""))
        return int(ExitStatus.INTERRUPTED)
    finally:
        try:
            pusher.save(items)
        finally:
            client.close()
    return report(env, pusher.api, outcome, lambda: clock.monotonic() - started)


def report(env: Environment, api: str, outcome: Outcome, elapsed: Callable[[], float]) -> int:
    """The --json document and the closing lines; the exit status."""
    items, errors, failed = outcome.items, outcome.errors, outcome.failed
    if env.json:
        env.emit_json({"api": api, "ok": not errors and not failed, "jobs": [i.to_dict() for i in items]})
    jobs = f"job{'s' * (len(items) != 1)}"
    if outcome.timed_out:
        env.error(env.style("afx: error: ", fg="red", bold=True) + outcome.timed_out +
                  "\n  they keep running on the server; `afx push` again waits for them")
    elif errors or failed:
        env.error(env.style("afx: ", fg="red", bold=True) + f"{len(errors) + len(failed)} of {len(items)} "
                  f"{jobs} did not complete")
        for item in errors + failed:
            env.error(f"  {item.name}: {item.error}")
    else:
        counts: dict[str, int] = {}
        for item in items:
            counts[item.status] = counts.get(item.status, 0) + 1
        states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        new = sum(i.new for i in items)
        env.info(f"{len(items)} {jobs} on {api}: {states or 'none'} ({new} submitted now) in {elapsed():.1f}s")
    if errors or outcome.timed_out:
        return int(ExitStatus.REMOTE_ERROR)
    return int(ExitStatus.STAGE_FAILED if failed else ExitStatus.OK)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
