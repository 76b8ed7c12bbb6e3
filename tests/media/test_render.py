"""Real renders through `afx run --until render`: every output is measured, not trusted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from afx.media.measure import frame_at, loudness, stream_durations
from afx.media.probe import probe
from afx.media.profiles import Encode, encode_for, group, profiles_for
from tests.conftest import SpecRepo
from tests.mediafix import ff


@pytest.fixture
def mrepo(tmp_path, media, monkeypatch) -> SpecRepo:
    monkeypatch.delenv("AFX_PIPELINE", raising=False)
    repo = SpecRepo(tmp_path / "repo")
    (repo.root / "media").mkdir()
    for name in ("story", "plain", "silent", "vertical", "rotated", "text", "truncated", "audio-only", "empty"):
        shutil.copy(media[name], repo.root / "media" / f"{name}.mp4")
    return repo


def run_until_render(repo: SpecRepo, *targets: str):
    r = repo.afx("run", "--until", "render", *targets)
    return r


def grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


def check_video(path: Path, size: tuple[int, int], seconds: float, *, audio_level: bool = True) -> dict:
    info = probe(path)
    assert (info.width, info.height) == size
    assert info.fps == 30.0
    assert abs(info.duration - seconds) < 0.5, (info.duration, seconds)
    streams = stream_durations(path)
    assert abs(streams["video"] - streams["audio"]) < 0.04, streams
    if audio_level:
        level = loudness(path)
        assert abs(level["integrated"] + 14) <= 0.5, level
        assert level["true_peak"] <= -1.0, level
    return {"probe": info, "streams": streams}


def test_center_short_with_title(mrepo, tmp_path):
    mrepo.write("a.yaml", "entry: upload\nfile: media/story.mp4\ntopic: Clutch of the week\nplatforms: [tiktok]\n"
                          "render: {seconds: 6}\n")
    mrepo.write("b.yaml", "entry: upload\nfile: media/story.mp4\ntopic: Clutch of the week\nplatforms: [tiktok]\n"
                          "render: {seconds: 6, title: {enabled: false}}\n")
    r = run_until_render(mrepo)
    assert r.code == 0, r.text
    video = mrepo.root / "out" / "a" / "video.mp4"
    check_video(video, (1080, 1920), 6.0)
    titled = grey(frame_at(video, 1.0, tmp_path / "a.png"))
    plain = grey(frame_at(mrepo.root / "out" / "b" / "video.mp4", 1.0, tmp_path / "b.png"))
    changed = np.abs(titled - plain) > 40
    rows = np.where(changed.any(axis=1))[0]
    cols = np.where(changed.any(axis=0))[0]
    assert changed.mean() > 0.01, "the title is drawn"
    assert rows.min() >= 250 and rows.max() <= 1520, "inside the vertical safe zone"
    assert cols.min() >= 60 and cols.max() <= 1020
    assert (titled[rows.min():rows.max(), cols.min():cols.max()] > 230).mean() > 0.02, "white text"
    late = grey(frame_at(video, 5.0, tmp_path / "late.png"))
    assert late.std() > 5, "not black"


def test_fit_layout_blurs_above_and_below(mrepo, tmp_path):
    mrepo.write("a.yaml", "entry: upload\nfile: media/plain.mp4\ntopic: x\n"
                          "render: {layout: fit, title: {enabled: false}}\n")
    assert run_until_render(mrepo).code == 0
    frame = grey(frame_at(mrepo.root / "out" / "a" / "video.mp4", 2.0, tmp_path / "f.png"))
    lap = np.abs(np.diff(frame, 2, axis=1))
    assert lap[:500].mean() * 3 < lap[760:1160].mean(), "blurred background, sharp fitted picture"
    check_video(mrepo.root / "out" / "a" / "video.mp4", (1080, 1920), 4.0)


def test_split_layout_puts_the_facecam_on_top(mrepo, tmp_path):
    # a source whose top-left quarter is a red "camera"
    ff("-i", str(mrepo.root / "media" / "plain.mp4"), "-vf", "drawbox=x=0:y=0:w=160:h=90:color=red:t=fill",
       "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(mrepo.root / "media" / "cam.mp4"))
    mrepo.write("a.yaml", "entry: upload\nfile: media/cam.mp4\ntopic: x\n"
                          "render: {layout: split, facecam: [0, 0, 0.25, 0.25], title: {enabled: false}}\n")
    assert run_until_render(mrepo).code == 0
    rgb = np.asarray(Image.open(frame_at(mrepo.root / "out" / "a" / "video.mp4", 1.0, tmp_path / "s.png")))
    top = rgb[:600].reshape(-1, 3).astype(int)
    red = (top[:, 0] > 180) & (top[:, 1] < 80) & (top[:, 2] < 80)
    assert red.mean() > 0.8, "the facecam fills the top panel"
    bottom = rgb[700:].reshape(-1, 3).astype(int)
    assert ((bottom[:, 0] > 180) & (bottom[:, 1] < 80) & (bottom[:, 2] < 80)).mean() < 0.3


def test_track_layout_renders(mrepo):
    mrepo.write("a.yaml", "entry: upload\nfile: media/story.mp4\ntopic: x\nrender: {layout: track, seconds: 5}\n")
    r = run_until_render(mrepo)
    assert r.code == 0, r.text
    check_video(mrepo.root / "out" / "a" / "video.mp4", (1080, 1920), 5.0)


def test_long_format_and_vertical_or_rotated_sources(mrepo, tmp_path):
    mrepo.write("a.yaml", "entry: upload\nfile: media/plain.mp4\ntopic: x\nformat: long\ndurationMins: 2\n"
                          "platforms: [youtube]\n")
    mrepo.write("b.yaml", "entry: upload\nfile: media/rotated.mp4\ntopic: Rotated\n")
    r = run_until_render(mrepo)
    assert r.code == 0, r.text
    check_video(mrepo.root / "out" / "a" / "video.mp4", (1920, 1080), 4.0)
    check_video(mrepo.root / "out" / "b" / "video.mp4", (1080, 1920), 4.0)
    frame = grey(frame_at(mrepo.root / "out" / "b" / "video.mp4", 2.0, tmp_path / "r.png"))
    assert frame[800:1100].std() > 10, "the rotated source is shown upright, not black"


def test_source_without_audio_gets_a_silent_track(mrepo):
    mrepo.write("a.yaml", "entry: upload\nfile: media/silent.mp4\ntopic: x\n")
    assert run_until_render(mrepo).code == 0
    info = check_video(mrepo.root / "out" / "a" / "video.mp4", (1080, 1920), 4.0, audio_level=False)
    assert info["probe"].has_audio


def test_multi_clip_fetch_keeps_source_order(mrepo, server, media):
    base, root, _ = server
    shutil.copy(media["plain"], root / "one.mp4")
    shutil.copy(media["story"], root / "two.mp4")
    mrepo.write("afx.yaml", "version: 1\nfetch: {allow_hosts: [127.0.0.1]}\n")
    mrepo.write("a.yaml", f"urls: ['{base}/one.mp4', '{base}/two.mp4']\ntopic: Two clips\n"
                          "render: {seconds: 40, title: {enabled: false}}\n")
    r = run_until_render(mrepo)
    assert r.code == 0, r.text
    check_video(mrepo.root / "out" / "a" / "video.mp4", (1080, 1920), 28.0)


def test_platforms_with_equal_settings_render_once():
    shorts = profiles_for("short", ["tiktok", "youtube", "instagram"])
    assert len(group(shorts, 45.0)) == 1
    longs = profiles_for("long", ["youtube", "instagram"])
    groups = group(longs, 15 * 60)
    assert len(groups) == 2, "Instagram's 300 MB cap needs a lower bitrate for 15 minutes"
    insta = encode_for(longs[1], 15 * 60)
    assert insta.maxrate * 15 * 60 / 8 + insta.audio_bitrate * 15 * 60 / 8 < 300 * 1024 * 1024


def test_two_encodes_in_one_run(tmp_path, media):
    from afx.media.highlights import Segment
    from afx.media.render import Output, RenderJob, Source, render

    info = probe(media["plain"])
    outs = [Output(Encode(1080, 1920, 30, 8_000_000, 192_000), tmp_path / "a.mp4"),
            Output(Encode(1080, 1920, 30, 1_000_000, 128_000), tmp_path / "b.mp4")]
    job = RenderJob([Source(media["plain"], info)], [Segment(0, 0.0, 3.0)], outs)
    render(job, tmp_path)
    a, b = probe(tmp_path / "a.mp4"), probe(tmp_path / "b.mp4")
    assert abs(a.duration - 3) < 0.1 and abs(b.duration - 3) < 0.1
    assert b.size < a.size


@pytest.mark.parametrize("spec,message", [
    ("entry: upload\nfile: media/text.mp4\n", "media/text.mp4: not a video ffmpeg can read"),
    ("entry: upload\nfile: media/truncated.mp4\n", "media/truncated.mp4: not a video ffmpeg can read"),
    ("entry: upload\nfile: media/audio-only.mp4\n", "media/audio-only.mp4: has no video stream"),
    ("entry: upload\nfile: media/empty.mp4\n", "media/empty.mp4: file is empty (0 bytes)"),
    ("url: http://169.254.169.254/latest/meta-data/\n", "link-local address"),
    ("url: 'http://[::ffff:127.0.0.1]/clip.mp4'\n", "loopback (in IPv6)"),
    ("entry: upload\nfileId: file_123\n", "fileId 'file_123' names a file uploaded to an AuraFlux server"),
])
def test_bad_sources_fail_the_stage_clearly(mrepo, spec, message):
    mrepo.write("a.yaml", spec + "topic: x\n")
    r = run_until_render(mrepo)
    assert r.code == 3, r.text
    assert "a: ingest" in r.err and message in r.err, r.err
    assert not (mrepo.root / "out" / "a" / "video.mp4").exists()


def test_render_metadata_records_the_plan(mrepo):
    mrepo.write("a.yaml", "entry: upload\nfile: media/story.mp4\ntopic: x\nrender: {seconds: 6}\n")
    r = mrepo.afx("run", "--until", "render", "--json")
    assert r.code == 0
    events = [json.loads(line) for line in r.out.splitlines()]
    done = [e["stage"] for e in events if e.get("status") == "done"]
    assert done == ["ingest", "analyze", "edit", "script", "render"]


def store_bytes(repo) -> int:
    return sum(p.stat().st_blocks * 512 for p in (repo.root / ".afx" / "objects").rglob("*") if p.is_file())


def test_a_local_file_over_the_apis_500_mb_renders_read_in_place(mrepo, media):
    # 500 MB is the API's upload cap, not a local limit (issue 12): a VOD is many GB.
    big = mrepo.root / "media" / "big.mp4"
    shutil.copy(media["plain"], big)
    with open(big, "r+b") as fh:
        fh.truncate(501 * 1024 * 1024)  # sparse zeros after the MP4: 501 MB on paper
    mrepo.write("a.yaml", "entry: upload\nfile: media/big.mp4\ntopic: x\nrender: {title: {enabled: false}}\n")
    r = run_until_render(mrepo)
    assert r.code == 0, r.text
    check_video(mrepo.root / "out" / "a" / "video.mp4", (1080, 1920), 4.0)
    assert store_bytes(mrepo) < 20 * 1024 * 1024, "the source was copied into the store"


def limited(loudness: float, knee: float, squash: float):
    """A modelled limiter: output level follows the gain up to `knee` dB, then rises only
    `squash` dB per dB (the harder it is driven, the more it takes away)."""
    def level_at(gain: float) -> float:
        return loudness + min(gain, knee) + squash * max(gain - knee, 0.0)
    return level_at


@pytest.mark.parametrize("squash", [0.9, 0.5, 0.25])
def test_gain_search_lands_on_the_target_through_a_limiter(squash):
    from afx.media.render import TARGET_LUFS, gain_search

    calls: list[float] = []
    level_at = limited(-20.0, 3.0, squash)

    def measured(gain: float) -> float:
        calls.append(gain)
        return level_at(gain)

    gain = gain_search(measured, TARGET_LUFS + 20.0)
    assert abs(level_at(gain) - TARGET_LUFS) <= 0.2, (gain, level_at(gain), calls)
    assert len(calls) <= 5
    # one correction alone (the old way) falls short whenever the limiter squashes
    once = TARGET_LUFS + 20.0 + (TARGET_LUFS - level_at(TARGET_LUFS + 20.0))
    assert squash > 0.8 or abs(level_at(once) - TARGET_LUFS) > 0.3


def test_gain_search_stops_at_the_first_pass_when_it_is_already_there():
    from afx.media.render import gain_search

    calls: list[float] = []
    assert gain_search(lambda g: calls.append(g) or -14.1, 6.0) == 6.0 and calls == [6.0]


def test_gain_search_does_not_measure_the_same_gain_twice():
    from afx.media.render import gain_search

    calls: list[float] = []
    # a limiter that gives nothing more, however hard it is driven: the search stops at its cap
    gain_search(lambda g: calls.append(g) or -30.0, 6.0)
    assert len(calls) == len(set(calls)) and max(calls) <= 6.0 + 24
