"""Clips from a recording with real speech (issue 14): the real moments and clips stages on a
generated source whose two planted moments (a bang, then excited shouting over calm talk)
are what a clip picker must find; cuts are checked against recognised word times."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest

from tests.conftest import SpecRepo
from tests.mediafix import ff

CALM = ["Welcome back to the stream, everyone.", "Today we are trying a new route through the map.",
        "I think the left side is usually quieter at this point.", "Let me check my inventory before we move on.",
        "We have enough supplies for a few more rounds.", "The team should be rotating towards the middle soon.",
        "Keep an eye on the timer in the corner.", "I will grab the upgrade on the way there."]
EXCITED = "Oh my god! No way! Did you see that? That was insane!"
BANGS = (22.0, 55.0)  # seconds: where each planted moment's bang is
SECONDS = 78.0


def _voice(text: str, tone: str):
    import numpy as np

    from afx.media.tts import Synthesis

    synth = Synthesis(None, tone)
    synth.say(text)
    return np.frombuffer(bytes(synth.samples), dtype=np.int16).astype(np.float32) / 32768.0, synth.words


def _stream(path: Path) -> list:
    """SECONDS of calm talk over a quiet game bed; at each bang, a burst of noise and
    shouting, loud, for a few seconds. Returns the words spoken, as they were placed."""
    import numpy as np

    from afx.media.tts import SAMPLE_RATE as rate
    from afx.media.words import Word

    spoken: list[Word] = []
    calm = [_voice(t, "educational") for t in CALM]
    shout, shout_words = _voice(EXCITED, "hype")
    rng = np.random.default_rng(7)
    mix = rng.normal(0.0, 0.01, int(SECONDS * rate)).astype(np.float32)  # the game's bed
    t, k = 1.0, 0
    while t < SECONDS - 4:
        if any(b - 1.5 < t + 4 and t < b + 9 for b in BANGS):
            t = next(b + 9 for b in BANGS if b - 1.5 < t + 4 and t < b + 9)
            continue
        voice, words = calm[k % len(calm)]
        k += 1
        i = int(t * rate)
        n = min(len(voice), len(mix) - i)
        mix[i:i + n] += 0.25 * voice[:n]
        spoken += [Word(w.text, i / rate + w.start, i / rate + w.end) for w in words]
        t += len(voice) / rate + 0.8
    for bang in BANGS:
        i = int(bang * rate)
        burst = rng.normal(0.0, 0.5, int(0.7 * rate)).astype(np.float32) * np.linspace(1, 0.2, int(0.7 * rate))
        mix[i:i + burst.size] += burst
        j = i + burst.size + int(0.2 * rate)
        mix[j:j + shout.size] += 0.9 * shout[:len(mix) - j]
        spoken += [Word(w.text, j / rate + w.start, j / rate + w.end) for w in shout_words]
    pcm = (np.clip(mix, -1, 1) * 32767).astype(np.int16)
    wav = path.with_suffix(".wav")
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    ff("-f", "lavfi", "-i", f"testsrc2=s=480x270:r=30:d={SECONDS}", "-i", str(wav), "-c:v", "libx264",
       "-preset", "ultrafast", "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-shortest", str(path))
    wav.unlink()
    return sorted(spoken, key=lambda w: w.start)


@pytest.fixture(scope="module")
def vod(tmp_path_factory):
    repo = SpecRepo(tmp_path_factory.mktemp("clips") / "repo")
    (repo.root / "media").mkdir(parents=True)
    repo.spoken = _stream(repo.root / "media" / "stream.mp4")  # type: ignore[attr-defined]
    return repo


def _spec(repo, clips: str, render: str = "") -> None:
    repo.write("vod.yaml", "entry: upload\nfile: media/stream.mp4\ntopic: Stream night highlights\ntone: hype\n"
                           f"clips: {clips}\n{render}")


def test_the_planted_moments_become_the_clips_cut_between_words(vod):
    _spec(vod, "{count: 2, min: 6, max: 14}")
    r = vod.afx("run", "--until", "clips")
    assert r.code == 0, r.text
    doc = json.loads((vod.root / "out" / "vod" / "clips.json").read_text())
    clips = doc["clips"]
    assert [c["name"] for c in clips] == ["vod-01", "vod-02"]
    covered = sorted(b for b in BANGS for c in clips if c["start"] + 1.0 <= b <= c["end"] - 1.0)
    assert covered == list(BANGS), clips  # each clip holds one bang, with its set-up before it
    spans = sorted((c["start"], c["end"]) for c in clips)
    assert spans[0][1] <= spans[1][0], "clips do not overlap"
    assert all(6 - 1e-6 <= c["end"] - c["start"] <= 14 + 1e-6 for c in clips)
    # No cut inside a word: against the words as they were spoken (the voice's own timings;
    # Whisper's, which the cuts were placed by, stretch a word after a pause back into it).
    for c in clips:
        for t in (c["start"], c["end"]):
            inside = [w for w in vod.spoken if w.start - 0.05 < t < w.end + 0.05]
            assert not inside, f"{c['name']} cut at {t} inside {inside}"
        assert c["why"] and c["signals"]["level_db"] > 6, c  # explained by its loudness jump
    assert all(cand["why"] for cand in doc["candidates"]) and len(doc["candidates"]) >= 3
    # The parent's plan now lists its clip jobs, still to run past clips.
    plan = json.loads(vod.afx("plan", "--json").out)
    assert [j["job"] for j in plan["jobs"]] == ["vod", "vod-01", "vod-02"]


def test_render_segments_pin_a_clip_first(vod):
    _spec(vod, "{count: 2, min: 6, max: 14}", "render:\n  segments:\n    - {start: 30, end: 38}\n")
    r = vod.afx("run", "--until", "clips")
    assert r.code == 0, r.text
    clips = json.loads((vod.root / "out" / "vod" / "clips.json").read_text())["clips"]
    assert (clips[0]["start"], clips[0]["end"], clips[0].get("pinned")) == (30.0, 38.0, 0)
    assert "pinned by hand" in clips[0]["why"]
    assert clips[1]["end"] <= 30.0 or clips[1]["start"] >= 38.0


def test_a_clip_job_renders_its_clip(vod):
    _spec(vod, "{count: 1, min: 6, max: 10}")
    r = vod.afx("run")
    assert r.code == 0, r.text
    clip = json.loads((vod.root / "out" / "vod" / "clips.json").read_text())["clips"][0]
    result = json.loads((vod.root / "out" / "vod-01" / "result.json").read_text())
    (segment,) = result["afx"]["cut"]["segments"]
    assert (segment["start"], segment["end"]) == pytest.approx((clip["start"], clip["end"]), abs=0.02)
    from afx.media.probe import probe

    info = probe(vod.root / "out" / "vod-01" / result["videoUrl"])
    extra = result["afx"].get("voice", {})
    expected = clip["end"] - clip["start"] + extra.get("preroll", 0) + extra.get("postroll", 0)
    assert info.duration == pytest.approx(expected, abs=0.15)
    assert (info.width, info.height) == (1080, 1920)
    # Its title quotes the clip (the shouting after the bang), not only the topic all clips share.
    title = result["publishCopy"]["title"]
    assert title.endswith(" | Stream night highlights") and title != "Stream night highlights", title


def test_a_source_shorter_than_one_clip_is_one_clip_with_a_warning(tmp_path, media):
    repo = SpecRepo(tmp_path / "repo")
    repo.write("media/short.mp4", media["plain"].read_bytes())
    repo.write("vod.yaml", "entry: upload\nfile: media/short.mp4\ntopic: x\nclips: {count: 3, min: 15}\n")
    r = repo.afx("run", "--until", "clips")
    assert r.code == 0, r.text
    assert "shorter than one clip" in r.err and "one clip of the whole source" in r.err
    (clip,) = json.loads((repo.root / "out" / "vod" / "clips.json").read_text())["clips"]
    assert clip["start"] == 0.0 and clip["end"] == pytest.approx(4.0, abs=0.05)


def test_a_silent_recording_is_cut_by_its_picture(tmp_path):
    """A screen recording with no sound track: its one busy stretch (30-40 s) is the clip."""
    repo = SpecRepo(tmp_path / "repo")
    (repo.root / "media").mkdir(parents=True)
    ff("-f", "lavfi", "-i", "color=c=0x203040:s=480x270:r=30:d=30", "-f", "lavfi", "-i", "testsrc2=s=480x270:r=30:d=10",
       "-f", "lavfi", "-i", "color=c=0x203040:s=480x270:r=30:d=30",
       "-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]", "-map", "[v]", "-c:v", "libx264",
       "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p", str(repo.root / "media" / "screen.mp4"))
    repo.write("screen.yaml", "entry: upload\nfile: media/screen.mp4\ntopic: x\nclips: {count: 1, min: 6, max: 10}\n")
    r = repo.afx("run", "--until", "clips")
    assert r.code == 0, r.text
    (clip,) = json.loads((repo.root / "out" / "screen" / "clips.json").read_text())["clips"]
    overlap = min(clip["end"], 40.0) - max(clip["start"], 30.0)
    assert 6 - 1e-6 <= clip["end"] - clip["start"] <= 10 + 1e-6 and overlap >= 5, clip


@pytest.mark.parametrize("low, high", [(15, 45), (20, 20), (30, 32)])
def test_a_moment_at_the_very_end_still_gets_a_full_clip(low, high):
    from afx.media import moments
    from afx.media.analysis import Analysis

    energy = [-30.0] * 1200
    energy[1194:] = [-8.0] * 6  # a bang in the last three seconds of ten minutes
    a = Analysis(duration=600.0, energy_db=energy, keyframes=[i * 2.0 for i in range(300)], motion=[0.01] * 300,
                 motion_x=[0.5] * 300)
    pool, _ = moments.find([a], moments.Settings(1, low, high), lambda source, start, end: [])
    best = pool[0]
    assert best.peak <= 600.0 and best.end == pytest.approx(600.0, abs=0.05)
    assert low - 1e-6 <= best.end - best.start <= high + 1e-6 and best.start <= 597.0


def test_every_pinned_part_is_a_clip_even_beyond_count():
    from afx.media.moments import Moment, choose

    pins = [Moment(0, 5.0 + 20 * k, 20.0 * k, 20.0 * k + 10, 0.0) for k in range(3)]
    auto = [Moment(0, 205.0, 200.0, 215.0, 3.0, 3.0)]
    taken, left = choose(auto, 2, 0.0, pins)
    assert [p.pinned for p in taken] == [0, 1, 2] and left[0].why.startswith("scored below")
