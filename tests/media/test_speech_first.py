"""The source's speech comes first (issue 12, part 1): the voice never talks over it, the
captions give it word for word, cuts do not fall inside a word or a sentence."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from afx.media.highlights import Segment
from afx.media.speech import GUARD, PREROLL_MAX, place, snap, spans
from afx.media.tts import Word
from tests.conftest import SpecRepo

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "media"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/media is not beside this checkout")


def said(text: str, start: float, gap: float = 0.1, each: float = 0.3) -> list[Word]:
    out, t = [], start
    for token in text.split():
        out.append(Word(token, round(t, 3), round(t + each, 3)))
        t += each + gap
    return out


def clear_of(voice: tuple[float, float], heard: list[Word], shift: float = 0.0) -> bool:
    return all(voice[1] + GUARD - 1e-6 <= w.start + shift or voice[0] >= w.end + shift + GUARD - 1e-6 for w in heard)


def test_spans_join_short_pauses():
    assert spans(said("a b c", 1.0) + said("d e", 5.0)) == [(1.0, 2.1), (5.0, 5.7)]


def test_the_hook_goes_before_the_first_word_when_there_is_room():
    heard = said("then he speaks", 4.0)
    p = place(2.0, 1.5, heard, 20.0, 60.0)
    assert p.preroll == 0 and p.hook_at is not None and clear_of((p.hook_at, p.hook_at + 2.0), heard)
    assert p.cta_at is not None and clear_of((p.cta_at, p.cta_at + 1.5), heard)
    assert p.cta_at + 1.5 <= 20.0


def test_speech_from_the_first_frame_gets_a_pre_roll_and_the_end_a_post_roll():
    heard = said("talking from the start to the very end of the clip", 0.0, each=0.5, gap=0.05)
    seconds = heard[-1].end + 0.1
    p = place(2.5, 2.0, heard, seconds, 60.0)
    assert 0 < p.preroll <= PREROLL_MAX and p.hook_at is not None
    assert clear_of((p.hook_at, p.hook_at + 2.5), heard, shift=p.preroll)
    assert p.postroll > 0 and p.cta_at is not None and clear_of((p.cta_at, p.cta_at + 2.0), heard, shift=p.preroll)
    assert p.cta_at + 2.0 <= p.preroll + seconds + p.postroll
    assert any("opening frame" in n for n in p.notes) and any("last frame" in n for n in p.notes)


def test_a_real_pause_takes_the_call_to_action_when_the_source_speaks_to_the_end():
    heard = said("first part of it all", 2.0) + said("and the rest runs to the end", 12.0)
    seconds = heard[-1].end + 0.05
    p = place(1.2, 1.5, heard, seconds, seconds + 0.5)  # no room for a post-roll under the limit
    assert p.postroll == 0 and p.cta_at is not None and 4.0 < p.cta_at < 12.0
    assert clear_of((p.cta_at, p.cta_at + 1.5), heard)


def test_without_room_a_part_is_left_out_with_the_reason():
    heard = said("no pause anywhere in this long stretch of talk", 0.0, each=0.6, gap=0.05)
    seconds = heard[-1].end
    p = place(6.0, 3.0, heard, seconds, seconds + 1.0)  # a 6 s hook cannot have a 4 s pre-roll
    assert p.hook_at is None and p.cta_at is None and p.extra == 0
    assert sum(n.startswith("no room") for n in p.notes) == 2


def test_cuts_move_onto_sentence_boundaries_and_never_inside_a_word():
    words = said("This is the set up.", 10.0) + said("Then the big moment happens here.", 12.0) + \
        said("And it ends.", 16.0)
    # a highlight chosen from the sound: 12.5 (inside "the") to 14.0 (inside the sentence)
    out = snap([Segment(0, 12.5, 14.0)], [words], [30.0], 60.0, 30)
    assert len(out) == 1
    seg = out[0]
    assert seg.start <= words[5].start, "the sentence it cut into is kept from its first word"
    for w in words:
        assert not (w.start < seg.start < w.end) and not (w.start < seg.end < w.end), (seg, w)
    ends = [w for w in words if w.end <= seg.end]
    assert ends[-1].text.endswith("."), "the clip ends on a sentence's end"


def test_cuts_stay_within_the_target():
    words = said(" ".join(["word"] * 60) + ".", 0.0)
    out = snap([Segment(0, 5.0, 9.0)], [words], [30.0], 4.5, 30)
    assert sum(s.duration for s in out) <= 4.5 + 1e-6


# -- real footage -----------------------------------------------------------------------------
def _run(repo: SpecRepo, name: str, clip: str, extra: str = "") -> Path:
    shutil.copy(SHARED / clip, repo.root / "media" / clip)
    repo.write(f"{name}.yaml", f"entry: upload\nfile: media/{clip}\ntopic: Clips that speak for themselves\n"
                               f"platforms: [youtube]\n{extra}")
    r = repo.afx("run", "--until", "render", name)
    assert r.code == 0, r.text
    return repo.root / "out" / name


def _last(repo: SpecRepo, job: str, stage: str):
    from afx.engine.store import Store

    store = Store(repo.root / ".afx")
    try:
        m = store.manifest(store.last(job, stage)["key"])
        return m, {n: store.object_path(f["digest"]) for n, f in m.files.items()}
    finally:
        store.close()


@pytest.fixture
def srepo(tmp_path, monkeypatch) -> SpecRepo:
    monkeypatch.delenv("AFX_PIPELINE", raising=False)
    repo = SpecRepo(tmp_path / "repo")
    (repo.root / "media").mkdir()
    return repo


@needs_shared
@pytest.mark.parametrize("clip,transcript,tone", [
    ("talking_head_cremad_dont_forget_a_jacket.flv", "don't forget a jacket", ""),
    ("talking_head_grid_set_white_with_p_two_soon.mpg", "set white with p2 soon", "tone: hype\n"),
])
def test_on_real_speech_the_voice_never_overlaps_and_captions_give_every_word(srepo, clip, transcript, tone):
    out = _run(srepo, "a", clip, tone)
    script, files = _last(srepo, "a", "script")
    _, edit_files = _last(srepo, "a", "edit")
    heard = [Word(**w) for w in json.loads(edit_files["transcript.json"].read_text())]
    voice = [Word(**w) for w in json.loads(files["words.json"].read_text())]
    pre = script.meta["preroll"]
    assert heard and voice, "the source speaks, and the voice says its hook"
    for v in voice:
        for w in heard:
            assert v.end <= w.start + pre or v.start >= w.end + pre, (v, w)
    captions = " ".join(line for line in (out / "captions.srt").read_text().splitlines()
                        if line and "-->" not in line and not line.isdigit()).lower()
    assert re.sub(r"[^a-z0-9 ]", "", transcript) in re.sub(r"[^a-z0-9 ]", "", captions), captions
    from afx.media.probe import probe

    assert abs(probe(out / "video.mp4").duration - script.meta["seconds"]) < 0.2


@needs_shared
def test_a_clip_without_speech_is_not_given_words(srepo):
    # Whisper hears "Thank you for watching" in a golf swing's wind; afx must not caption it.
    out = _run(srepo, "golf", "sports_golf_swing_iphone_portrait.mov")
    _, edit_files = _last(srepo, "golf", "edit")
    assert json.loads(edit_files["transcript.json"].read_text()) == []
    assert "watching" not in (out / "captions.srt").read_text().lower()


# -- the cut, pinned (render.segments) ---------------------------------------------------------
def test_pinned_segments_are_used_as_they_are_and_result_json_shows_the_cut(srepo, media):
    shutil.copy(media["story"], srepo.root / "media" / "story.mp4")
    srepo.write("a.yaml", "entry: upload\nfile: media/story.mp4\ntopic: x\nplatforms: [youtube]\n"
                          "render: {voice: none, segments: [{start: '0:09', end: 12.5},\n"
                          "                                  {start: 2, end: '00:00:03.500'}]}\n")
    r = srepo.afx("run")
    assert r.code == 0, r.text
    result = json.loads((srepo.root / "out" / "a" / "result.json").read_text())
    cut = [{k: v for k, v in s.items() if k != "framing"} for s in result["afx"]["cut"]["segments"]]
    assert cut == [{"source": 0, "start": 9.0, "end": 12.5}, {"source": 0, "start": 2.0, "end": 3.5}]
    assert all(s["framing"]["mode"] == "crop" for s in result["afx"]["cut"]["segments"])
    from afx.media.probe import probe

    assert abs(probe(srepo.root / "out" / "a" / "video.mp4").duration - 5.0) < 0.1
    # afx's own choice, copied into the spec, gives the same cut and framing
    srepo.write("b.yaml", "entry: upload\nfile: media/story.mp4\ntopic: x\nplatforms: [youtube]\n"
                          "render: {voice: none, seconds: 8}\n")
    assert srepo.afx("run", "b").code == 0
    chosen = json.loads((srepo.root / "out" / "b" / "result.json").read_text())["afx"]["cut"]["segments"]
    srepo.write("c.yaml", "entry: upload\nfile: media/story.mp4\ntopic: x\nplatforms: [youtube]\n"
                          f"render: {{voice: none, segments: {json.dumps(chosen)}}}\n")
    assert srepo.afx("run", "c").code == 0
    assert json.loads((srepo.root / "out" / "c" / "result.json").read_text())["afx"]["cut"]["segments"] == chosen
    plan = json.loads(srepo.afx("plan", "--json", "b").out)
    assert plan["jobs"][0]["choices"]["cut"]["segments"] == chosen, "afx plan --json shows the choices too"


@pytest.mark.parametrize("segments,code,message", [
    ("[{start: 5, end: 4}]", 3, "render.segments[0]: end (4) is not after start (5)"),
    ("[{start: 1, end: 90}]", 3, "render.segments[0]: 1-90 is not within the source"),
    ("[{source: 3, start: 1, end: 2}]", 3, "render.segments[0].source: 3 names no source"),
    ("[{start: '1:2:3:4', end: 5}]", 2, "render.segments[0].start"),
])
def test_bad_pinned_segments_name_the_part(srepo, media, segments, code, message):
    shutil.copy(media["story"], srepo.root / "media" / "story.mp4")
    srepo.write("a.yaml", f"entry: upload\nfile: media/story.mp4\ntopic: x\nrender: {{segments: {segments}}}\n")
    r = srepo.afx("run", "--until", "edit")
    assert r.code == code and message in r.err, r.text


def test_a_framing_written_by_hand_is_used(srepo, media):
    shutil.copy(media["story"], srepo.root / "media" / "story.mp4")
    srepo.write("a.yaml", "entry: upload\nfile: media/story.mp4\ntopic: x\nplatforms: [youtube]\n"
                          "render: {voice: none, segments: [{start: 9, end: 12, framing: {x: 0.2}},\n"
                          "                                 {start: 2, end: 4, framing: {mode: fit}}]}\n")
    assert srepo.afx("run", "--until", "render").code == 0
    edit, _ = _last(srepo, "a", "edit")
    first, second = (s["framing"] for s in edit.meta["segments"])
    assert first == {"mode": "crop", "subjects": 0, "path": [[0.0, 0.2], [3.0, 0.2]]}
    assert second["mode"] == "fit"
