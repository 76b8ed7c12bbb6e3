"""A run over many jobs: the run lock, events, afx.lock (issue 3).

Jobs with nothing to run are finished here; the others go to worker processes
(afx.engine.executor), one or `-j N` at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afx.engine.executor import Setup, job_event, run_jobs
from afx.engine.lockfile import RunLock, retire_jobs, update_lock
from afx.engine.runner import NEEDS_WORKER, Emit, Event, JobReport, RunOptions, load_pipeline, process_job, store_dir
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
            self.pipeline.begin_run()  # what a stage keeps for one run starts afresh (planning here)
            reports = self._finish_cached(jobs, options, emit)
            todo = [j for j in jobs if j.name not in reports]
            if todo:  # stages run in worker processes only (afx.engine.executor)
                setup = Setup(self.pipeline_ref, str(self.store_root), str(self.out_root), dict(self.config), options)
                for report in run_jobs(setup, todo, parallel=parallel, keep_going=keep_going, emit=emit):
                    reports[report.job] = report
            ordered = [reports[j.name] for j in jobs]
            self._update_lock(ordered, [j.name for j in jobs] if prune_lock else None)
            return ordered
        finally:
            lock.release()

    def _finish_cached(self, jobs: Sequence[Job], options: RunOptions, emit: Emit) -> dict[str, JobReport]:
        """The jobs with no stage to run, finished here (their out/ brought up to date): a
        no-op run starts no process. The events of a job that needs a worker are dropped;
        the worker says them again."""
        store = self.store()
        done: dict[str, JobReport] = {}
        try:
            for job in jobs:
                events: list[Event] = []
                report = process_job(job, self.pipeline, store, self.out_root, execute=True, options=options,
                                     config=self.config, emit=events.append, cached_only=True)
                if report.status != NEEDS_WORKER:
                    for event in events:
                        emit(event)
                    emit(job_event(report))
                    report.artifacts = {}
                    done[job.name] = report
        finally:
            for message in store.warnings:
                emit({"event": "warning", "message": message})
            store.close()
        return done

    def _update_lock(self, reports: Sequence[JobReport], keep_only: Sequence[str] | None) -> None:
        if keep_only is None and (self.root / "afx.lock").exists() and all(r.lock is None for r in reports):
            return
        if keep_only is not None:
            # Jobs gone from the specs: stages retire what they keep of them outside the store
            # (the publish ledger's rows) first, then afx.lock does (retried from afx.lock if
            # we stop in between).
            self.pipeline.retire(self.root, set(keep_only))

        def change(data: dict[str, Any]) -> None:
            jobs = dict(data.get("jobs", {}))
            for report in reports:
                if report.lock is not None:
                    jobs[report.job] = report.lock  # afx run's keys; the others are kept
            data["jobs"] = jobs
            if keep_only is not None:
                retire_jobs(data, set(keep_only))

        update_lock(self.root, change)  # written only if it changed: a no-op run writes nothing


