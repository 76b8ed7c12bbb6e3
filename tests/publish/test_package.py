"""Package: publish copy within limits, thumbnails, the score; and the HTML report."""

from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from afx.media import copy as copywriter
from afx.media import thumbnail
from afx.media.analysis import analyse
from afx.media.measure import loudness
from afx.media.platforms import PLATFORMS
from afx.media.probe import probe
from afx.media.score import score
from tests.conftest import SpecRepo
from tests.mediafix import ff

words = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs", "So")), min_size=0,
                max_size=60)


@settings(max_examples=200, deadline=None)
@given(topic=words, script=st.lists(words, max_size=80).map(" ".join), tone=st.sampled_from(
    ["hype", "calm", "x", None]), fmt=st.sampled_from(["short", "long"]),
    title=st.one_of(st.none(), st.text(max_size=400)), description=st.one_of(st.none(), st.text(max_size=6000)),
    tags=st.one_of(st.none(), st.lists(st.text(max_size=40), max_size=50)))
def test_copy_never_breaks_a_platform_limit(topic, script, tone, fmt, title, description, tags):
    overrides = {k: v for k, v in (("title", title), ("description", description), ("hashtags", tags)) if v is not None}
    if overrides.get("title") is not None and not overrides["title"].strip():
        overrides.pop("title")
    for platform in (*PLATFORMS, None):
        c = copywriter.write(topic, tone, script, fmt, platform, overrides)
        assert copywriter.check(c, platform) == [], (platform, c)


def test_copy_cuts_on_word_boundaries_and_warns():
    c = copywriter.write("x", "hype", "s", "short", "youtube", {"title": "word " * 40})
    assert len(c.title) <= 100 and c.title.endswith("…") and "wor…" not in c.title
    assert any("title is" in w for w in c.warnings)


def test_hashtags_are_normalised():
    assert copywriter.normalise_tags(["CS2", "#cs2", "best plays", "#Best Plays!", "", "2026", "ÉTÉ"]) == \
        ["#cs2", "#bestplays", "#été"]
    c = copywriter.write("Valorant clutch", "hype", "", "short", "youtube")
    assert c.hashtags[:2] == ["#valorant", "#clutch"] and "#shorts" in c.hashtags


def test_copy_overrides_per_field_and_platform():
    over = {"title": "General", "hashtags": ["a"], "tiktok": {"title": "Just TikTok"}}
    assert copywriter.write("t", None, "s", "short", "tiktok", over).title == "Just TikTok"
    assert copywriter.write("t", None, "s", "short", "youtube", over).title == "General"
    assert copywriter.write("t", None, "s", "short", "youtube", over).hashtags == ["#a"]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    d = tmp_path_factory.mktemp("crafted")
    # loud, moving, then a blurred dark half: the thumbnail should come from the sharp part
    ff("-f", "lavfi", "-i", "testsrc2=s=540x960:r=30:d=6", "-f", "lavfi", "-i", "sine=f=440:r=48000:d=12",
       "-filter_complex", "[0:v]split[a][b];[b]boxblur=20:4,eq=brightness=-0.35[bb];[bb][a]concat=n=2:v=1:a=0[v]",
       "-map", "[v]", "-map", "1:a", "-c:v", "libx264", "-g", "30", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
       "-c:a", "aac", "-af", "volume=-6dB", str(d / "sharp-late.mp4"))
    ff("-f", "lavfi", "-i", "color=c=gray:s=1080x1920:r=30:d=8", "-f", "lavfi", "-i", "anullsrc=r=48000:d=8",
       "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
       str(d / "silent-still.mp4"))
    return d


def test_thumbnail_prefers_sharp_well_exposed_frames(crafted):
    ranked = sorted(thumbnail.candidates(crafted / "sharp-late.mp4"), key=lambda c: -c.score)
    assert ranked[0].time >= 6.0, ranked[:3]


def test_thumbnail_sizes_and_text(crafted, tmp_path):
    picture = thumbnail.frame(crafted / "sharp-late.mp4", 7.0)
    info = thumbnail.compose(picture, (1280, 720), "INSANE ACE", tmp_path / "t.jpg")
    img = Image.open(tmp_path / "t.jpg")
    assert img.size == (1280, 720) and img.format == "JPEG" and info["bytes"] <= 2 * 1024 * 1024
    assert info["lines"] == ["INSANE ACE"]


def _score(path: Path, **kw):
    info = probe(path)
    a = analyse(path, info.duration, info.has_audio)
    defaults = dict(width=info.width, height=info.height, fps=info.fps, expected=(1080, 1920, 30),
                    seconds=info.duration, target=info.duration, max_seconds=60.0, speech=[], captioned=[],
                    text_in_hook=False, seams=0)
    defaults.update(kw)
    return score(analysis=a, loudness=loudness(path), **defaults)


def _part(result, name):
    return next(p for p in result["parts"] if p["name"] == name)


def test_score_parts_move_the_right_way(crafted):
    still = _score(crafted / "silent-still.mp4")
    lively = _score(crafted / "sharp-late.mp4", expected=(540, 960, 30), text_in_hook=True, seams=3)
    assert _part(still, "loudness")["points"] < 5 and "aim for -14" in _part(still, "loudness")["suggestion"]
    assert _part(still, "silence")["points"] < 2 and "silent" in _part(still, "silence")["suggestion"]
    assert _part(still, "hook")["points"] < _part(lively, "hook")["points"]
    assert _part(lively, "silence")["points"] > _part(still, "silence")["points"]
    assert _part(lively, "picture")["points"] == 5 and _part(still, "picture")["points"] == 5
    assert still["total"] < lively["total"]
    uncaptioned = _score(crafted / "sharp-late.mp4", speech=[(1, 3), (4, 6)], captioned=[])
    captioned = _score(crafted / "sharp-late.mp4", speech=[(1, 3), (4, 6)], captioned=[(1, 3), (4, 6)])
    assert _part(uncaptioned, "captions")["points"] == 0 < _part(captioned, "captions")["points"] == 15
    too_long = _score(crafted / "sharp-late.mp4", max_seconds=5.0)
    assert "over the 5 s limit" in _part(too_long, "duration")["suggestion"]
    assert _score(crafted / "silent-still.mp4") == still, "deterministic"


def test_score_tells_the_truth_about_speech_and_faces(crafted):
    # issue 12: a voice over the footage's speech, or captions of the voice alone, scored 15/15
    heard = [{"text": t, "start": 1.0 + i * 0.4, "end": 1.3 + i * 0.4} for i, t in enumerate(
        "ask not what your country can do for you".split())]
    spans = [(w["start"], w["end"]) for w in heard]
    honest = _score(crafted / "sharp-late.mp4", speech=spans, captioned=spans, heard=heard,
                    caption_text="Ask not what your country can do for you", voice=[(0.1, 0.8)],
                    faces={"moments": 10, "kept": 10})
    filler = _score(crafted / "sharp-late.mp4", speech=spans + [(0.1, 4.0)], captioned=spans + [(0.1, 4.0)],
                    heard=heard, caption_text="Here's what you need to know explained in under a minute",
                    voice=[(0.1, 4.0)], faces={"moments": 10, "kept": 3})
    assert _part(honest, "captions")["points"] == 15 and _part(filler, "captions")["points"] < 4
    assert "caption what the footage says" in _part(filler, "captions")["suggestion"]
    assert _part(honest, "voice")["points"] == 10 and _part(filler, "voice")["points"] < 2
    assert "talks over" in _part(filler, "voice")["suggestion"]
    assert _part(honest, "framing")["points"] == 10 and _part(filler, "framing")["points"] == 3
    assert filler["total"] <= honest["total"] - 25
    assert sum(p["max"] for p in honest["parts"]) == 100


class _Collector(html.parser.HTMLParser):
    VOID = {"meta", "img", "br", "link", "input", "source", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.refs: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "poster", "href"):
            if a.get(key) and not a[key].startswith(("http", "#")):
                self.refs.append(a[key])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


@pytest.fixture
def reported(tmp_path, monkeypatch, media):
    """A small real job (upload, voice, captions, package, outbox) and its report."""
    monkeypatch.delenv("AFX_PIPELINE", raising=False)
    repo = SpecRepo(tmp_path / "repo")
    (repo.root / "media").mkdir()
    shutil.copy(media["story"], repo.root / "media" / "story.mp4")
    repo.write("a.yaml", "entry: upload\nfile: media/story.mp4\ntopic: Clutch <b>round</b> & more\n"
                         "platforms: [tiktok, youtube]\nrender: {seconds: 6}\n")
    repo.write("b.yaml", "entry: compose\ntopic: Never built\nscript: Hi.\n")
    r = repo.afx("run", "a")
    assert r.code == 0, r.text
    r = repo.afx("report")
    assert r.code == 0, r.text
    return repo, repo.root / "out" / "report.html"


def test_report_is_well_formed_and_every_file_exists(reported):
    repo, page = reported
    text = page.read_text()
    parser = _Collector()
    parser.feed(text)
    assert not parser.errors and parser.stack == ["html"] or parser.stack == []
    assert parser.refs and all((page.parent / ref).is_file() for ref in parser.refs), parser.refs
    assert "Clutch &lt;b&gt;round&lt;/b&gt; &amp; more" in text, "copy is escaped"
    assert "not built yet" in text and text.count("<video") == 1
    result = json.loads((repo.root / "out" / "a" / "result.json").read_text())
    assert set(result) == {"jobId", "status", "videoUrl", "thumbnailUrl", "publishCopy", "completedAt",
                           "publishResults", "afx"}
    assert {r["platform"] for r in result["publishResults"]} == {"tiktok", "youtube"}
    assert 0 <= result["afx"]["score"]["total"] <= 100 and len(result["afx"]["score"]["parts"]) == 9


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian's chromium is not installed")
def test_report_loads_in_headless_chromium(reported, tmp_path):
    repo, page = reported
    probe_page = page.with_name("check.html")
    checker = """<script>
    window.addEventListener('load', () => {
      const media = [...document.querySelectorAll('img, video')];
      let pending = media.length, ok = 0;
      const done = () => { document.title = 'media ' + ok + '/' + media.length; };
      media.forEach(m => {
        if (m.tagName === 'IMG') { if (m.complete && m.naturalWidth > 0) ok++; pending--; }
        else if (m.readyState >= 1 && m.videoWidth > 0) { ok++; pending--; }
        else { m.addEventListener('loadedmetadata', () => { ok++; pending--; done(); });
               m.addEventListener('error', () => { pending--; done(); }); }
      });
      done();
    });
    </script>"""
    probe_page.write_text(page.read_text().replace("</body>", checker + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=8000", "--autoplay-policy="
             "no-user-gesture-required"]
    for _ in range(3):  # virtual time does not wait for the media thread: a loaded machine may need another go
        dom = subprocess.run(["/usr/bin/chromium", *flags, "--dump-dom", probe_page.as_uri()], capture_output=True,
                             text=True, timeout=120).stdout
        if "<title>media 2/2</title>" in dom:
            break
    assert "<title>media 2/2</title>" in dom, dom[:400]
    shot = tmp_path / "report.png"
    subprocess.run(["/usr/bin/chromium", *flags, "--window-size=1280,900", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and Image.open(shot).size == (1280, 900)
    os.environ.get("AFX_KEEP_SCREENSHOT") and shutil.copy(shot, os.environ["AFX_KEEP_SCREENSHOT"])


def test_a_clip_jobs_title_quotes_its_liveliest_line():
    from afx.media.copy import quote

    def words(text, start=0.0):
        out = []
        for i, w in enumerate(text.split()):
            out.append({"text": w, "start": start + 0.4 * i, "end": start + 0.4 * i + 0.3})
        return out

    said = words("So we go left here. The map is quiet today.") + words("No way, did you see that?", 10.0)
    assert quote(said) == "No way, did you see that?"
    assert quote(words("Okay then.")) == ""  # nothing worth quoting: the topic stays the title
    long_line = words("and then we kept walking along the river for a very long time until the evening came")
    assert quote(long_line) == ""
    assert quote(words("that was insane", 0.0)) == "That was insane!"  # no end mark heard: one is added
