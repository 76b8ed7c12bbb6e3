"""Plan and run jobs through the pipeline's stages, reusing what is cached (issue 3).

One function walks a job's stages for both `afx plan` (execute=False) and `afx run`, so the
plan and the run can never disagree about what is stale or why.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Required, TypedDict

from afx.engine import outputs
from afx.engine.keys import KeyParts, explain, fingerprint
from afx.engine.lockfile import read_lock_cached
from afx.engine.remote import FETCHED, shared
from afx.engine.store import Manifest, Store, StoredFile
from afx.errors import AfxError, StageError
from afx.spec.job import Job
from afx.stages.base import Artifacts, LockChange, Pipeline, Stage, StageContext

# An event: {"event": "stage" | "progress" | "out" | "warning" | "note" | "start" | "job", ...},
# JSON-able; what else it holds depends on the kind (docs/engine.md).
Event = dict[str, Any]
Emit = Callable[[Event], None]
NEEDS_WORKER = "needs worker"
DEFAULT_PIPELINE = "afx.stages:PIPELINE"


def load_pipeline(ref: str | None = None) -> Pipeline:
    """The pipeline named by `module:attribute` (AFX_PIPELINE for tests and benchmarks)."""
    ref = ref or os.environ.get("AFX_PIPELINE") or DEFAULT_PIPELINE
    module, _, attr = ref.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr or "PIPELINE")
    except (ImportError, AttributeError) as exc:
        raise AfxError(f"cannot load pipeline {ref!r}: {exc}") from None
    if not isinstance(obj, Pipeline):
        raise AfxError(f"{ref!r} is not an afx Pipeline")
    return obj


def store_dir(root: Path) -> Path:
    env = os.environ.get("AFX_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else root / ".afx"


@dataclass
class StagePlan:
    stage: str
    run: bool
    reason: str  # why it runs, or "" when up to date
    key: str | None = None
    fetch: bool = False  # not built here, but in the remote cache (afx.engine.remote)

    @property
    def status(self) -> str:
        return "will fetch" if self.fetch else "will run" if self.run else "up to date"

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "status": self.status, "reason": self.reason, "key": self.key}


class StageLock(TypedDict):
    key: str | None  # the stage key
    outputs: dict[str, str]  # artifact name -> sha256


class LockBlock(TypedDict, total=False):
    """A complete job's block in afx.lock, as afx run writes it (afx.engine.lockfile)."""

    spec: Required[str]  # the resolved job's digest
    stages: Required[dict[str, StageLock]]
    files: Required[dict[str, str | None]]  # out/<job>/ file name -> sha256
    clips: list[str]  # a job that fanned out (FansOut): the names of the jobs it became


@dataclass
class JobReport:
    job: str
    stages: list[StagePlan] = field(default_factory=list)
    status: str = "planned"  # planned | complete | partial | failed | cancelled
    error: str = ""
    error_kind: str = ""  # "job": the input's fault (an AfxError); "server": anything else
    out_current: bool = True
    lock: LockBlock | None = None  # the job's afx.lock block, when complete
    failed_stage: str = ""
    crashed: bool = False  # its worker process died (killed, out of memory): no stage said why
    # What the job's stages asked afx.lock to remember, in order, failed stages' included:
    # made by the executor as soon as the job ends (afx.engine.lockfile.apply_changes).
    lock_changes: list[LockChange] = field(default_factory=list)
    # What a stage that failed had done, in its own words (StageContext.partial): the
    # publish stage's per-platform results when one platform refused.
    partial: dict[str, Any] = field(default_factory=dict)
    # The result document (result.json) of a job that was built, set by the executor.
    result: dict[str, Any] | None = None
    # A job that fans out (afx.stages.base.FansOut): the jobs it became, once its last stage
    # has run (or is cached); before that, `promise` says what it will become.
    children: list[Job] = field(default_factory=list)
    promise: str = ""
    # The stages that finished, by name (not serialised): what a caller can still use of a
    # job that failed late (its result, with a failed publish).
    artifacts: dict[str, Artifacts] = field(default_factory=dict, repr=False, compare=False)

    @property
    def stale(self) -> bool:
        return any(s.run for s in self.stages) or not self.out_current

    def to_dict(self) -> dict[str, Any]:
        out = {"job": self.job, "status": self.status, "stale": self.stale, "error": self.error,
               "out_current": self.out_current, "stages": [s.to_dict() for s in self.stages]}
        if self.children or self.promise:
            out["clips"] = [c.name for c in self.children] if self.children else self.promise
        return out


@dataclass(frozen=True)
class RunOptions:
    force: frozenset[str] = frozenset()  # stage names; "*" forces every stage
    until: str | None = None
    verbose: bool = False

    def forced(self, stage: str) -> bool:
        return "*" in self.force or stage in self.force


def _artifacts(store: Store, m: Manifest) -> Artifacts:
    files = {name: store.object_path(entry["digest"]) for name, entry in m.files.items()}
    return Artifacts(m.stage, files, m.meta, m.exports, m.digest, m.created, m.seconds)


def process_job(job: Job, pipeline: Pipeline, store: Store, out_root: Path, *, execute: bool,
                options: RunOptions = RunOptions(), config: Mapping[str, Any] | None = None,
                emit: Emit = lambda e: None, cached_only: bool = False) -> JobReport:
    """Plan (execute=False) or run one job. Stage failures are in the report, not raised.

    cached_only: run the job only if no stage has to run (status "needs worker" otherwise,
    before anything was done): how `afx run` finishes up-to-date jobs without a worker."""
    # Long (over 60 lines) on purpose: one walk over the stages for planning and running,
    # so `afx plan` and `afx run` can never disagree about what is stale or why.
    report = JobReport(job.name)
    own = pipeline.stages_for(job)
    stages = own
    if options.until:
        stop = pipeline.index(options.until)
        stages = [s for s in own if pipeline.index(s.name) <= stop]
    fan_out = pipeline.fan_out(job) if stages and stages[-1] is own[-1] else None
    artifacts: dict[str, Artifacts] = {}
    digests: dict[str, str | None] = {}  # stage -> manifest digest; None: will change
    lasts = store.lasts(job.name)
    job_is_new = not any(s.name in lasts for s in own)
    for stage in stages:
        fp = fingerprint(stage, job, store, digests, config)
        key = fp.key  # None only when planning below a stage that will run
        last = lasts.get(stage.name)
        forced = options.forced(stage.name)
        manifest, problem = store.checked_manifest(key) if key and not forced else (None, "")
        fetched = False
        if manifest is None and key and not forced and store.remote and not cached_only and shared(stage):
            if execute:  # into the local store, or None: then it runs here
                manifest = store.remote.fetch(key, stage.name, store)
                fetched = manifest is not None
            elif (found := store.remote.record(key, stage.name, store)) is not None:
                report.stages.append(StagePlan(stage.name, True, FETCHED, key, fetch=True))
                digests[stage.name] = found.digest  # what later stages' keys are made of
                continue
        if manifest is not None:
            assert key is not None  # a manifest is looked up by its key only
            report.stages.append(StagePlan(stage.name, False, FETCHED if fetched else "", key))
            if execute:
                emit({"event": "stage", "job": job.name, "stage": stage.name, "status": "cached",
                      **({"reason": FETCHED, "remote": True} if fetched else {})})
                _remember(store, job.name, lasts, stage.name, fp.parts(), key, manifest.digest)
        else:
            reason = "forced" if forced else (problem or explain(fp, last, job_is_new=job_is_new))
            report.stages.append(StagePlan(stage.name, True, reason, key))
            if not execute:
                digests[stage.name] = None
                continue
            if cached_only:
                report.status = NEEDS_WORKER
                return report
            assert key is not None  # every upstream stage has run
            emit({"event": "stage", "job": job.name, "stage": stage.name, "status": "running",
                  "reason": reason})
            started = time.perf_counter()
            try:
                manifest = _execute(stage, job, store, key, artifacts, config or {}, emit, report)
            except KeyboardInterrupt:
                report.status = "cancelled"
                emit({"event": "stage", "job": job.name, "stage": stage.name, "status": "cancelled"})
                raise
            except Exception as exc:  # a stage failure is reported, never a crash of the run
                report.status, report.error = "failed", _describe(stage.name, exc, options.verbose)
                report.error_kind = fault(exc)
                report.failed_stage, report.artifacts = stage.name, dict(artifacts)
                emit({"event": "stage", "job": job.name, "stage": stage.name, "status": "failed",
                      "error": report.error})
                return report
            emit({"event": "stage", "job": job.name, "stage": stage.name, "status": "done",
                  "seconds": round(time.perf_counter() - started, 3)})
            _remember(store, job.name, lasts, stage.name, fp.parts(), key, manifest.digest)
        artifacts[stage.name] = _artifacts(store, manifest)
        digests[stage.name] = manifest.digest
    complete = len(stages) == len(own)
    folder = out_root / job.name
    if not execute:  # what a plan can show of the stages that are up to date (afx plan --json)
        report.artifacts = dict(artifacts)
    if len(artifacts) < len(stages):  # planning, with stages still to run
        report.out_current = False
        if fan_out is not None:
            report.promise = fan_out.promise(job)
        return report
    if fan_out is not None:  # its last stage is done: the jobs it becomes are known
        report.children = fan_out.children(job, artifacts)
    files = outputs.exported(artifacts)
    result = pipeline.result(job, artifacts) if complete and pipeline.result and fan_out is None else None
    if not execute:
        report.out_current = outputs.is_current(folder, files, result)
        return report
    if outputs.materialize(folder, files, result):
        emit({"event": "out", "job": job.name, "path": str(folder)})
    report.status = "complete" if complete else "partial"
    if complete:
        report.lock = _lock_block(job, store, artifacts, stages, [s.key for s in report.stages])
        if fan_out is not None:
            report.lock["clips"] = [c.name for c in report.children]
    return report


def _execute(stage: Stage, job: Job, store: Store, key: str, artifacts: Mapping[str, Artifacts],
             config: Mapping[str, Any], emit: Emit, report: JobReport) -> Manifest:
    workdir = store.workdir(job.name, stage.name)
    last_emit = [0.0]

    def on_progress(fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - last_emit[0] >= 0.1 or fraction >= 1.0:
            last_emit[0] = now
            emit({"event": "progress", "job": job.name, "stage": stage.name, "fraction": round(fraction, 4),
                  "message": message})

    ctx = StageContext(job=job, stage=stage.name, workdir=workdir,
                       inputs={d: artifacts[d] for d in stage.after}, files=dict(stage.files(job)),
                       config=config, on_progress=on_progress, read_lock=lambda: read_lock_cached(job.root),
                       resume=store.resume_dir(key))
    started = time.perf_counter()
    try:
        try:
            meta = stage.run(ctx) or {}
        except BaseException:
            report.partial = json.loads(json.dumps(ctx.partial, default=str))
            raise
        finally:
            report.lock_changes.extend(ctx.lock_changes)  # asked for, whether or not it then failed
        try:
            meta = json.loads(json.dumps(meta))  # JSON-able, and detached from the stage's objects
        except (TypeError, ValueError) as exc:
            raise StageError(f"stage {stage.name} returned metadata that is not JSON: {exc}") from None
        files: dict[str, StoredFile] = {}
        for entry in sorted(workdir.iterdir()):
            if entry.name.startswith("."):
                continue  # scratch files and folders: removed with the work folder
            if not entry.is_file() or entry.is_symlink():
                raise StageError(f"stage {stage.name} left {entry.name!r}, which is not a regular file")
            files[entry.name] = store.put_object(entry)
        missing = [n for n in ctx._exports if n not in files]
        if missing:
            raise StageError(f"stage {stage.name} promised {', '.join(missing)} but did not write it")
        manifest = Manifest(stage.name, key, files, dict(ctx._exports), meta, time.perf_counter() - started)
        store.put_manifest(manifest)  # last: only now is the stage done
        store.drop_resume(key)
        if store.remote is not None and shared(stage):
            store.remote.push(manifest, store)  # (a failure is a warning: the stage is done here)
        return manifest
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _remember(store: Store, job: str, lasts: dict[str, dict[str, Any]], stage: str, parts: KeyParts, key: str,
              manifest: str) -> None:
    record: dict[str, Any] = {"key": key, "parts": parts, "manifest": manifest}
    last = lasts.get(stage)
    if last is None or any(last.get(k) != v for k, v in record.items()):
        lasts[stage] = {**record, "time": time.time()}
        store.set_lasts(job, lasts)


def _lock_block(job: Job, store: Store, artifacts: Mapping[str, Artifacts], stages: Sequence[Stage],
                keys: Sequence[str | None]) -> LockBlock:
    block: LockBlock = {"spec": job.digest, "stages": {}, "files": {}}
    for stage, key in zip(stages, keys):
        arts = artifacts[stage.name]
        manifest = store.manifest(key) if key else None
        outputs_ = {n: e["digest"] for n, e in manifest.files.items()} if manifest else {}
        block["stages"][stage.name] = {"key": key, "outputs": outputs_}
        for name, export in arts.exports.items():
            block["files"][export] = outputs_.get(name)
    return block


def fault(exc: BaseException) -> str:
    """Whose fault a stage's failure is, decided here once for every stage (issue 13): "job"
    for an AfxError (a bad spec, a URL that does not download, a file that is not a video:
    afx.media's MediaError is one), which a server does not refund; "server" for anything
    else (a bug, a crash), which it does."""
    return "job" if isinstance(exc, AfxError) else "server"


def _describe(stage: str, exc: BaseException, verbose: bool) -> str:
    if isinstance(exc, AfxError):
        text = exc.message + (f" ({exc.hint})" if exc.hint else "")
    else:
        text = f"{type(exc).__name__}: {exc}"
    if verbose and not isinstance(exc, AfxError):
        text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
    return f"{stage}: {text}"
