"""A job with clips, for an API without `clips`: made into its clip jobs here (issue 14).

`afx serve` takes `clips` (it runs the job and makes its clip jobs itself: afx/server/clips.py),
so `afx push` sends it the job as it is. An API that is not afx serve (no X-Afx-Version)
knows nothing of clips; for it the job becomes its clip jobs before anything is sent:

1. The job's own stages (ingest, analyze, moments, clips: its clips stage is its last) run
   here through the engine (afx.engine.session.Engine, until its clips stage), cached like any
   run: pushing again analyses nothing again, and out/<job>/clips.json says what was chosen
   and why.
2. Each clip's cut is cut out of the recording into `.afx/push/clips/<job>/`
   (afx/media/cutclip.py: re-encoded, frame-accurate), under a name made of what it is cut
   from and where: pushing again cuts nothing, and the same file uploads nothing again.
3. Each becomes an upload job named `<job>-NN` (rank order): the job's other fields, without
   `clips` and without `render.segments` (the file is the cut), its `file` the cut.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from afx.errors import AfxError
from afx.remote import events as ev
from afx.spec.job import Job, freeze, thaw

CLIPS_DIR = Path(".afx") / "push" / "clips"


class ClipsFailed(AfxError):
    """The job's stages up to its clips failed here, or left nothing to cut."""


def clip_jobs(job: Job, root: Path, config: Mapping[str, Any], emit: Callable[[ev.Event], None]) -> list[Job]:
    """The upload jobs `job` (a job with clips) becomes, each with its cut as its file."""
    from afx.engine.runner import RunOptions
    from afx.engine.session import Engine
    from afx.media.cutclip import VERSION, cut

    engine = Engine(root, dict(config))
    own = engine.pipeline.stages_for(job)
    fans = engine.pipeline.fan_out(job)
    emit(ev.Analysing(job.name, fans.promise(job) if fans is not None else ""))
    options = RunOptions(until=own[-1].name)  # its clips stage: the clip jobs' own stages do not run here
    reports = engine.run([job], options, emit=_relay(job.name, emit),
                         on_wait=lambda message: emit(ev.Note(job.name, message)))
    report = next(r for r in reports if r.job == job.name)
    if report.status != "complete":
        raise ClipsFailed(f"{job.name}: {report.error or report.status}")
    if not report.children:
        raise ClipsFailed(f"{job.name}: its clips stage found no clip to make")
    plan = next(r for r in engine.plan([job], options) if r.job == job.name)
    ingest, taken = plan.artifacts["ingest"], plan.artifacts[own[-1].name].meta.get("clips") or []
    ingest_key = next((s.key for s in plan.stages if s.stage == "ingest"), None) or ingest.digest
    cuts = {c.get("name"): c for c in taken if isinstance(c, dict)}
    out = []
    for child in report.children:
        clip = cuts.get(child.name)
        if clip is None:
            raise ClipsFailed(f"{job.name}: its clips stage does not say where {child.name} is cut")
        index, start, end = int(clip.get("source", 0)), float(clip["start"]), float(clip["end"])
        src = _source(job, ingest, index)
        ident = hashlib.sha256(f"cutclip {VERSION}\n{ingest_key}\n{index}\n{start!r}\n{end!r}".encode()).hexdigest()
        dst = root / CLIPS_DIR / job.name / f"{child.name}.{ident[:16]}.mp4"
        current = dst.is_file()
        if not current:
            cut(src, start, end, dst, label=f"{job.name}'s recording")
        emit(ev.Cut(child.name, dst.relative_to(root).as_posix(), start, end, current))
        out.append(upload_job(child, dst, root))
    return out


def upload_job(child: Job, file: Path, root: Path) -> Job:
    """A clip job as an upload job of its cut: without the source it came from (url, urls,
    fileId), without `clips` or render.segments, its `file` the cut (relative to the repo)."""
    fields = thaw(child.fields)
    for key in ("url", "urls", "fileId", "clips"):
        fields.pop(key, None)
    render = dict(fields.get("render") or {})
    render.pop("segments", None)
    if render:
        fields["render"] = render
    else:
        fields.pop("render", None)
    fields["entry"], fields["file"] = "upload", file.relative_to(root).as_posix()
    paths = {k: v for k, v in child.paths.items() if k not in (("file",), ("fileId",))}
    paths[("file",)] = file
    return dataclasses.replace(child, fields=freeze(fields), paths=MappingProxyType(paths))


def _source(job: Job, ingest: Any, index: int) -> Path:
    """The recording a clip is cut from: the job's own file (read in place), or the one its
    ingest stage stored (a download)."""
    sources = ingest.meta.get("sources")
    if not isinstance(sources, list) or not 0 <= index < len(sources) or not isinstance(sources[index], dict):
        raise ClipsFailed(f"{job.name}: its ingest stage has no source {index} to cut a clip from")
    source = sources[index]
    if source.get("ref"):
        path = job.local_path("file") or job.local_path("fileId")
        if path is None:
            raise ClipsFailed(f"{job.name}: its recording is read in place, but the job names no file")
        return path
    return Path(ingest.path(source["name"]))


def _relay(name: str, emit: Callable[[ev.Event], None]) -> Callable[[dict[str, Any]], None]:
    """The engine's events of the job's own stages as the pusher's events."""
    def on(event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "stage" and event.get("job") == name and event.get("status") in ("running", "done", "cached",
                                                                                     "failed"):
            seconds = event.get("seconds")
            emit(ev.LocalStage(name, str(event.get("stage")), str(event["status"]),
                               float(seconds) if isinstance(seconds, (int, float)) else None))
        elif kind == "warning":
            emit(ev.Note(name, str(event.get("message") or "")))
    return on
