"""The stage protocol: what the engine needs to know about a stage, and nothing about media.

A stage reads some resolved job fields, some local files and the artifacts of earlier
stages, and writes artifacts into a private work directory. The engine fingerprints
exactly those inputs, before the stage runs, to decide whether it must run (issue 3).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

from afx.spec.job import Job, thaw


@runtime_checkable
class Stage(Protocol):
    """A stage of the pipeline. name, version and after are read-only here: a class
    attribute (`name = "ingest"`), an instance attribute or a property all do.

    A stage may also have any of the optional hooks below (ReadsSettings, ReadsState,
    BeginsRun, RetiresJobs); the engine looks them up on the stage, and does without."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...  # a new version reruns the stage for every job

    @property
    def after(self) -> tuple[str, ...]: ...  # earlier stages whose artifacts this one reads

    def fields(self, job: Job) -> Mapping[str, Any]:
        """The resolved values this stage reads, by name. Only deterministic values."""

    def files(self, job: Job) -> Mapping[str, Path]:
        """Local input files this stage reads, by name (hashed by content)."""

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        """Write artifacts under ctx.workdir; return JSON-able metadata (or None)."""


# The optional hooks of a stage, each a Protocol of its own: a stage that has the method
# satisfies it.


@runtime_checkable
class ReadsSettings(Protocol):
    def settings(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        """What the stage reads of afx.yaml, by name: part of its key (as `config.<name>`)."""


@runtime_checkable
class ReadsState(Protocol):
    def state(self, job: Job) -> Mapping[str, Any]:
        """Outside state the stage depends on (the publish ledger, the clock): part of its key
        (as `state.<name>`)."""


@runtime_checkable
class BeginsRun(Protocol):
    def begin_run(self) -> None:
        """A run (or a server job) starts: drop what was kept for the last one."""


@runtime_checkable
class HoldsState(Protocol):
    def hold(self) -> AbstractContextManager[None]:
        """A stretch in which this process changes none of the outside state `state()` reads
        (the engine's pass over the jobs it finds cached): the stage may read it once for
        all of the stretch's jobs, not once a job."""


@runtime_checkable
class RetiresJobs(Protocol):
    def retire_jobs(self, root: Path, keep: set[str]) -> None:
        """Jobs other than `keep` have left the spec repo at `root`: retire what the stage
        keeps of them outside the store (the publish ledger's rows)."""


@runtime_checkable
class Applies(Protocol):
    def applies(self, job: Job) -> bool:
        """Whether the stage is one of this job's: a stage only some jobs have (the clip
        picker, for a job with `clips`) is left out of the others' plans altogether."""


@runtime_checkable
class FansOut(Protocol):
    """A checkpoint (Snakemake's word): the jobs a job becomes are known only once this
    stage has run. For a job it applies to, it is the job's last stage; the engine then plans
    and runs the jobs `children` makes from its artifacts, each cached like any job."""

    def children(self, job: Job, artifacts: Mapping[str, Artifacts]) -> list[Job]:
        """The jobs `job` becomes (a name each, unique in the repo), from the artifacts of
        this stage and those before it."""

    def promise(self, job: Job) -> str:
        """What a plan says before the stage has run: `5 clips, after analysis`."""


def pick(job: Job, *paths: str) -> dict[str, Any]:
    """Field values by dotted path (`render.captions`), absent ones left out: for Stage.fields."""
    out: dict[str, Any] = {}
    for path in paths:
        value: Any = job.fields
        for part in path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                value = _MISSING
                break
            value = value[part]
        if value is not _MISSING:
            out[path] = thaw(value)
    return out


_MISSING = object()


@dataclass(frozen=True)
class Artifacts:
    """A finished stage's outputs, read-only: files in the store plus metadata."""

    stage: str
    files: Mapping[str, Path]  # name -> path of the stored object
    meta: Mapping[str, Any]
    exports: Mapping[str, str]  # name -> file name under out/<job>/
    digest: str  # manifest digest: what downstream keys hash
    created: float = 0.0  # when the stage produced them (unix time)
    seconds: float = 0.0  # how long it took

    def path(self, name: str) -> Path:
        try:
            return self.files[name]
        except KeyError:
            raise KeyError(f"stage {self.stage} has no artifact {name!r} (has: {', '.join(self.files)})") from None


@dataclass
class StageContext:
    job: Job
    stage: str
    workdir: Path
    inputs: Mapping[str, Artifacts]  # upstream stage name -> its artifacts
    files: Mapping[str, Path]  # this stage's local input files
    config: Mapping[str, Any] = field(default_factory=dict)
    on_progress: Callable[[float, str], None] = lambda fraction, message: None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("afx.stage"))
    _exports: dict[str, str] = field(default_factory=dict)
    # What the stage asks afx.lock to remember of this job (the engine writes it when the job
    # ends, failed or not): a stage writes nothing outside its work folder itself.
    lock_changes: list[LockChange] = field(default_factory=list)
    # What the stage did before it failed, for the job's result (a stage that succeeds
    # returns its metadata instead).
    partial: dict[str, Any] = field(default_factory=dict)
    # afx.lock as the run sees it (read-only; the engine reads it when it changed).
    read_lock: Callable[[], Mapping[str, Any]] = lambda: {"jobs": {}}
    # A folder for what a long stage has finished so far (a download's part file, analysed
    # chunks), named by the stage's key: it survives an interrupted run (kill -9 too), so the
    # next run of the same key resumes; removed once the stage is done. Made by the stage that
    # uses it (mkdir). None: not offered.
    resume: Path | None = None

    def output(self, name: str, *, export: str | None = None) -> Path:
        """Where to write artifact `name`; `export` also puts it in out/<job>/ under that name."""
        if "/" in name or name.startswith(".") or not name:
            raise ValueError(f"artifact names are plain file names, not {name!r}")
        if export is not None:
            if "/" in export or export.startswith(".") or not export:
                raise ValueError(f"export names are plain file names, not {export!r}")
            self._exports[name] = export
        return self.workdir / name

    def progress(self, fraction: float, message: str = "") -> None:
        self.on_progress(min(max(fraction, 0.0), 1.0), message)


@dataclass(frozen=True)
class LockChange:
    """An edit to afx.lock's record of where a job went (see afx.engine.lockfile):
    "published" remembers `record` for `platform`; "forget" drops it (a post about to be
    replaced: it must not come back from afx.lock); "retire" moves it to `retired` (the post
    is another job's, renamed away)."""

    op: str  # "published" | "forget" | "retire"
    platform: str
    record: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Pipeline:
    """The ordered stages of a run, and how finished artifacts become out/<job>/result.json."""

    stages: Sequence[Stage]
    # (job, artifacts by stage) -> the result document (GET /jobs/:id/result shape)
    result: Callable[[Job, Mapping[str, Artifacts]], dict[str, Any]] | None = None
    _order: tuple[tuple[Stage, Callable[[Job], bool] | None, bool], ...] = field(
        init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        # What stages_for asks of each stage, asked once (it runs twice a job: 20,000 times in
        # a no-op run of 10,000 jobs).
        object.__setattr__(self, "_order", tuple((s, getattr(s, "applies", None), getattr(s, "children", None)
                                                  is not None) for s in self.stages))
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate stage names: {names}")
        optional = {s.name for s in self.stages if getattr(s, "applies", None) is not None}
        for i, stage in enumerate(self.stages):
            for dep in stage.after:
                if dep not in names[:i]:
                    raise ValueError(f"stage {stage.name} reads {dep!r}, which does not run before it")
                if dep in optional and getattr(stage, "applies", None) is None:
                    raise ValueError(f"stage {stage.name} runs for every job but reads {dep!r}, which does not")

    def begin_run(self) -> None:
        """A new run (or server job) starts: stages drop what they kept of the last one."""
        for stage in self.stages:
            if isinstance(stage, BeginsRun):
                stage.begin_run()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Every stage's HoldsState.hold at once."""
        with ExitStack() as stack:
            for stage in self.stages:
                if isinstance(stage, HoldsState):
                    stack.enter_context(stage.hold())
            yield

    def retire(self, root: Path, keep: set[str]) -> None:
        """Jobs other than `keep` have left the spec repo at `root` (a full `afx run`):
        stages that keep records of jobs outside the store (the publish ledger) retire theirs."""
        for stage in self.stages:
            if isinstance(stage, RetiresJobs):
                stage.retire_jobs(root, keep)

    def stages_for(self, job: Job) -> list[Stage]:
        """The stages of this job, in order: those that apply to it (Applies), up to the
        first that fans it out (FansOut), which is its last."""
        out: list[Stage] = []
        for stage, applies, fans in self._order:  # (not isinstance: see keys.fingerprint)
            if applies is not None and not applies(job):
                continue
            out.append(stage)
            if fans:
                break
        return out

    def fan_out(self, job: Job) -> FansOut | None:
        """The stage that fans this job out into others, if one does."""
        own = self.stages_for(job)
        # (as stages_for tells: no Protocol isinstance, it costs 25 us a job)
        last = own[-1] if own else None
        fans = last is not None and hasattr(last, "children") and hasattr(last, "promise")
        return cast(FansOut, last) if fans else None

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(name) from None
