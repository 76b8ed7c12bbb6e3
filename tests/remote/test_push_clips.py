"""afx push of a job with clips to an API without them (issue 14): the job runs here up to
its clips, each clip is cut into a file of its own (afx/media/cutclip.py) and pushed as an
upload job <job>-NN. Against the in-memory API of fakeapi.py, as one that is not afx serve."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from afx.media.cutclip import cut
from afx.media.ffmpeg import MediaError, ffmpeg_exe
from afx.media.probe import probe
from afx.remote import events as ev
from afx.times import ManualClock
from tests.conftest import SpecRepo
from tests.remote.fakeapi import FakeApi
from tests.remote.test_push import lock, of, run

PIPELINE = "tests.remote.clippipe:PIPELINE"


def red_then_blue(path: Path, red: float, blue: float) -> Path:
    """`red` seconds of red then `blue` of blue, a tone under it, a keyframe every 2 s."""
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"color=c=red:s=160x120:r=30:d={red}",
                    "-f", "lavfi", "-i", f"color=c=blue:s=160x120:r=30:d={blue}",
                    "-f", "lavfi", "-i", f"sine=f=440:r=48000:d={red + blue}",
                    "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-map", "2:a",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "60", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "64k", str(path)], check=True)
    return path


def first_frame(path: Path) -> tuple[int, int, int]:
    """The first frame's middle pixel (RGB)."""
    raw = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-frames:v", "1",
                          "-vf", "crop=2:2", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    return raw[0], raw[1], raw[2]


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    return red_then_blue(tmp_path_factory.mktemp("rec") / "vod.mp4", 4.5, 11.5)


def test_a_cut_starts_on_its_frame_not_on_a_keyframe(recording, tmp_path):
    out = cut(recording, 4.5, 7.5, tmp_path / "clip.mp4", label="vod.mp4")
    info = probe(out)
    assert abs(info.duration - 3.0) < 0.1 and info.has_audio and (info.width, info.height) == (160, 120)
    r, g, b = first_frame(out)
    assert b > 200 and r < 60, "the first frame is the first blue one (a stream copy starts on the red keyframe)"
    assert not list(tmp_path.glob(".*.part"))
    with pytest.raises(MediaError, match="16.0 s long"):
        cut(recording, 20, 23, tmp_path / "late.mp4", label="vod.mp4")
    with pytest.raises(MediaError, match="cannot cut 5-4 s"):
        cut(recording, 5, 4, tmp_path / "backwards.mp4", label="vod.mp4")


def write_vod(repo: SpecRepo, recording: Path, clips: str = "{count: 3, min: 3, max: 5}") -> None:
    repo.write("media/vod.mp4", recording.read_bytes())
    repo.write("vod.yaml", "entry: upload\nfile: media/vod.mp4\ntopic: Stream\ntone: hype\nplatforms: [tiktok]\n"
                           f"clips: {clips}\n")


def test_a_job_with_clips_goes_to_an_api_without_them_as_its_clips_cut_here(repo, recording, monkeypatch):
    monkeypatch.setenv("AFX_PIPELINE", PIPELINE)
    write_vod(repo, recording)
    repo.write("promo.yaml", "entry: compose\ntopic: Launch\n")
    clock = ManualClock()
    api = FakeApi(clock, afx=False)
    outcome, seen = run(repo, api, clock)
    assert [(i.name, i.status) for i in outcome.items] == [
        ("promo", "complete"), ("vod-01", "complete"), ("vod-02", "complete"), ("vod-03", "complete")]

    # Its stages up to its clips ran here: out/vod/clips.json says what was taken.
    assert [e for _, e in of(seen, ev.Analysing, "vod")] == [ev.Analysing("vod", "3 clips, after analysis")]
    assert [e.stage for _, e in of(seen, ev.LocalStage, "vod") if e.status == "done"] == [
        "ingest", "analyze", "moments", "clips"]
    taken = json.loads((repo.root / "out" / "vod" / "clips.json").read_text())["clips"]
    assert [(c["name"], c["start"], c["end"]) for c in taken] == [
        ("vod-01", 0.5, 3.5), ("vod-02", 4.5, 7.5), ("vod-03", 8.5, 11.5)]

    # Each clip was cut into a file of its own and sent as an upload job of the job's other fields.
    cuts = [e for _, e in of(seen, ev.Cut)]
    assert [(e.job, e.start, e.end, e.current) for e in cuts] == [
        ("vod-01", 0.5, 3.5, False), ("vod-02", 4.5, 7.5, False), ("vod-03", 8.5, 11.5, False)]
    for e in cuts:
        assert e.file.startswith(".afx/push/clips/vod/") and (repo.root / e.file).is_file()
        assert abs(probe(repo.root / e.file).duration - 3.0) < 0.1
    assert first_frame(repo.root / cuts[1].file)[2] > 200  # vod-02 starts on blue, at 4.5 s
    bodies = {name: api.bodies[i.job_id] for i in outcome.items for name in [i.name]}
    assert bodies["promo"] == {"entry": "compose", "topic": "Launch", "format": "short", "durationMins": 1,
                               "platforms": [], "publishMode": "immediate", "staging": False}
    for name in ("vod-01", "vod-02", "vod-03"):
        body = bodies[name]
        assert body == {"entry": "upload", "fileId": body["fileId"], "topic": "Stream", "tone": "hype",
                        "format": "short", "durationMins": 1, "platforms": ["tiktok"], "publishMode": "immediate",
                        "staging": False}
    assert len({b["fileId"] for b in bodies.values() if "fileId" in b}) == 3 and len(api.files) == 3
    assert [Path(api.files[bodies[f"vod-0{n}"]["fileId"]]).name for n in (1, 2, 3)] == [
        Path(e.file).name for e in cuts]
    assert (repo.root / "out" / "vod-01" / "result.json").is_file()
    data = lock(repo)
    assert data["jobs"]["vod"]["clips"] == ["vod-01", "vod-02", "vod-03"]  # the local run's block
    assert data["jobs"]["vod-02"]["remote"][api.api]["jobId"] == outcome.items[2].job_id

    # Pushing again cuts, uploads and submits nothing: the same files, the same jobs.
    calls = len(api.calls)
    again, seen = run(repo, api, clock)
    assert [i.job_id for i in again.items] == [i.job_id for i in outcome.items]
    assert all(e.current for _, e in of(seen, ev.Cut)) and len(of(seen, ev.Cut)) == 3
    assert [c.method for c in api.calls[calls:] if c.method in ("UPLOAD", "POST")] == []
    assert {e.status for _, e in of(seen, ev.LocalStage, "vod")} == {"cached"}


def test_a_job_with_clips_that_fails_here_fails_alone(repo, recording, monkeypatch):
    monkeypatch.setenv("AFX_PIPELINE", PIPELINE)
    monkeypatch.setenv("AFX_TEST_FAIL", "moments")
    write_vod(repo, recording)
    repo.write("promo.yaml", "entry: compose\ntopic: Launch\n")
    clock = ManualClock()
    api = FakeApi(clock, afx=False)
    outcome, seen = run(repo, api, clock)
    assert [(i.name, i.status) for i in outcome.items] == [("promo", "complete"), ("vod", "failed")]
    assert outcome.failed == [outcome.items[1]] and "moments failed on purpose" in outcome.items[1].error
    assert [e.status for _, e in of(seen, ev.Failed, "vod")] == ["failed"]
    assert len(api.jobs) == 1 and not api.files


def test_to_afx_serve_a_job_with_clips_goes_as_it_is(repo, recording, monkeypatch):
    monkeypatch.setenv("AFX_PIPELINE", PIPELINE)
    write_vod(repo, recording)
    clock = ManualClock()
    api = FakeApi(clock, afx=True)
    outcome, seen = run(repo, api, clock, wait=False)
    [item] = outcome.items
    assert item.name == "vod" and not of(seen, ev.Analysing) and not of(seen, ev.Cut)
    body = api.bodies[item.job_id]
    assert body["clips"] == {"count": 3, "min": 3, "max": 5} and body["entry"] == "upload"
    assert not (repo.root / "out" / "vod").exists() and not (repo.root / ".afx" / "push" / "clips").exists()


def test_afx_push_says_what_it_does_here_for_a_job_with_clips():
    import io

    from afx.cli.commands.push import Show
    from afx.cli.env import Environment

    err = io.StringIO()
    show = Show(Environment(stdout=io.StringIO(), stderr=err, stdout_isatty=False, stderr_isatty=False, environ={}))
    for event in (ev.Analysing("vod", "3 clips, after analysis"), ev.LocalStage("vod", "ingest", "running"),
                  ev.LocalStage("vod", "moments", "done", 2.54), ev.LocalStage("vod", "analyze", "cached"),
                  ev.Note("vod", "afx.clips: vod: 2 of the 3 clips asked for"),
                  ev.Cut("vod-01", ".afx/push/clips/vod/vod-01.ab.mp4", 0.5, 3.5, False),
                  ev.Cut("vod-02", ".afx/push/clips/vod/vod-02.cd.mp4", 4.5, 7.5, True),
                  ev.Following("vod", ("job_1-01", "job_1-02"))):
        show(event)
    assert err.getvalue().splitlines() == [
        "vod: this API has no clips: running the job here up to its clips (3 clips, after analysis)",
        "vod: moments: done in 2.5s",
        "vod: analyze: cached",
        "vod: afx.clips: vod: 2 of the 3 clips asked for",
        "vod-01: cut 0.5-3.5 s into .afx/push/clips/vod/vod-01.ab.mp4",
        "vod-02: cut already 4.5-7.5 s into .afx/push/clips/vod/vod-02.cd.mp4",
        "vod: its clip jobs: job_1-01, job_1-02",
    ]
