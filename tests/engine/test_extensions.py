"""A layout and a publisher registered from outside afx (tests/engine/fakes.py) run a job end
to end through the engine: validated, framed, rendered, packaged and published with them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from afx.media.measure import frame_at
from afx.publish.ledger import Ledger
from tests.conftest import SpecRepo
from tests.engine.fakes import fakes
from tests.mediafix import ff

JOB = ("entry: upload\nfile: media/clip.mp4\ntopic: {topic}\nplatforms: [tiktok]\n"
       "render: {{layout: redtop, voice: none, title: {{enabled: false}}}}\n")


@pytest.fixture
def frepo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SpecRepo:
    monkeypatch.setenv("AFX_PIPELINE", "tests.engine.fakes:PIPELINE")
    monkeypatch.delenv("AFX_CACHE_DIR", raising=False)
    repo = SpecRepo(tmp_path / "repo")
    repo.write("afx.yaml", "version: 1\npublish: {tiktok: fakepost}\n")
    (repo.root / "media").mkdir()
    # (no sound: nothing for the edit stage to recognise speech in, which keeps the test fast)
    ff("-f", "lavfi", "-i", "testsrc2=s=320x180:r=30:d=3", "-c:v", "libx264", "-preset", "ultrafast",
       "-pix_fmt", "yuv420p", str(repo.root / "media" / "clip.mp4"))
    return repo


@pytest.fixture
def registered_fakes() -> Iterator[None]:
    with fakes():
        yield


def red_share(rgb: np.ndarray) -> float:
    px = rgb.reshape(-1, 3).astype(int)
    return float(((px[:, 0] > 200) & (px[:, 1] < 60) & (px[:, 2] < 60)).mean())


def check_published(repo: SpecRepo, job: str, tmp_path: Path) -> None:
    rgb = np.asarray(Image.open(frame_at(repo.root / "out" / job / "video.mp4", 1.0, tmp_path / f"{job}.png"))
                     .convert("RGB"))
    assert rgb.shape == (1920, 1080, 3)
    assert red_share(rgb[:900]) > 0.95 and red_share(rgb[1000:]) < 0.05, "the fake layout made the picture"
    posted = json.loads((repo.root / "fakepost" / f"tiktok-{job}.json").read_text())
    assert posted["seconds"] > 2 and posted["copy"]["title"]
    result = json.loads((repo.root / "out" / job / "result.json").read_text())
    assert result["status"] == "complete"
    assert result["publishResults"][0] == {**result["publishResults"][0], "platform": "tiktok",
                                           "status": "published", "publisher": "fakepost",
                                           "remoteId": f"fake-{job}"}
    with Ledger(repo.root) as ledger:
        assert ledger.row(job, "tiktok")["publisher"] == "fakepost"


def test_unregistered_names_are_refused_by_the_schema(frepo):
    frepo.write("a.yaml", JOB.format(topic="Fakes"))
    r = frepo.afx("validate")
    assert r.code != 0 and "render.layout" in r.err and "redtop" in r.err, r.err
    assert "publish.tiktok" in r.err, r.err


def test_a_registered_layout_and_publisher_run_a_job_end_to_end(frepo, registered_fakes, tmp_path):
    frepo.write("a.yaml", JOB.format(topic="Fake extensions"))
    assert frepo.afx("validate").code == 0
    r = frepo.afx("run")
    assert r.code == 0, r.text
    check_published(frepo, "a", tmp_path)


def test_they_reach_the_engines_worker_processes(frepo, registered_fakes, tmp_path):
    frepo.write("b.yaml", JOB.format(topic="Worker one"))
    frepo.write("c.yaml", JOB.format(topic="Worker two"))
    r = frepo.afx("run", "-j", "2")
    assert r.code == 0, r.text
    for job in ("b", "c"):
        check_published(frepo, job, tmp_path)


def test_leaving_the_registration_undoes_it():
    from afx.media.layouts import LAYOUTS
    from afx.publish.publishers import PUBLISHERS
    from afx.spec.schema import KINDS, fast_validator, schema, schema_text

    job = {"entry": "compose", "topic": "x", "render": {"layout": "redtop"}}
    assert not fast_validator("job").is_valid(job)
    with fakes():
        assert "redtop" in LAYOUTS and "fakepost" in PUBLISHERS
        assert fast_validator("job").is_valid(job)
        with fakes():  # already registered: left as it is
            pass
        assert "redtop" in LAYOUTS and fast_validator("job").is_valid(job)
    assert "redtop" not in LAYOUTS and "fakepost" not in PUBLISHERS
    assert not fast_validator("job").is_valid(job)
    for kind in KINDS:
        assert schema(kind) == json.loads(schema_text(kind)), kind
