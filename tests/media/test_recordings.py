"""Any recording a person has (issue 12): real files in their own containers, uploaded as
they are. MP4/MOV and Matroska/WebM are read in place; the rest is remuxed into Matroska
(an FLV seeked to 0 s decoded no frame at all)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from afx.media.measure import frame_at
from afx.media.probe import probe
from tests.conftest import SpecRepo
from tests.mediafix import ff

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "media"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/media is not beside this checkout")


@pytest.fixture
def rrepo(tmp_path, monkeypatch) -> SpecRepo:
    monkeypatch.delenv("AFX_PIPELINE", raising=False)
    repo = SpecRepo(tmp_path / "repo")
    (repo.root / "media").mkdir()
    return repo


def render(repo: SpecRepo, name: str, path: Path, seconds: float) -> tuple[Path, dict]:
    # (YouTube: Shorts have no 3 s minimum, and CREMA-D's sentence is 2 s)
    shutil.copy(path, repo.root / "media" / path.name)
    repo.write(f"{name}.yaml", f"entry: upload\nfile: media/{path.name}\ntopic: A real recording\n"
                               f"render: {{seconds: {seconds}, voice: none, title: {{enabled: false}}}}\n"
                               "platforms: [youtube]\n")
    r = repo.afx("run", "--until", "render", name, "--json")
    assert r.code == 0, r.text
    events = [json.loads(line) for line in r.out.splitlines()]
    ingest = next(e for e in events if e.get("stage") == "ingest" and e.get("status") == "done")
    return repo.root / "out" / name / "video.mp4", ingest


def not_black(video: Path, at: float, tmp: Path) -> float:
    frame = np.asarray(Image.open(frame_at(video, at, tmp)).convert("L"), dtype=np.float32)
    return float(frame.std())


def ingest_meta(repo: SpecRepo, job: str) -> dict:
    """What ingest recorded for the job's last run."""
    from afx.engine.store import Store

    store = Store(repo.root / ".afx")
    try:
        return store.manifest(store.last(job, "ingest")["key"]).meta
    finally:
        store.close()


def copied(repo: SpecRepo, original: Path) -> bool:
    """A file of the store holds the original's bytes."""
    size = original.stat().st_size
    return any(p.stat().st_size == size and p.read_bytes() == original.read_bytes()
               for p in (repo.root / ".afx" / "objects").rglob("*") if p.is_file())


@needs_shared
@pytest.mark.parametrize("name,file,seconds,kept_as", [
    ("mkv", "action_flipping_pancake_kinetics.mkv", 3, "in place"),
    ("flv", "talking_head_cremad_dont_forget_a_jacket.flv", 3, "remuxed from flv"),
    ("mpg", "talking_head_grid_set_white_with_p_two_soon.mpg", 3, "remuxed from mpeg"),
    ("mov", "sports_golf_swing_iphone_portrait.mov", 3, "in place"),
])
def test_a_real_recording_in_its_own_container_renders(rrepo, tmp_path, name, file, seconds, kept_as):
    video, _ = render(rrepo, name, SHARED / file, seconds)
    info = probe(video)
    assert (info.width, info.height) == (1080, 1920)
    assert abs(info.duration - min(seconds, probe(SHARED / file).duration)) < 0.5
    assert not_black(video, seconds / 2, tmp_path / "mid.png") > 10, "the picture is there"
    source = ingest_meta(rrepo, name)["sources"][0]
    assert source["kept"] == kept_as
    if kept_as == "in place":
        assert source["name"] is None and not copied(rrepo, SHARED / file)


def test_a_webm_upload_renders_in_place(rrepo, tmp_path):
    webm = tmp_path / "clip.webm"
    ff("-f", "lavfi", "-i", "testsrc2=s=640x360:r=30:d=3", "-f", "lavfi", "-i", "sine=f=440:d=3",
       "-c:v", "libvpx", "-b:v", "1M", "-c:a", "libopus", str(webm))
    video, _ = render(rrepo, "webm", webm, 3)
    assert abs(probe(video).duration - 3) < 0.5
    assert not_black(video, 1.5, tmp_path / "mid.png") > 10
    assert ingest_meta(rrepo, "webm")["sources"][0]["kept"] == "in place"
    assert not copied(rrepo, webm), "the WebM was copied into the store"


# -- what an API's upload takes (afx push) -------------------------------------------------------
def test_for_upload_sends_mp4_as_it_is_and_makes_the_rest_fit(tmp_path, media):
    from afx.media.normalize import CannotSend, for_upload

    assert for_upload(media["plain"], tmp_path / "out", "plain.mp4") == (media["plain"], "")
    mkv = tmp_path / "obs.mkv"
    ff("-i", str(media["plain"]), "-c", "copy", str(mkv))
    sent, how = for_upload(mkv, tmp_path / "out", "obs.mkv")
    assert how.startswith("remuxed into MP4") and probe(sent).format.startswith("mov")
    webm = tmp_path / "clip.webm"
    ff("-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=2", "-c:v", "libvpx", str(webm))
    sent, how = for_upload(webm, tmp_path / "out", "clip.webm")
    assert how.startswith("transcoded to H.264/AAC") and probe(sent).video_codec == "h264"
    big = tmp_path / "big.mp4"
    shutil.copy(media["plain"], big)
    with open(big, "r+b") as fh:
        fh.truncate(30 * 1024 * 1024)  # sparse: over a 20 MB cap
    sent, how = for_upload(big, tmp_path / "out", "big.mp4", max_bytes=20 * 1024 * 1024)
    assert "over the API" in how and sent.stat().st_size < 20 * 1024 * 1024
    with pytest.raises(CannotSend) as info:
        for_upload(big, tmp_path / "out", "big.mp4", max_bytes=100_000)  # 4 s in 100 KB: not watchable
    assert "cut it first" in str(info.value) and "big.mp4" in str(info.value)
