"""A run over many jobs: the run lock, parallel workers, events, afx.lock (issue 3)."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection as mpc
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

from afx.engine.lockfile import RunLock, retire_jobs, update_lock
from afx.engine.runner import Emit, JobReport, RunOptions, load_pipeline, process_job, store_dir
from afx.engine.store import Store
from afx.spec.job import Job

OUT_DIR = "out"


@dataclass
class Engine:
    root: Path
    config: Mapping[str, Any] = field(default_factory=dict)
    pipeline_ref: str | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.pipeline = load_pipeline(self.pipeline_ref)
        self.store_root = store_dir(self.root)
        self.out_root = self.root / OUT_DIR

    def store(self) -> Store:
        return Store(self.store_root)

    def plan(self, jobs: Sequence[Job], options: RunOptions = RunOptions()) -> list[JobReport]:
        store = self.store()
        try:
            return [process_job(j, self.pipeline, store, self.out_root, execute=False, options=options,
                                config=self.config) for j in jobs]
        finally:
            self.warnings = store.warnings
            store.close()

    def run(self, jobs: Sequence[Job], options: RunOptions = RunOptions(), *, parallel: int = 1,
            keep_going: bool = False, wait_for_lock: bool = True, emit: Emit = lambda e: None,
            on_wait: Callable[[str], None] = lambda msg: None, prune_lock: bool = False) -> list[JobReport]:
        """Run jobs; update afx.lock with every job that completed. Holds the run lock throughout."""
        lock = RunLock(self.store_root)
        lock.acquire(wait=wait_for_lock, on_wait=on_wait)
        try:
            store = self.store()
            try:
                stale = store.clean_tmp()
                if stale:
                    emit({"event": "note", "message": f"removed {stale} work folder(s) left by an interrupted run"})
            finally:
                store.close()
            emit({"event": "start", "jobs": [j.name for j in jobs], "stages": self.pipeline.names})
            for stage in self.pipeline.stages:  # what a stage keeps for one run starts afresh
                begin = getattr(stage, "begin_run", None)
                if begin is not None:
                    begin()
            if parallel > 1 and len(jobs) > 1:
                reports = self._run_parallel(jobs, options, parallel, keep_going, emit)
            else:
                reports = self._run_serial(jobs, options, keep_going, emit)
            self._update_lock(reports, [j.name for j in jobs] if prune_lock else None)
            return reports
        finally:
            lock.release()

    def _run_serial(self, jobs: Sequence[Job], options: RunOptions, keep_going: bool, emit: Emit) -> list[JobReport]:
        store = self.store()
        reports: list[JobReport] = []
        try:
            for i, job in enumerate(jobs):
                report = process_job(job, self.pipeline, store, self.out_root, execute=True, options=options,
                                     config=self.config, emit=emit)
                reports.append(report)
                emit(_job_event(report))
                if report.status == "failed" and not keep_going:
                    reports.extend(_skipped(jobs[i + 1:], emit))
                    break
        finally:
            for message in store.warnings:
                emit({"event": "warning", "message": message})
            store.close()
        return reports

    def _run_parallel(self, jobs: Sequence[Job], options: RunOptions, workers: int, keep_going: bool,
                      emit: Emit) -> list[JobReport]:
        reports: dict[str, JobReport] = {}
        pool = _Workers(min(workers, len(jobs)), (self.pipeline_ref, str(self.store_root), str(self.out_root),
                                                  dict(self.config), options))
        todo = list(jobs)
        stop = False
        try:
            while (todo and not stop) or pool.busy:
                while todo and not stop and pool.has_room:
                    pool.give(todo.pop(0))
                for kind, value in pool.messages():
                    if kind == "event":
                        emit(value)
                        continue
                    reports[value.job] = value
                    emit(_job_event(value))
                    if value.status == "failed" and not keep_going:
                        stop = True
        except BaseException:
            # Ctrl-C or a crash: interrupt the workers, give them a moment to stop their
            # ffmpeg and remove their work folders, then kill what is left (a half-done work
            # folder is removed by the next run: nothing half-written is ever indexed).
            pool.stop(grace=8.0)
            raise
        pool.stop(grace=10.0)
        ordered = [reports[j.name] for j in jobs if j.name in reports]
        ordered.extend(_skipped([j for j in jobs if j.name not in reports], emit))
        return ordered

    def _update_lock(self, reports: Sequence[JobReport], keep_only: Sequence[str] | None) -> None:
        if keep_only is None and (self.root / "afx.lock").exists() and all(r.lock is None for r in reports):
            return
        if keep_only is not None:
            # Jobs gone from the specs: their publish rows are retired in the ledger first,
            # then in afx.lock (retried from afx.lock if we stop in between).
            from afx.publish.ledger import Ledger, ledger_path

            if ledger_path(self.root).exists():
                with Ledger(self.root) as ledger:
                    ledger.retire(set(keep_only))

        def change(data: dict[str, Any]) -> None:
            jobs = dict(data.get("jobs", {}))
            for report in reports:
                if report.lock is not None:
                    jobs[report.job] = report.lock  # afx run's keys; the others are kept
            data["jobs"] = jobs
            if keep_only is not None:
                retire_jobs(data, set(keep_only))

        update_lock(self.root, change)  # written only if it changed: a no-op run writes nothing


def _job_event(report: JobReport) -> dict[str, Any]:
    event: dict[str, Any] = {"event": "job", "job": report.job, "status": report.status}
    if report.error:
        event["error"] = report.error
    return event


def _skipped(jobs: Sequence[Job], emit: Emit) -> list[JobReport]:
    out = []
    for job in jobs:
        report = JobReport(job.name, status="skipped")
        out.append(report)
        emit(_job_event(report))
    return out


class _Workers:
    """Worker processes for `afx run -j N`, reused from job to job, each with its own pipe.

    Not a ProcessPoolExecutor with a shared event queue: a worker stopped while it held the
    shared queue's write lock left the parent waiting for that lock at exit, for ever (a
    Ctrl-C'd `afx run -j 3` hung about one time in 100). A pipe per worker shares no lock;
    a dead worker's pipe just ends, and its job is reported failed.
    """

    def __init__(self, size: int, args: tuple) -> None:
        self.size, self.args = size, args
        self.ctx = multiprocessing.get_context("spawn")
        self.idle: list[_Worker] = []
        self.jobs: dict[_Worker, Job] = {}  # busy worker -> its job

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    @property
    def has_room(self) -> bool:
        return len(self.jobs) < self.size

    def give(self, job: Job) -> None:
        while self.idle:  # an idle worker may have died (killed by the system) since its last job
            worker = self.idle.pop()
            try:
                worker.conn.send(job)
            except OSError:
                _bury(worker)
                continue
            self.jobs[worker] = job
            return
        worker = self._start()
        self.jobs[worker] = job  # first: stop() sees it whatever happens next
        try:
            worker.conn.send(job)
        except OSError:
            pass  # died at once: messages() reports the job failed

    def _start(self) -> _Worker:
        ours, theirs = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(theirs, *self.args), daemon=True)
        # Started with SIGINT blocked (a new process keeps the mask), until _worker_main has
        # its handler in place: a Ctrl-C while it imports would print a traceback. Blocked,
        # not ignored: a Ctrl-C in that moment still arrives, to it and to us, once unblocked.
        # The resource tracker is started first: starting it unblocks SIGINT (CPython does).
        resource_tracker.ensure_running()
        blocked = _main_thread()
        if blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            proc.start()
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        theirs.close()  # only the worker holds its end: when it dies, our reads end
        from afx import procs

        return _Worker(proc, ours, f"p{proc.pid}-{procs.start_time(proc.pid)}")

    def messages(self) -> list[tuple[str, Any]]:
        """Waits until some worker says something; ("event", dict) and ("report", JobReport)."""
        ready = mpc.wait([w.conn for w in self.jobs])
        out: list[tuple[str, Any]] = []
        for worker in [w for w in self.jobs if w.conn in ready]:
            try:
                kind, value = worker.conn.recv()
            except (EOFError, OSError):
                job = self.jobs.pop(worker)
                code = _bury(worker)
                self._remove_work(worker)
                report = JobReport(job.name, status="failed", error_kind="server",
                                   error=f"the worker process running this job died (exit status {code})")
                out.append(("report", report))
                continue
            if kind == "report":
                self.jobs.pop(worker)
                self.idle.append(worker)
            out.append((kind, value))
        return out

    def _remove_work(self, worker: _Worker) -> None:
        """The work folders of a worker that died mid-job (killed): half written, never
        indexed; removed now rather than by the next run (issue 11)."""
        from afx import procs

        tmp = Path(self.args[1]) / "tmp"
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
        reading = {w.conn: w for w in alive.values()}
        while alive and time.monotonic() < deadline:
            for ready in mpc.wait([*alive, *reading], timeout=max(deadline - time.monotonic(), 0.0)):
                if ready in alive:
                    alive.pop(ready).proc.join(timeout=1)
                    continue
                try:
                    reading[ready].conn.recv()
                except (EOFError, OSError):
                    reading.pop(ready)
        for worker in [*self.idle, *self.jobs]:
            _bury(worker)
        self.idle, self.jobs = [], {}


def _bury(worker: _Worker) -> int | None:
    """A worker that has finished or must: reaped (killed if it still runs), pipe closed."""
    worker.proc.join(timeout=5)
    if worker.proc.is_alive():
        worker.proc.kill()
        worker.proc.join(timeout=5)
    worker.conn.close()
    return worker.proc.exitcode


@dataclass(eq=False)
class _Worker:
    proc: Any
    conn: Any
    tag: str = ""  # names its work folders (afx.procs.tag)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _interrupt_once(signum: int, frame: Any) -> None:
    # A terminal's Ctrl-C reaches the worker, and then the parent interrupts it too: the
    # second must not cut short the clean-up the first started.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


class _EventHandler(logging.Handler):
    def __init__(self, send: Callable[[tuple[str, Any]], None]) -> None:
        super().__init__(logging.WARNING)
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.send(("event", {"event": "warning", "message": f"{record.name}: {record.getMessage()}"}))
        except (OSError, ValueError):
            pass  # the parent has gone
        except Exception:  # noqa: BLE001 - a bad format string, say: never the stage's problem
            self.handleError(record)


def _worker_main(conn: Any, pipeline_ref: str | None, store_root: str, out_root: str, config: dict,
                 options: RunOptions) -> None:
    from afx import procs

    parent = multiprocessing.parent_process()
    if parent is not None and not procs.die_with(parent.pid):
        return  # `afx run` died while this started (kill -9): its jobs die with it (issue 11)
    signal.signal(signal.SIGINT, _interrupt_once)
    sending = threading.Lock()  # a stage may log from another thread

    def send(message: tuple[str, Any]) -> None:
        with sending:
            conn.send(message)

    # afx's warnings (a stage's log.warning) go to the parent as events: it shows them as it
    # shows its own, not as bare lines through its progress display
    logger = logging.getLogger("afx")
    logger.handlers[:] = [_EventHandler(send)]
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # see _Workers._start
        pipeline = load_pipeline(pipeline_ref)
        while (job := conn.recv()) is not None:
            store = Store(Path(store_root))
            try:
                report = process_job(job, pipeline, store, Path(out_root), execute=True, options=options,
                                     config=config, emit=lambda e: send(("event", e)))
            except Exception as exc:  # noqa: BLE001 - the job fails, the run goes on
                report = JobReport(job.name, status="failed", error=f"{type(exc).__name__}: {exc}",
                                   error_kind="server")
            finally:
                for message in store.warnings:
                    send(("event", {"event": "warning", "message": message}))
                store.close()
            send(("report", report))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass  # interrupted, or the parent has gone: nothing to say
