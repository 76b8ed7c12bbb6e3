"""A run over many jobs: the run lock, parallel workers, events, afx.lock (issue 3)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afx.engine.lockfile import RunLock, read_lock, write_lock
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
        ctx = multiprocessing.get_context("spawn")
        queue: Any = ctx.Queue()
        drain = threading.Thread(target=_drain, args=(queue, emit), daemon=True)
        drain.start()
        reports: dict[str, JobReport] = {}
        pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                                   initializer=_init_worker, initargs=(queue,))
        pending: dict[Future, Job] = {}
        todo = list(jobs)
        stop = False
        try:
            while todo or pending:
                while todo and not stop and len(pending) < workers:
                    job = todo.pop(0)
                    fut = pool.submit(_worker, job, self.pipeline_ref, str(self.store_root), str(self.out_root),
                                      dict(self.config), options)
                    pending[fut] = job
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = pending.pop(fut)
                    report = fut.result()
                    reports[job.name] = report
                    queue.put(_job_event(report))
                    if report.status == "failed" and not keep_going:
                        stop = True
            pool.shutdown(wait=True)
        except BaseException:
            # Ctrl-C or a crash: stop workers now; their half-done work dirs are removed by
            # the next run (nothing half-written is ever indexed).
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            queue.put(None)
            drain.join(timeout=5)
        ordered = [reports[j.name] for j in jobs if j.name in reports]
        ordered.extend(_skipped([j for j in jobs if j.name not in reports], emit))
        return ordered

    def _update_lock(self, reports: Sequence[JobReport], keep_only: Sequence[str] | None) -> None:
        data = read_lock(self.root)
        old = data.get("jobs", {})
        jobs = dict(old)
        for report in reports:
            if report.lock is not None:
                jobs[report.job] = report.lock
        if keep_only is not None:
            jobs = {k: v for k, v in jobs.items() if k in set(keep_only)}
        if jobs != old or not (self.root / "afx.lock").exists():  # a no-op run writes nothing
            write_lock(self.root, {"jobs": jobs})


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


_queue: Any = None


def _init_worker(queue: Any) -> None:
    global _queue
    _queue = queue


def _worker(job: Job, pipeline_ref: str | None, store_root: str, out_root: str, config: dict,
            options: RunOptions) -> JobReport:
    pipeline = load_pipeline(pipeline_ref)
    store = Store(Path(store_root))
    try:
        return process_job(job, pipeline, store, Path(out_root), execute=True, options=options, config=config,
                           emit=_queue.put)
    finally:
        for message in store.warnings:
            _queue.put({"event": "warning", "message": message})
        store.close()


def _drain(queue: Any, emit: Emit) -> None:
    while True:
        event = queue.get()
        if event is None:
            return
        emit(event)
