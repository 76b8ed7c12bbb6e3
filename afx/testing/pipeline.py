"""A pipeline with the real stages' declarations and cheap, deterministic work.

The five stages read exactly what afx's real stages read (they subclass them), but write
small text artifacts instead of media, so engine behaviour (what reruns, and why) is tested
and benchmarked against the real declarations in milliseconds. Select it with
AFX_PIPELINE=afx.testing.pipeline:PIPELINE.

Test hooks, from the environment:
- AFX_TEST_LOG=FILE      append "<job> <stage>" to FILE each time a stage really runs
- AFX_TEST_SLEEP=S:SEC   sleep SEC seconds inside stage S (to kill a run mid-stage)
- AFX_TEST_FFMPEG=S:SEC  run a real ffmpeg for SEC seconds inside stage S, encoding in real
                         time into the work folder's video.mp4 (to kill a run mid-render)
- AFX_TEST_FAIL=S[:JOB]  make stage S fail (for every job, or only JOB)
- AFX_TEST_CRASH=S[:JOB] kill the process running stage S with SIGKILL (an OOM kill)
- AFX_TEST_VERSION=S:V   report version V for stage S
- AFX_TEST_VARY=1        renders differ run to run (as real ones do: the voice is not repeatable)
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from afx.errors import StageError
from afx.stages.analyze import AnalyzeStage
from afx.stages.base import Pipeline, StageContext
from afx.stages.clips import ClipsStage, MomentsStage
from afx.stages.edit import EditStage
from afx.stages.ingest import IngestStage
from afx.stages.package import PackageStage
from afx.stages.publish import PublishStage
from afx.stages.render import RenderStage
from afx.stages.result import job_result
from afx.stages.script import ScriptStage


def _hook(name: str) -> tuple[str, str]:
    stage, _, arg = os.environ.get(name, "").partition(":")
    return stage, arg


class _Cheap:
    name: str
    _version: str  # the real stage's

    # A property over the real stage's class attribute, settable as that is (a read-only
    # property may not override a writable attribute).
    @property
    def version(self) -> str:
        stage, v = _hook("AFX_TEST_VERSION")
        return v if stage == self.name and v else self._version

    @version.setter
    def version(self, value: str) -> None:
        self._version = value

    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        log = os.environ.get("AFX_TEST_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"{ctx.job.name} {self.name}\n")
        stage, seconds = _hook("AFX_TEST_SLEEP")
        if stage == self.name:
            deadline = time.monotonic() + float(seconds or 5)
            while time.monotonic() < deadline:
                ctx.progress(1 - (deadline - time.monotonic()) / float(seconds or 5), "sleeping")
                time.sleep(0.02)
        stage, seconds = _hook("AFX_TEST_FFMPEG")
        if stage == self.name:
            from afx.media.ffmpeg import run

            run(["-re", "-f", "lavfi", "-i", f"testsrc2=s=320x240:r=25:d={float(seconds or 5)}", "-c:v", "libx264",
                 "-preset", "ultrafast", str(ctx.workdir / "video.mp4")], what="the test's render")
        stage, job = _hook("AFX_TEST_CRASH")
        if stage == self.name and (not job or job == ctx.job.name):
            os.kill(os.getpid(), signal.SIGKILL)
        stage, job = _hook("AFX_TEST_FAIL")
        if stage == self.name and (not job or job == ctx.job.name):
            raise StageError(f"{self.name} failed on purpose (AFX_TEST_FAIL)")
        return self.work(ctx)

    def work(self, ctx: StageContext) -> Mapping[str, Any] | None:
        raise NotImplementedError


def _read(ctx: StageContext, stage: str, name: str) -> str:
    return ctx.inputs[stage].path(name).read_text(encoding="utf-8")


class Ingest(_Cheap, IngestStage):
    _version = IngestStage.version

    def work(self, ctx: StageContext) -> Mapping[str, Any]:
        fields = self.fields(ctx.job)
        files = {name: path.read_bytes().hex()[:64] for name, path in ctx.files.items()}
        ctx.output("source.json").write_text(json.dumps({"fields": fields, "files": files}, sort_keys=True))
        return {"sources": len(fields.get("urls", [])) or 1}


class Analyze(_Cheap, AnalyzeStage):
    _version = AnalyzeStage.version

    def work(self, ctx: StageContext) -> Mapping[str, Any]:
        ctx.output("analysis.json").write_text(_read(ctx, "ingest", "source.json")[::-1])
        return {"sources": 1}


class Moments(_Cheap, MomentsStage):
    """Moments of an hour-long source, one every 100 s, scored from the source's content:
    the same source always has the same moments (AFX_TEST_MOMENTS: how many, 30)."""

    _version = MomentsStage.version

    def work(self, ctx: StageContext) -> Mapping[str, Any]:
        import hashlib

        from afx.media.moments import Moment, Settings

        settings = Settings.of(ctx.job.get("clips"))
        seed = _read(ctx, "analyze", "analysis.json")
        moments = []
        for k in range(int(os.environ.get("AFX_TEST_MOMENTS", "30"))):
            score = int(hashlib.sha256(f"{seed}{k}".encode()).hexdigest()[:6], 16) / 0xFFFFFF * 5
            start = 100.0 * k + 10
            moments.append(Moment(0, start + 20, start, start + min(settings.max, 40.0), score, score,
                                  {"jump": score}, ["cheap"], heard=True))
        moments.sort(key=lambda m: (-m.score, m.peak))
        pool = moments[:settings.pool]
        doc = {"pool": [m.to_dict() for m in pool], "rest": [m.to_dict() for m in moments[settings.pool:]],
               "durations": [3600.0]}
        ctx.output("moments.json").write_text(json.dumps(doc))
        return {"moments": len(pool)}


class Clips(_Cheap, ClipsStage):
    _version = ClipsStage.version

    def work(self, ctx: StageContext) -> Mapping[str, Any] | None:
        return ClipsStage.run(self, ctx)


class Edit(_Cheap, EditStage):
    _version = EditStage.version

    def work(self, ctx: StageContext) -> Mapping[str, Any]:
        ctx.output("transcript.json").write_text("[]")
        pinned = (ctx.job.get("render") or {}).get("segments") or ()
        return {"segments": [dict(s) for s in pinned], "seconds": 1.0}  # a clip job's cut: its own


class Script(_Cheap, ScriptStage):
    _version = ScriptStage.version

    def work(self, ctx: StageContext) -> Mapping[str, Any]:
        text = ctx.job.get("script") or f"A {ctx.job.get('tone', 'plain')} video about {ctx.job.get('topic', '')}."
        ctx.output("script.txt", export="script.txt").write_text(text + "\n")
        return {"words": len(text.split())}


class Render(_Cheap, RenderStage):
    _version = RenderStage.version

    def work(self, ctx: StageContext) -> Mapping[str, Any]:
        body = _read(ctx, "ingest", "source.json") + _read(ctx, "script", "script.txt")
        padding = int(os.environ.get("AFX_TEST_VIDEO_BYTES", "0"))  # a bigger "video" for chunked uploads
        text = f"VIDEO {ctx.job.get('format')}\n{body}"
        if os.environ.get("AFX_TEST_VARY"):  # as the neural voice: no two renders bit-for-bit the same
            text += os.urandom(8).hex()
        ctx.output("video.mp4", export="video.mp4").write_bytes(text.encode() + b"\0" * padding)
        ctx.progress(1.0, "encoded")
        seconds = float(os.environ.get("AFX_TEST_VIDEO_SECONDS", "30"))
        return {"profiles": sorted(ctx.job.get("platforms", ())) or ["default"], "seconds": seconds,
                "outputs": {"video.mp4": {"profiles": [f"{p}-{ctx.job.get('format')}"
                                                        for p in ctx.job.get("platforms", ())]}}}


class Package(_Cheap, PackageStage):
    _version = PackageStage.version

    def work(self, ctx: StageContext) -> Mapping[str, Any]:
        ctx.output("thumb.jpg", export="thumb.jpg").write_text("THUMB " + _read(ctx, "render", "video.mp4")[:40])
        topic = ctx.job.get("topic", "")
        title = (ctx.job.get("copy") or {}).get("title") or topic[:100]
        return {"publishCopy": {"title": title, "description": _read(ctx, "script", "script.txt").strip(),
                                "hashtags": ["#" + w.lower() for w in topic.split()[:3]]},
                "score": {"total": 50 + len(topic) % 50}}


class Publish(_Cheap, PublishStage):
    _version = PublishStage.version

    def work(self, ctx: StageContext) -> Mapping[str, Any]:
        results = [{"platform": p, "status": "outbox"} for p in ctx.job.get("platforms", ())]
        ctx.output("publish.json", export="publish.json").write_text(json.dumps(results, indent=2) + "\n")
        return {"results": results}


PIPELINE = Pipeline((Ingest(), Analyze(), Moments(), Clips(), Edit(), Script(), Render(), Package(), Publish()),
                    result=job_result)
# The real publish stage (ledger, publishers) over the cheap ones: for publishing tests.
PUBLISHING = Pipeline((Ingest(), Analyze(), Moments(), Clips(), Edit(), Script(), Render(), Package(),
                       PublishStage()), result=job_result)
