"""A pipeline for pushing jobs with clips (AFX_PIPELINE=tests.remote.clippipe:PIPELINE):
afx's real ingest (an upload's file, probed and read in place, as a real push reads it),
the cheap stages of afx.testing.pipeline otherwise, and a moments stage that fits a short
test recording: a moment of clips.min seconds every clips.min + 1 s from 0.5 s, the
earlier the better."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from afx.stages.analyze import AnalyzeStage
from afx.stages.base import Pipeline, StageContext
from afx.stages.clips import MomentsStage
from afx.stages.ingest import IngestStage
from afx.stages.result import job_result
from afx.testing.pipeline import Clips, Edit, Package, Publish, Render, Script, _Cheap


class Analyze(_Cheap, AnalyzeStage):
    _version = AnalyzeStage.version

    def work(self, ctx: StageContext) -> Mapping[str, Any]:
        sources = ctx.inputs["ingest"].meta["sources"]
        ctx.output("analysis.json").write_text(json.dumps([s["probe"]["duration"] for s in sources]))
        return {"sources": len(sources)}


class Moments(_Cheap, MomentsStage):
    _version = MomentsStage.version

    def work(self, ctx: StageContext) -> Mapping[str, Any]:
        from afx.media.moments import Moment, Settings

        settings = Settings.of(ctx.job.get("clips"))
        durations = json.loads(ctx.inputs["analyze"].path("analysis.json").read_text())
        moments, start = [], 0.5
        while start + settings.min <= durations[0]:
            score = 5.0 - start / 100
            moments.append(Moment(0, start + settings.min / 2, start, start + settings.min, score, score,
                                  {"jump": score}, ["test"], heard=True))
            start += settings.min + 1
        doc = {"pool": [m.to_dict() for m in moments], "rest": [], "durations": durations}
        ctx.output("moments.json").write_text(json.dumps(doc))
        return {"moments": len(moments)}


PIPELINE = Pipeline((IngestStage(), Analyze(), Moments(), Clips(), Edit(), Script(), Render(), Package(), Publish()),
                    result=job_result)
