"""A layout and a publisher afx does not have, and afx's real pipeline running with them
registered (afx.testing.extensions): AFX_PIPELINE=tests.engine.fakes:PIPELINE.

The stages that look a layout or a publisher up (edit, render, publish) register the fakes
around their own run, in whatever process the engine runs them: a spawned worker (afx run -j)
has only what it imports.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from afx.media.layouts.base import Layout, Shot, cover
from afx.publish.base import Item, Published, Save
from afx.stages.analyze import AnalyzeStage
from afx.stages.base import Pipeline, StageContext
from afx.stages.edit import EditStage
from afx.stages.ingest import IngestStage
from afx.stages.package import PackageStage
from afx.stages.publish import PublishStage
from afx.stages.render import RenderStage
from afx.stages.result import job_result
from afx.stages.script import ScriptStage
from afx.testing.extensions import registered


def _redtop(shot: Shot) -> str:
    w, h = shot.size
    return f"{cover(w, h, shot.probe.width, shot.probe.height)},drawbox=x=0:y=0:w={w}:h={h // 2}:color=red:t=fill"


REDTOP = Layout("the middle, its top half painted red", _redtop)


class FakePost:
    """Publishes by writing fakepost/<platform>-<job>.json in the spec repo."""

    name = "fakepost"

    def publish(self, item: Item, session: dict[str, Any], save: Save) -> Published:
        folder = item.root / "fakepost"
        folder.mkdir(exist_ok=True)
        (folder / f"{item.platform}-{item.job}.json").write_text(json.dumps(
            {"video": str(item.video), "sha256": item.digest, "seconds": item.seconds, "copy": dict(item.copy)}))
        return Published(remote_id=f"fake-{item.job}", url=f"fake://{item.platform}/{item.job}")


@contextlib.contextmanager
def fakes() -> Iterator[None]:
    with registered(layouts={"redtop": REDTOP}, publishers={"fakepost": FakePost}):
        yield


class _WithFakes:
    def run(self, ctx: StageContext) -> Mapping[str, Any] | None:
        with fakes():
            return super().run(ctx)  # type: ignore[misc]


class Edit(_WithFakes, EditStage):
    pass


class Render(_WithFakes, RenderStage):
    pass


class Publish(_WithFakes, PublishStage):
    pass


PIPELINE = Pipeline((IngestStage(), AnalyzeStage(), Edit(), ScriptStage(), Render(), PackageStage(), Publish()),
                    result=job_result)
