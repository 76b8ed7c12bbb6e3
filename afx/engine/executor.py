"""The one way a job's stages run: in a worker process, with one event stream (issue 13).

`afx run` (one worker), `afx run -j N` (N workers) and each job of `afx serve` (a worker of
its own) all go through `Workers`:

- **Events.** A worker sends ("event", {...}) for progress, stage starts and ends, warnings
  and out/ updates, and ("report", JobReport) when a job is over. That is all a caller sees.
- **Outcome.** The report's status is complete, failed or cancelled, with `error_kind`
  "job" (the input's fault: an AfxError, never refunded) or "server"; `result` is the
  result document when the job's video and package were built, even when its last stage
  (publish) then failed; `lock_changes` are what its stages asked afx.lock to remember,
  made by the worker as soon as the job ends, whatever its status.
- **Cancel.** `interrupt()` (Ctrl-C): the worker stops its stage (its ffmpeg gets 3 s), and
  removes its work folder. `kill()` (a cancelled server job): SIGKILL to the worker's
  process group, which holds its ffmpeg.
- **Crash.** A worker that dies (killed, out of memory) ends its pipe: its job is reported
  failed with `crashed` set and error_kind "server", and its work folders are removed.
- Workers die with their parent (PR_SET_PDEATHSIG) and lead their own process group.

Not a ProcessPoolExecutor with a shared event queue: a worker stopped while it held the
shared queue's write lock left the parent waiting for that lock at exit, for ever (a
Ctrl-C'd `afx run -j 3` hung about one time in 100). A pipe per worker shares no lock; a dead
worker's pipe just ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import multiprocessing.connection as mpc
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from afx import procs
from afx.engine import lockfile, outputs
from afx.engine.remote import remote_for
from afx.engine.runner import Emit, Event, JobReport, RunOptions, load_pipeline, process_job
from afx.engine.store import Store
from afx.spec.job import Job
from afx.stages.base import Artifacts, Pipeline

# What a worker says: an event, or the report of the job it was given (its last word on it).
Message = tuple[Literal["event"], Event] | tuple[Literal["report"], JobReport]


@dataclass(frozen=True)
class Setup:
    """What a worker needs to run jobs; sent to it once, when it starts."""

    pipeline_ref: str | None
    store_root: str
    out_root: str
    config: dict[str, Any] = field(default_factory=dict)
    options: RunOptions = RunOptions()
    cache: str | None = None  # a shared remote cache's URL (afx.engine.remote), checked by the parent


@dataclass(eq=False)
class Worker:
    proc: BaseProcess
    conn: Connection
    tag: str = ""  # names its work folders (afx.procs.tag)

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None  # a Worker is made once its process has started
        return self.proc.pid


class Workers:
    """Worker processes, reused from job to job unless `fresh` (afx serve: a process per job,
    so that killing one to cancel its job touches no other)."""

    def __init__(self, setup: Setup, size: int = 1, *, fresh: bool = False) -> None:
        self.setup, self.size, self.fresh = setup, size, fresh
        self.ctx = multiprocessing.get_context("spawn")
        self.idle: list[Worker] = []
        self.jobs: dict[Worker, Job] = {}  # busy worker -> its job
        self.done: list[Worker] = []  # fresh workers that reported: leaving, not reaped yet

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    @property
    def has_room(self) -> bool:
        return len(self.jobs) < self.size

    def give(self, job: Job) -> Worker:
        while self.idle:  # an idle worker may have died (killed by the system) since its last job
            worker = self.idle.pop()
            try:
                worker.conn.send(job)
            except OSError:
                _bury(worker)
                continue
            self.jobs[worker] = job
            return worker
        worker = self._start()
        self.jobs[worker] = job  # first: stop() sees it whatever happens next
        try:
            worker.conn.send(job)
        except OSError:
            pass  # died at once: messages() reports the job failed
        return worker

    def _start(self) -> Worker:
        ours, theirs = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(theirs, self.setup), daemon=True)
        # Started with SIGINT blocked (a new process keeps the mask), until _worker_main has
        # its handler in place: a Ctrl-C while it imports would print a traceback. Blocked,
        # not ignored: a Ctrl-C in that moment still arrives, to it and to us, once unblocked.
        # The resource tracker is started first: starting it unblocks SIGINT (CPython does).
        resource_tracker.ensure_running()
        blocked = threading.current_thread() is threading.main_thread()
        if blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            proc.start()
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        theirs.close()  # only the worker holds its end: when it dies, our reads end
        pid = proc.pid
        assert pid is not None  # started
        return Worker(proc, ours, f"p{pid}-{procs.start_time(pid)}")

    def messages(self, timeout: float | None = None) -> list[Message]:
        """Waits until some worker says something (or `timeout`); a worker that died is
        reported as its job's failed report."""
        ready = mpc.wait([w.conn for w in self.jobs], timeout=timeout)
        out: list[Message] = []
        for worker in [w for w in self.jobs if w.conn in ready]:
            try:
                message: Message = worker.conn.recv()
            except (EOFError, OSError):
                job = self.jobs.pop(worker)
                code = _bury(worker)
                self._remove_work(worker)
                out.append(("report", JobReport(
                    job.name, status="failed", error_kind="server", crashed=True,
                    error=f"the worker process running this job died (exit status {code})")))
                continue
            if message[0] == "report":
                self.jobs.pop(worker)
                if self.fresh:
                    # Told to leave, and reaped only by stop(): until then its pid (its
                    # group's id) cannot go to another process, so kill() stays safe.
                    with contextlib.suppress(OSError):
                        worker.conn.send(None)
                    self.done.append(worker)
                else:
                    self.idle.append(worker)
            out.append(message)
        return out

    def kill(self, worker: Worker) -> None:
        """Cancel a job now: its worker's whole process group (the worker and its ffmpeg)."""
        targets: tuple[Callable[[], None], ...] = (lambda: os.killpg(worker.pid, signal.SIGKILL), worker.proc.kill)
        for target in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
                target()  # the group exists once the worker has called setsid; before, the process

    def _remove_work(self, worker: Worker) -> None:
        """The work folders of a worker that died mid-job: half written, never indexed; removed
        now rather than by the next run (issue 11)."""
        tmp = Path(self.setup.store_root) / "tmp"
        if worker.tag and tmp.is_dir():
            for folder in tmp.glob(f"*.{worker.tag}.*"):
                if not procs.tag_alive(folder.name):
                    shutil.rmtree(folder, ignore_errors=True)

    def stop(self, grace: float) -> None:
        """Idle workers are told to leave; busy ones are interrupted (their ffmpeg gets 3 s
        to stop, their work folders are removed); what is still alive after `grace` seconds
        is killed. Their pipes are read (and dropped) meanwhile, so none blocks on a full one."""
        for worker in self.idle:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in self.jobs:
            if worker.proc.is_alive() and worker.proc.pid:
                with contextlib.suppress(OSError):
                    os.kill(worker.proc.pid, signal.SIGINT)
        deadline = time.monotonic() + grace
        alive = {w.proc.sentinel: w for w in [*self.idle, *self.jobs]}
        reading: dict[object, Worker] = {w.conn: w for w in alive.values()}  # by pipe
        while alive and time.monotonic() < deadline:
            pipes = [w.conn for w in reading.values()]
            for ready in mpc.wait([*alive, *pipes], timeout=max(deadline - time.monotonic(), 0.0)):
                if ready in alive:
                    alive.pop(ready).proc.join(timeout=1)
                    continue
                try:
                    reading[ready].conn.recv()
                except (EOFError, OSError):
                    reading.pop(ready)
        for worker in [*self.idle, *self.jobs, *self.done]:
            _bury(worker)
            self._remove_work(worker)
        self.idle, self.jobs, self.done = [], {}, []


def run_jobs(setup: Setup, jobs: Sequence[Job], *, parallel: int, keep_going: bool, emit: Emit) -> list[JobReport]:
    """Run jobs on up to `parallel` workers, in order of `jobs`; the first failure stops
    the rest unless keep_going (those not started are reported skipped)."""
    reports: dict[str, JobReport] = {}
    pool = Workers(setup, max(1, min(parallel, len(jobs))))
    todo = list(jobs)
    stop = False
    try:
        while (todo and not stop) or pool.busy:
            while todo and not stop and pool.has_room:
                pool.give(todo.pop(0))
            for message in pool.messages():
                if message[0] == "event":
                    emit(message[1])
                    continue
                value = message[1]
                reports[value.job] = value
                emit(job_event(value))
                if value.status == "failed" and not keep_going:
                    stop = True
    except BaseException:
        # Ctrl-C or a crash: interrupt the workers, give them a moment to stop their ffmpeg
        # and remove their work folders, then kill what is left (a half-done work folder is
        # removed by the next run at the latest: nothing half-written is ever indexed).
        pool.stop(grace=8.0)
        raise
    pool.stop(grace=10.0)
    ordered = [reports[j.name] for j in jobs if j.name in reports]
    for job in jobs:
        if job.name not in reports:
            skipped = JobReport(job.name, status="skipped")
            ordered.append(skipped)
            emit(job_event(skipped))
    return ordered


def job_event(report: JobReport) -> Event:
    event: Event = {"event": "job", "job": report.job, "status": report.status}
    if report.error:
        event["error"] = report.error
    return event


def finish_job(job: Job, pipeline: Pipeline, report: JobReport, out_root: Path) -> None:
    """What every run does when a job's stages are over, in the worker that ran them: its
    stages' afx.lock changes are made (even for a failed job: a publish that went out
    before another platform failed is remembered), and its result document is attached.

    A job whose last stage failed after everything before it was built (a publish refused:
    expired credentials, a platform's error) still has a result: its built files go to
    out/<job>/ with a result.json whose entries show what the failed stage did.
    """
    if report.lock_changes:
        lockfile.apply_changes(job.root, job.name, report.lock_changes)
    folder = out_root / job.name
    if report.status == "complete" and (folder / "result.json").is_file():
        report.result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        return
    own = [s.name for s in pipeline.stages_for(job)]
    last = own[-1] if own else ""
    if report.status != "failed" or report.failed_stage != last or pipeline.result is None:
        return
    if pipeline.fan_out(job) is not None:
        return  # a job with clips has no result of its own: its clip jobs do
    artifacts = dict(report.artifacts)
    if len(artifacts) != len(own) - 1:
        return
    artifacts[last] = Artifacts(last, {}, dict(report.partial), {}, "", time.time())
    result = pipeline.result(job, artifacts)
    outputs.materialize(folder, outputs.exported(artifacts), result)
    report.result = result


def _bury(worker: Worker) -> int | None:
    """A worker that has finished or must: reaped (killed if it still runs), pipe closed."""
    worker.proc.join(timeout=5)
    if worker.proc.is_alive():
        worker.proc.kill()
        worker.proc.join(timeout=5)
    worker.conn.close()
    return worker.proc.exitcode


def _interrupt_once(signum: int, frame: FrameType | None) -> None:
    # A terminal's Ctrl-C reaches the worker, and then the parent interrupts it too: the
    # second must not cut short the clean-up the first started.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


class _EventHandler(logging.Handler):
    """afx's warnings (a stage's log.warning) go to the parent as events: it shows them as
    it shows its own, not as bare lines through its progress display."""

    def __init__(self, send: Callable[[Message], None]) -> None:
        super().__init__(logging.WARNING)
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.send(("event", {"event": "warning", "message": f"{record.name}: {record.getMessage()}"}))
        except (OSError, ValueError):
            pass  # the parent has gone
        except Exception:  # noqa: BLE001 - a bad format string, say: never the stage's problem
            self.handleError(record)


def _worker_main(conn: Connection, setup: Setup) -> None:
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None and not procs.die_with(parent.pid):
        return  # the parent died while this started (kill -9): its jobs die with it (issue 11)
    with contextlib.suppress(OSError):
        os.setsid()  # a group of its own: a cancel kills it and its ffmpeg, and nothing else
    signal.signal(signal.SIGINT, _interrupt_once)
    sending = threading.Lock()  # a stage may log from another thread

    def send(message: Message) -> None:
        with sending:
            conn.send(message)

    logger = logging.getLogger("afx")
    logger.handlers[:] = [_EventHandler(send)]
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # see Workers._start
        pipeline = load_pipeline(setup.pipeline_ref)
        pipeline.begin_run()  # a worker lives for one run (or one server job)
        out_root = Path(setup.out_root)
        while (job := conn.recv()) is not None:
            send(("report", _run_one(job, pipeline, setup, out_root, lambda e: send(("event", e)))))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass  # interrupted, or the parent has gone: nothing to say


def _run_one(job: Job, pipeline: Pipeline, setup: Setup, out_root: Path, emit: Emit) -> JobReport:
    store = Store(Path(setup.store_root))
    try:
        store.remote = remote_for(setup.cache)
        report = process_job(job, pipeline, store, out_root, execute=True, options=setup.options,
                             config=setup.config, emit=emit)
        finish_job(job, pipeline, report, out_root)
    except Exception as exc:  # noqa: BLE001 - the job fails, the run goes on
        report = JobReport(job.name, status="failed", error=f"{type(exc).__name__}: {exc}", error_kind="server")
    finally:
        for message in store.warnings:
            emit({"event": "warning", "message": message})
        store.close()
    report.artifacts = {}  # paths into this worker's view of the store: not for the parent
    return report
