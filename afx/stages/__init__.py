"""The stages, in order (docs/architecture.md): ingest, analyze (source analysis, cached
apart from the download), edit (which parts of the sources make the video, and what is said
in them), script, render, package, publish: the seven of every job. A job with `clips` has
instead ingest, analyze, moments and clips, and then becomes its clip jobs (afx.stages.clips).
Each declares what it reads (afx/stages/base.py's Stage protocol); the engine decides when
it runs."""

from afx.stages.analyze import AnalyzeStage
from afx.stages.base import Pipeline
from afx.stages.clips import ClipsStage, MomentsStage
from afx.stages.edit import EditStage
from afx.stages.ingest import IngestStage
from afx.stages.package import PackageStage
from afx.stages.publish import PublishStage
from afx.stages.render import RenderStage
from afx.stages.result import job_result
from afx.stages.script import ScriptStage

STAGES = (IngestStage(), AnalyzeStage(), MomentsStage(), ClipsStage(), EditStage(), ScriptStage(), RenderStage(),
          PackageStage(), PublishStage())
PIPELINE = Pipeline(STAGES, result=job_result)

__all__ = ["PIPELINE", "STAGES"]
