"""A run over many jobs: the run lock, events, afx.lock (issue 3).

Jobs with nothing to run are finished here; the others go to worker processes
(afx.engine.executor), one or `-j N` at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from afx.bulk import paused_gc
from afx.engine.executor import Setup, job_event, run_jobs
from afx.engine.fastpath import FastPath, Record, block_of
from afx.engine.lockfile import RunLock, read_lock, read_lock_cached, retire_jobs, update_lock
from afx.engine.remote import RemoteCache
from afx.engine.runner import (
    NEEDS_WORKER,
    Emit,
    Event,
    JobReport,
    LockBlock,
    RunOptions,
    StagePlan,
    load_pipeline,
    process_job,
    store_dir,
)
from afx.engine.store import Store
from afx.spec.job import Job

OUT_DIR = "out"


def adopt(report: JobReport, names: dict[str, Job]) -> list[Job]:
    """The jobs a job fanned out into, now part of the run (`names`: every job's by name).
    A name another job has already fails the parent: out/<name>/ cannot be both."""
    kids = []
    for child in report.children:
        other = names.get(child.name)
        if other is not None and other.parent == report.job:
            continue  # already in the run (`afx publish vod` names the clip jobs too)
        if other is not None:
            report.status = "failed"
            report.error_kind = "job"
            report.error = (f"clips: the clip job {child.name!r} would have the name of the job in "
                            f"{other.source}; rename one of them")
            report.lock = None  # afx.lock keeps the clip jobs it had
            return []
        kids.append(child)
    for child in kids:  # registered only once none collides
        names[child.name] = child
    return kids


@dataclass
class Engine:
    root: Path
    config: Mapping[str, Any] = field(default_factory=dict)
    pipeline_ref: str | None = None
    cache: str | None = None  # a shared remote cache's URL (afx.engine.remote.configured)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.pipeline = load_pipeline(self.pipeline_ref)
        self.store_root = store_dir(self.root)
        self.out_root = self.root / OUT_DIR

    def store(self) -> Store:
        return Store(self.store_root)

    def remote(self) -> RemoteCache | None:
        """The remote cache, once it has answered (ObjectStoreError, exit 4, if it cannot be
        reached: a run that starts with it must not quietly build everything)."""
        if not self.cache:
            return None
        cache = RemoteCache.open(self.cache)  # afresh: one failed in an earlier run may answer now
        cache.check()
        return cache

    def _fast(self, options: RunOptions) -> FastPath | None:
        """The no-op fast path (afx/engine/fastpath.py), when nothing is forced or cut short."""
        if options.force or options.until:
            return None
        return FastPath(self.store_root, self.pipeline, self.config, self.out_root)

    def plan(self, jobs: Sequence[Job], options: RunOptions = RunOptions(), *, artifacts: bool = True
             ) -> list[JobReport]:
        """Each job's plan; a job that fanned out (its clips are known) is followed by the
        plans of the jobs it became. A stage in the remote cache is planned `will fetch`.
        artifacts=False: the reports need not hold the artifacts of up-to-date stages, so a
        job the fast path knows is up to date is not walked."""
        remote = self.remote()
        store = self.store()
        store.remote = remote
        names = {j.name: j for j in jobs}
        fast = self._fast(options) if not artifacts else None
        try:
            with paused_gc(), self.pipeline.hold():
                return self._plan(jobs, options, store, names, fast)
        finally:
            self.warnings = store.warnings
            store.close()

    def _plan(self, jobs: Sequence[Job], options: RunOptions, store: Store, names: dict[str, Job],
              fast: FastPath | None) -> list[JobReport]:
        out: list[JobReport] = []
        todo = deque(jobs)  # (popped from the front: a list would make 10,000 jobs quadratic)
        while todo:
            job = todo.popleft()
            record = fast.check(job) if fast is not None else None
            if record is not None:
                out.append(_FastReport(job.name, record, "planned"))
                continue
            report = process_job(job, self.pipeline, store, self.out_root, execute=False, options=options,
                                 config=self.config)
            out.append(report)
            todo.extendleft(reversed(adopt(report, names)))
        return out

    def run(self, jobs: Sequence[Job], options: RunOptions = RunOptions(), *, parallel: int = 1,
            keep_going: bool = False, wait_for_lock: bool = True, emit: Emit = lambda e: None,
            on_wait: Callable[[str], None] = lambda msg: None, prune_lock: bool = False,
            each_cached: bool = True) -> list[JobReport]:
        """Run jobs; update afx.lock with every job that completed. Holds the run lock throughout.

        each_cached=False: the jobs the fast path finds up to date are said by one event,
        {"event": "uptodate", "jobs": n, "stages": m}, not by a stage event for each of
        their stages and a job event (a display that shows only what happens)."""
        self.each_cached = each_cached
        self.remote()  # fetches and pushes happen in the workers (afx.engine.executor)
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
            self.fast = self._fast(options)
            self.fast_hits: set[str] = set()
            ordered = self._run_rounds(jobs, options, parallel, keep_going, emit)
            self._update_lock(ordered, [r.job for r in ordered] if prune_lock else None)
            if self.fast is not None:
                self.fast.save(self.root / "afx.lock", lambda: read_lock_cached(self.root).get("jobs", {}))
            return ordered
        finally:
            lock.release()

    def expand(self, jobs: Sequence[Job]) -> list[Job]:
        """`jobs`, each job with clips followed by the clip jobs it became (known once its
        clips stage has run: from the store, without running anything)."""
        if not any(self.pipeline.fan_out(j) is not None for j in jobs):
            return list(jobs)
        names = {j.name: j for j in jobs}
        store = self.store()
        out: list[Job] = []
        try:
            for job in jobs:
                out.append(job)
                if self.pipeline.fan_out(job) is not None:
                    report = process_job(job, self.pipeline, store, self.out_root, execute=False,
                                         config=self.config)
                    out += adopt(report, names)
        finally:
            store.close()
        return out

    def _run_rounds(self, jobs: Sequence[Job], options: RunOptions, parallel: int, keep_going: bool,
                    emit: Emit) -> list[JobReport]:
        """Run jobs, then the jobs those fanned out into (a job with clips becomes its clip
        jobs once its clip stage has run), round after round. Each job's report is followed
        by those of the jobs it became."""
        names = {j.name: j for j in jobs}
        reports: dict[str, JobReport] = {}
        born: dict[str, list[str]] = {}  # a parent -> the jobs it became
        todo = list(jobs)
        shared: set[str] = set()  # stages a parent ran, whose keys its clip jobs share
        while todo:
            # --force forces a stage once: not again for the clip jobs of a parent that ran it
            # (a 3-hour source is analysed once, not once per clip).
            now = options if not shared else RunOptions(
                force=frozenset((set(self.pipeline.names) if "*" in options.force else set(options.force)) - shared),
                until=options.until, verbose=options.verbose)
            # (10,000 jobs' records and reports: afx/bulk.py; nothing publishes in this pass)
            with paused_gc(), self.pipeline.hold():
                done = self._finish_cached(todo, now, emit)
            rest = [j for j in todo if j.name not in done]
            if rest and self.fast is not None:  # what ran is recorded again once a run finds it cached
                self.fast.drop(j.name for j in rest)
            if rest:  # stages run in worker processes only (afx.engine.executor)
                setup = Setup(self.pipeline_ref, str(self.store_root), str(self.out_root), dict(self.config), now,
                              cache=self.cache)
                for report in run_jobs(setup, rest, parallel=parallel, keep_going=keep_going, emit=emit):
                    done[report.job] = report
            reports.update(done)
            following: list[Job] = []
            for job in todo:
                report = done[job.name]
                if report.children:
                    kids = adopt(report, names)
                    born[job.name] = [k.name for k in kids]
                    following += kids
                    if report.status == "failed":
                        emit(job_event(report))
                    elif kids:
                        emit({"event": "fanout", "job": job.name, "jobs": [k.name for k in kids]})
            shared.update(s.name for job in todo if job.name in born for s in self.pipeline.stages_for(job))
            failed = any(r.status == "failed" for r in done.values())
            if failed and not keep_going:
                for job in following:  # reported (afx.lock keeps them), not run
                    reports[job.name] = JobReport(job.name, status="skipped")
                    emit(job_event(reports[job.name]))
                following = []
            todo = following
        ordered: list[JobReport] = []

        def place(name: str) -> None:
            if name in reports:
                ordered.append(reports[name])
                for child in born.get(name, []):
                    place(child)

        for job in jobs:
            place(job.name)
        return ordered

    def _finish_cached(self, jobs: Sequence[Job], options: RunOptions, emit: Emit) -> dict[str, JobReport]:
        """The jobs with no stage to run, finished here (their out/ brought up to date): a
        no-op run starts no process. The events of a job that needs a worker are dropped;
        the worker says them again."""
        store = self.store()
        done: dict[str, JobReport] = {}
        fast = getattr(self, "fast", None) if options == RunOptions(verbose=options.verbose) else None
        each_cached = getattr(self, "each_cached", True)
        quiet = quiet_stages = 0
        try:
            for job in jobs:
                sig = None
                if fast is not None:
                    record = fast.check(job)
                    if record is None:
                        sig = fast.signature(job)  # (before the walk: what remember() records)
                    else:
                        hit = done[job.name] = _FastReport(job.name, record, "complete")
                        self.fast_hits.add(job.name)
                        if each_cached:
                            for stage in record[3]:
                                emit({"event": "stage", "job": job.name, "stage": stage, "status": "cached"})
                            emit(job_event(hit))
                        else:
                            quiet += 1
                            quiet_stages += len(record[3])
                        continue
                events: list[Event] = []
                warned = len(store.warnings)
                report = process_job(job, self.pipeline, store, self.out_root, execute=True, options=options,
                                     config=self.config, emit=events.append, cached_only=True)
                if report.status != NEEDS_WORKER:
                    for event in events:
                        emit(event)
                    emit(job_event(report))
                    report.artifacts = {}
                    done[job.name] = report
                    if (fast is not None and report.status == "complete" and report.lock is not None
                            and not report.children and len(store.warnings) == warned):
                        fast.remember(job, sig, store, report.lock, self.out_root)
        finally:
            if quiet:
                emit({"event": "uptodate", "jobs": quiet, "stages": quiet_stages})
            for message in store.warnings:
                emit({"event": "warning", "message": message})
            store.close()
        return done

    def _update_lock(self, reports: Sequence[JobReport], keep_only: Sequence[str] | None) -> None:
        if keep_only is None and (self.root / "afx.lock").exists() and all(r.lock is None for r in reports):
            return
        if keep_only is not None:
            # A job with clips that did not get as far as its clips this time keeps the clip
            # jobs it had (a source missing for a day retires no post).
            # (afx.lock is read only when some job has no block: not in a no-op run)
            fast_hits: set[str] = getattr(self, "fast_hits", set())
            lacking = [r.job for r in reports if r.job not in fast_hits and r.lock is None]
            before = read_lock(self.root).get("jobs", {}) if lacking else {}
            kept = set(keep_only)
            for job in lacking:
                if isinstance(before.get(job), dict):
                    kept.update(c for c in before[job].get("clips", ()) if isinstance(c, str))
            keep_only = sorted(kept)
            # Jobs gone from the specs: stages retire what they keep of them outside the store
            # (the publish ledger's rows) first, then afx.lock does (retried from afx.lock if
            # we stop in between).
            self.pipeline.retire(self.root, set(keep_only))
        fast = getattr(self, "fast", None)
        # (fast hits first: their blocks are unpickled only when read)
        if (fast is not None and all(r.job in self.fast_hits or r.lock is None for r in reports)
                and fast.lock_unchanged(self.root / "afx.lock", set(keep_only) if keep_only is not None else None)):
            return  # every block is the one afx.lock has (the fast path's records say so)

        def change(data: dict[str, Any]) -> None:
            jobs = dict(data.get("jobs", {}))
            for report in reports:
                if report.lock is not None:
                    jobs[report.job] = report.lock  # afx run's keys; the others are kept
            data["jobs"] = jobs
            if keep_only is not None:
                retire_jobs(data, set(keep_only))

        update_lock(self.root, change)  # written only if it changed: a no-op run writes nothing



class _FastReport(JobReport):
    """The report of a job the fast path found up to date: its stages cached, out/ current.
    Its stages and afx.lock block come from the record's pickled block when first read: a
    no-op run of 10,000 jobs reads none of them."""

    def __init__(self, job: str, record: Record, status: str) -> None:
        self._record = record
        super().__init__(job, status=status)
        del self.__dict__["_stages"], self.__dict__["_lock"]  # (not the defaults: the record's)
        self._complete = status == "complete"

    @property
    def stale(self) -> bool:
        return False

    @property
    def stages(self) -> list[StagePlan]:
        if "_stages" not in self.__dict__:
            self._stages = [StagePlan(name, False, "", stage.get("key"))
                            for name, stage in self._block()["stages"].items()]
        return self._stages

    @stages.setter
    def stages(self, value: list[StagePlan]) -> None:
        self.__dict__["_stages"] = value

    @property
    def lock(self) -> LockBlock | None:
        if "_lock" not in self.__dict__:
            self._lock = cast(LockBlock, self._block()) if self._complete else None
        return self._lock

    @lock.setter
    def lock(self, value: LockBlock | None) -> None:
        self.__dict__["_lock"] = value

    def _block(self) -> dict[str, Any]:
        if "_blockdata" not in self.__dict__:
            self._blockdata = block_of(self._record)
        return self._blockdata
