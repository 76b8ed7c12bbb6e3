"""Stage ingest → analyze: loudness, motion, cuts, silences, facecam of each source (issues 4, 14).

A stage of its own, so analysis is cached apart from downloading (a new analyser version
reruns analysis, not the download) and apart from rendering (a new target length reruns
only the render's cheap highlight choice).

A source is analysed in chunks of source time (10 minutes; AFX_ANALYSIS_CHUNK, in seconds,
for tests), each saved in the stage's resume folder (StageContext.resume) as it is done: a
run interrupted three hours into a six-hour VOD (kill -9 included) goes on from there next
time. Progress says where it is and how long is left, from the rate so far.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from afx.media.analysis import ANALYSIS_VERSION, CHUNK, analyse
from afx.spec.job import Job
from afx.stages.base import StageContext

log = logging.getLogger("afx.analyze")


def chunk_seconds() -> float:
    """Seconds of source per saved chunk: AFX_ANALYSIS_CHUNK, else 10 minutes."""
    try:
        value = float(os.environ.get("AFX_ANALYSIS_CHUNK", CHUNK))
    except ValueError:
        return CHUNK
    return value if value > 0 else CHUNK


def clock(seconds: float) -> str:
    """42:10, 3:00:00."""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def span(seconds: float) -> str:
    """How long, as people say it: 20s, 1m20s, 2h05m."""
    s = max(int(round(seconds)), 1)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s // 60 % 60:02d}m"


class Eta:
    """The progress message of one source: where the analysis is and, from the rate of this
    run so far (chunks resumed from an earlier run count as done, not as speed), the time left."""

    def __init__(self, label: str, duration: float, timer: Any = time.monotonic) -> None:
        self.label, self.duration, self.timer = label, duration, timer
        self.started: float | None = None
        self.first = 0.0  # the fraction done when this run started on it
        self.resumed = ""

    def on_resumed(self, done: int, total: int) -> None:
        if done:
            self.resumed = f"; resumed analysis: {done} of {total} chunks were done"
            log.info("%s: resumed analysis: %d of %d chunks were done", self.label, done, total)

    def message(self, fraction: float) -> str:
        now = self.timer()
        if self.started is None:
            self.started, self.first = now, fraction
        text = f"analysing {self.label}: {clock(fraction * self.duration)} of {clock(self.duration)}"
        elapsed, gained = now - self.started, fraction - self.first
        if fraction < 1.0 and elapsed >= 1.0 and gained > 0:
            text += f", about {span(elapsed * (1.0 - fraction) / gained)} left"
        return text + self.resumed


@contextlib.contextmanager
def claimed(folder: Path | None) -> Iterator[Path | None]:
    """The resume folder, made, and held (an flock on its `.lock`) while the stage works in it.
    None when none is given, or when another process holds it: two jobs that share this
    stage's key, run at once (`afx run -j 2` of a matrix), would write the same chunk files;
    the second works without resuming instead."""
    if folder is None:
        yield None
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as held:
        try:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.info("another job is analysing the same source: this one works without resuming")
            yield None
            return
        yield folder


class AnalyzeStage:
    name = "analyze"
    version = str(ANALYSIS_VERSION)  # why afx.media.analysis (small) is imported up front
    after: tuple[str, ...] = ("ingest",)

    def fields(self, job: Job) -> Mapping[str, Any]:
        return {}

    def files(self, job: Job) -> Mapping[str, Path]:
        from afx.stages.ingest import source_files

        return source_files(job)  # a source read in place

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        from afx.media.probe import Probe
        from afx.stages.ingest import source_path

        ingest = ctx.inputs["ingest"]
        sources = ingest.meta.get("sources", [])
        summary = []
        with claimed(ctx.resume) as resume:
            for i, src in enumerate(sources):
                info = Probe.from_dict(src["probe"])
                eta = Eta(f"source {i + 1}/{len(sources)}", info.duration)

                def progress(f: float, i: int = i, eta: Eta = eta) -> None:
                    ctx.progress((i + f) / len(sources), eta.message(f))

                result = analyse(source_path(ctx, src), info.duration, info.has_audio, progress,
                                 chunk=chunk_seconds(), resume=resume, stem=f"source{i}", on_resumed=eta.on_resumed)
                ctx.output(f"analysis{i}.json").write_text(json.dumps(result.to_dict()))
                summary.append({"cuts": len(result.cuts), "silences": len(result.silences),
                                "keyframes": len(result.keyframes), "facecam": result.facecam})
        return {"sources": summary}
