"""Long inputs hold (issue 14): analysis streams in bounded memory, in chunks a rerun resumes
(kill -9 included), with an ETA; an interrupted download goes on with an HTTP Range request;
`afx cache gc` drops resume folders nobody will go on from. Real ffmpeg, generated media."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from afx.media import analysis
from afx.media.analysis import Chunking, analyse, audio_energy
from afx.media.fetch import fetch
from afx.media.ffmpeg import MediaError, ffmpeg_exe
from afx.media.netguard import Policy
from afx.media.probe import probe
from afx.stages.analyze import Eta
from tests.conftest import SpecRepo
from tests.mediafix import ff

ROOT = Path(__file__).resolve().parents[2]
ALLOW_LOOPBACK = Policy(frozenset({"127.0.0.1"}))
RESUMED = re.compile(r"resumed analysis: (\d+) of (\d+) chunks were done")


def _afx(*args: str) -> list[str]:
    return [sys.executable, "-m", "afx", *args]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AFX_CACHE_DIR", "AFX_PIPELINE")}
    return {**env, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **extra}


def _wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=20)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


def _same_analysis(got: dict, want: dict) -> None:
    """Equal, but for audio energy within a few hundredths of a dB (AAC's decoder, started a
    second before a resumed chunk, draws other noise for noise-like sound) and silence edges
    within a window."""
    for key in ("duration", "window", "keyframes", "motion", "motion_x", "cuts", "facecam"):
        assert got[key] == want[key], key
    assert len(got["energy_db"]) == len(want["energy_db"])
    assert max(abs(a - b) for a, b in zip(got["energy_db"], want["energy_db"])) <= 0.05
    assert len(got["silences"]) == len(want["silences"])
    for a, b in zip(got["silences"], want["silences"]):
        assert abs(a[0] - b[0]) <= 0.5 and abs(a[1] - b[1]) <= 0.5


def _stored_analysis(store: Path) -> dict:
    for path in (store / "objects").rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            try:
                data = json.loads(path.read_bytes())
            except ValueError:
                continue
            if isinstance(data, dict) and "energy_db" in data:
                return data
    raise AssertionError("no analysis in the store")


# -- streamed energy ------------------------------------------------------------------------

def _old_energy(path: Path, duration: float) -> list[float]:
    """What audio_energy computed before it streamed: the whole audio in one array."""
    raw = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path), "-vn",
                          "-ac", "1", "-ar", "16000", "-f", "s16le", "pipe:1"], capture_output=True, check=True).stdout
    samples = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
    out = []
    for i in range(max(1, math.ceil(duration / 0.5))):
        chunk = samples[i * 8000:(i + 1) * 8000]
        rms = float(np.sqrt(np.mean(chunk * chunk))) if chunk.size else 0.0
        out.append(round(20 * math.log10(rms) if rms > 1e-5 else -100.0, 2))
    return out


def test_streamed_energy_equals_the_whole_array_result(media):
    info = probe(media["story"])
    streamed = audio_energy(media["story"], info.duration, info.has_audio)
    assert streamed == _old_energy(media["story"], info.duration)
    assert len(streamed) == 48 and max(streamed) > -30 > -50 > min(streamed)  # loud bursts and hiss
    # A duration past the end of the audio: the missing windows are digital silence.
    longer = audio_energy(media["story"], info.duration + 3, info.has_audio)
    assert longer[:48] == streamed and longer[48:] == [-100.0] * 6
    assert audio_energy(media["silent"], 4.0, False) == [-90.0] * 8


def test_an_audio_decoder_that_fails_fails_the_analysis_and_saves_no_chunk_of_it(media, tmp_path, monkeypatch):
    # 1 s of audio, the pipe closed, and a moment later an error (a window padded with
    # silence must not be used before the exit status is known).
    fails = [sys.executable, "-c", "import os, sys, time; sys.stdout.buffer.write(bytes(32000)); "
             "sys.stdout.flush(); os.close(1); sys.stderr.write('broken audio\\n'); time.sleep(1); sys.exit(3)"]
    monkeypatch.setattr(analysis, "audio_command", lambda path, start=0.0: fails)
    info = probe(media["story"])
    with pytest.raises(MediaError) as err:
        analyse(media["story"], info.duration, True, chunk=4.0, resume=tmp_path, stem="s")
    assert "reading the audio of story.mp4 failed (ffmpeg exit 3): broken audio" in str(err.value)
    assert not list(tmp_path.iterdir()), "no chunk made of the silence after the failure"


# -- chunked, resumed analysis -----------------------------------------------------------------

@pytest.fixture(scope="module")
def cuts_clip(tmp_path_factory) -> Path:
    """18 s, keyframes every second, scene cuts at exactly 6 s and 12 s; tone bursts and pauses."""
    path = tmp_path_factory.mktemp("cuts") / "cuts.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=s=320x180:r=30:d=6", "-f", "lavfi", "-i", "color=c=0x2040a0:s=320x180:r=30:d=6",
       "-f", "lavfi", "-i", "testsrc2=s=320x180:r=30:d=6,hue=h=120,negate",
       "-f", "lavfi", "-i", "sine=f=330:r=48000:d=18,volume='0.8*gt(sin(2*PI*0.4*t),0)':eval=frame",
       "-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]", "-map", "[v]", "-map", "3:a",
       "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k",
       "-shortest", str(path))
    return path


class _Stop(Exception):
    pass


def _analyse_one_chunk_at_a_time(path: Path, chunk: float, folder: Path) -> tuple[dict, list[int]]:
    """Analyse with resuming, stopped right after each new chunk is saved, until it finishes:
    every chunk boundary is a resumed start. (result, chunks found done at each run)."""
    info = probe(path)
    resumed: list[int] = []
    for _ in range(100):
        before = len(list(folder.glob("*.json")))

        def stop_after_a_chunk(f: float, before: int = before) -> None:
            if len(list(folder.glob("*.json"))) > before:
                raise _Stop

        try:
            result = analyse(path, info.duration, info.has_audio, stop_after_a_chunk, chunk=chunk, resume=folder,
                             stem="source0", on_resumed=lambda done, total: resumed.append(done))
            return result.to_dict(), resumed
        except _Stop:
            continue
    raise AssertionError("never finished")


def test_chunked_resumed_analysis_equals_the_unchunked_one_with_cuts_on_chunk_boundaries(cuts_clip, tmp_path):
    info = probe(cuts_clip)
    whole = analyse(cuts_clip, info.duration, info.has_audio).to_dict()
    assert 6.0 in whole["cuts"] and 12.0 in whole["cuts"], whole["cuts"]
    assert whole["silences"]

    folder = tmp_path / "resume"
    folder.mkdir()
    got, resumed = _analyse_one_chunk_at_a_time(cuts_clip, 6.0, folder)
    assert resumed == [0, 1, 2, 3], "each run went on from the chunks the last one saved (the last found all)"
    _same_analysis(got, whole)
    assert sorted(p.name for p in folder.iterdir()) == [f"source0.chunk{k:05d}.json" for k in range(3)]
    assert all(p.stat().st_size < 20_000 for p in folder.iterdir()), "chunk files are small"

    # Chunks that do not fit a boundary or a window (4.25 s -> 4.5 s), resumed every time.
    odd = tmp_path / "odd"
    odd.mkdir()
    got, resumed = _analyse_one_chunk_at_a_time(cuts_clip, 4.25, odd)
    assert resumed == [0, 1, 2, 3, 4] and Chunking(info.duration, 4.25).length == 4.5
    _same_analysis(got, whole)

    # A finished set is used as it is; chunks of another length are not mixed in.
    counts: list[tuple[int, int]] = []
    again = analyse(cuts_clip, info.duration, info.has_audio, chunk=6.0, resume=folder, stem="source0",
                    on_resumed=lambda done, total: counts.append((done, total)))
    assert counts == [(3, 3)] and again.to_dict() == analyse(
        cuts_clip, info.duration, info.has_audio, chunk=6.0, resume=folder, stem="source0").to_dict()
    counts.clear()
    analyse(cuts_clip, info.duration, info.has_audio, chunk=9.0, resume=folder, stem="source0",
            on_resumed=lambda done, total: counts.append((done, total)))
    assert counts == [(0, 2)]


def test_a_resumed_start_that_lost_the_last_frame_would_miss_the_cut(cuts_clip, tmp_path):
    """The chunk file's last small frame is what finds a cut on the next chunk's first
    keyframe: without it (as if the next chunk started afresh) the cut at 6 s is lost."""
    info = probe(cuts_clip)
    folder = tmp_path / "resume"
    folder.mkdir()
    with pytest.raises(_Stop):
        def stop(f: float) -> None:
            if list(folder.glob("*.json")):
                raise _Stop
        analyse(cuts_clip, info.duration, info.has_audio, stop, chunk=6.0, resume=folder, stem="s")
    saved = folder / "s.chunk00000.json"
    data = json.loads(saved.read_text())
    assert data["part"]["last"] and data["part"]["keyframes"][-1] == 5.0
    data["part"]["last"] = None
    saved.write_text(json.dumps(data))
    cuts = analyse(cuts_clip, info.duration, info.has_audio, chunk=6.0, resume=folder, stem="s").cuts
    assert 6.0 not in cuts and 12.0 in cuts


def test_a_resume_folder_in_use_is_not_shared(tmp_path):
    """Two jobs with the same stage key at once (`afx run -j 2` of a matrix): the second
    works without resuming rather than write the first one's files."""
    from afx.stages.analyze import claimed

    folder = tmp_path / "resume" / "key"
    with claimed(folder) as first:
        assert first == folder and folder.is_dir()
        with claimed(folder) as second:
            assert second is None
    with claimed(folder) as again, claimed(None) as none:
        assert again == folder and none is None


# -- kill -9 during analysis, then a rerun ------------------------------------------------------

@pytest.fixture(scope="module")
def busy_clip(tmp_path_factory) -> Path:
    """80 s of small pictures with a keyframe every other frame (analysis takes a few
    seconds: time to kill it), tone bursts and pauses."""
    path = tmp_path_factory.mktemp("busy") / "busy.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=s=160x90:r=30:d=80",
       "-f", "lavfi", "-i", "sine=f=220:r=48000:d=80,volume='0.9*gt(sin(2*PI*0.3*t),0)':eval=frame",
       "-c:v", "libx264", "-preset", "ultrafast", "-g", "2", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
       "-shortest", str(path))
    return path


def test_kill_9_during_analysis_then_the_rerun_goes_on_from_the_saved_chunks(busy_clip, tmp_path):
    repo = SpecRepo(tmp_path / "repo")
    repo.write("media/long.mp4", busy_clip.read_bytes())
    repo.write("a.yaml", "entry: upload\nfile: media/long.mp4\ntopic: A long stream\n")
    env = _env(AFX_ANALYSIS_CHUNK="4")
    total = math.ceil(probe(busy_clip).duration / 4)
    resume = repo.root / ".afx" / "resume"
    proc = subprocess.Popen(_afx("run", "--until", "analyze", "--json"), cwd=repo.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: any(resume.glob("*/source0.chunk*.json")), what="a saved chunk")
    finally:
        _kill_group(proc)  # afx run's group; its worker and ffmpeg die with it
    time.sleep(0.3)
    saved = len(list(resume.glob("*/source0.chunk*.json")))
    assert 1 <= saved < total, (saved, total)

    rerun = subprocess.run(_afx("run", "--until", "analyze", "--json"), cwd=repo.root, env=env,
                           capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    events = [json.loads(line) for line in rerun.stdout.splitlines() if line.startswith("{")]
    messages = [e["message"] for e in events if e.get("event") == "progress" and e.get("stage") == "analyze"]
    found = {RESUMED.search(m).groups() for m in messages if RESUMED.search(m)}
    assert found, messages
    (done, of), = found
    assert int(of) == total and saved <= int(done) < total, (done, of, saved)
    assert any(re.search(r"analysing source 1/1: \d+:\d\d of 1:20", m) for m in messages), messages
    assert not any(resume.iterdir()), "the resume folder goes once the stage is stored"

    info = probe(busy_clip)
    _same_analysis(_stored_analysis(repo.root / ".afx"), analyse(busy_clip, info.duration, info.has_audio).to_dict())


# -- memory ------------------------------------------------------------------------------------

PEAK = """
import resource, sys
from pathlib import Path
from afx.media.analysis import analyse
from afx.media.probe import probe
p = Path(sys.argv[1])
info = probe(p)
a = analyse(p, info.duration, info.has_audio)
assert len(a.energy_db) == round(info.duration * 2), len(a.energy_db)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _plain_long(path: Path, seconds: int) -> Path:
    ff("-f", "lavfi", "-i", f"testsrc2=s=160x90:r=2:d={seconds}", "-f", "lavfi", "-i", f"sine=f=300:r=8000:d={seconds}",
       "-c:v", "libx264", "-preset", "ultrafast", "-g", "20", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-shortest",
       str(path))
    return path


def test_peak_memory_of_analysis_does_not_grow_with_the_source(tmp_path):
    # 40 minutes of 16 kHz audio is 77 MB of samples (and 154 MB as floats): reading it
    # whole, as analysis once did, would show here as ~230 MB more than the 4-minute source.
    peaks = {}
    for minutes in (4, 40):
        source = _plain_long(tmp_path / f"{minutes}min.mkv", minutes * 60)
        out = subprocess.run([sys.executable, "-c", PEAK, str(source)], env=_env(), capture_output=True, text=True,
                             timeout=120, check=True).stdout
        peaks[minutes] = int(out.split()[-1]) / 1024  # MB
    assert peaks[40] - peaks[4] < 25, peaks


# -- progress and its ETA ----------------------------------------------------------------------

def test_progress_says_where_it_is_and_how_long_is_left():
    now = [100.0]
    eta = Eta("source 1/1", 3 * 3600, timer=lambda: now[0])
    assert eta.message(0.0) == "analysing source 1/1: 0:00 of 3:00:00"
    now[0] += 40
    assert eta.message(0.25) == "analysing source 1/1: 45:00 of 3:00:00, about 2m00s left"
    resumed = Eta("source 2/2", 600, timer=lambda: now[0])
    resumed.on_resumed(3, 8)
    assert resumed.message(0.375) == "analysing source 2/2: 3:45 of 10:00; resumed analysis: 3 of 8 chunks were done"
    now[0] += 10  # 10 s for 0.125 of the source: resumed chunks count as done, not as speed
    assert resumed.message(0.5).startswith("analysing source 2/2: 5:00 of 10:00, about 40s left;")
    now[0] += 4000
    assert eta.message(0.5).endswith("about 1h07m left")  # 4050 s for the first half


def test_a_long_progress_message_shows_on_a_line_of_its_own(monkeypatch):
    from afx.cli.env import Environment
    from afx.cli.progress import Live, display

    monkeypatch.setenv("COLUMNS", "80")
    err = io.StringIO()
    env = Environment(stdout=io.StringIO(), stderr=err, stdout_isatty=True, stderr_isatty=True,
                      environ={"TERM": "xterm", "NO_COLOR": "1"})
    live = display(env)
    assert isinstance(live, Live)
    message = "analysing source 1/1: 42:10 of 3:00:00, about 1m20s left; resumed analysis: 3 of 8 chunks were done"
    live({"event": "start", "jobs": ["a-stream-with-a-long-name"], "stages": ["analyze"]})
    live({"event": "stage", "job": "a-stream-with-a-long-name", "stage": "analyze", "status": "running"})
    live({"event": "progress", "job": "a-stream-with-a-long-name", "stage": "analyze", "fraction": 0.23,
          "message": message})
    live.progress.refresh()
    live.close()
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line) for line in re.split(r"[\r\n]", err.getvalue())]
    assert any("a-stream-with-a-long-name analyze" in line and "23%" in line for line in lines), lines
    shown = [line for line in lines if "analysing source 1/1: 42:10 of 3:00:00, about 1m20s left" in line]
    assert shown and all(len(line) <= 80 for line in lines), lines
    assert all(line.rstrip().endswith("…") for line in shown), shown


# -- resumable download ------------------------------------------------------------------------

class _Origin(http.server.BaseHTTPRequestHandler):
    """One file at any path, with Range requests. mode "drop": a request without Range gets
    `cut` bytes and the connection is lost, one with Range gets 503; "stall": `cut` bytes,
    then nothing until `release` is set; "ok": the file, or the range asked for."""

    protocol_version = "HTTP/1.1"
    state: dict

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        st, ranged = self.state, self.headers.get("Range")
        st["requests"].append(ranged)
        start = int(re.match(r"bytes=(\d+)-", ranged).group(1)) if ranged else 0
        if st["mode"] == "drop" and ranged:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = st["data"][start:]
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{len(st['data']) - 1}/{len(st['data'])}")
        self.end_headers()
        try:
            if st["mode"] == "ok":
                self.wfile.write(body)
                return
            if st["mode"] == "stall":  # a slow start, then nothing: a download to kill
                for at in range(0, st["cut"], 16384):
                    self.wfile.write(body[at:min(at + 16384, st["cut"])])
                    self.wfile.flush()
                    time.sleep(0.01)
                st["release"].wait(60)
            else:
                self.wfile.write(body[:st["cut"]])
                self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client went away (yt-dlp's extractor reads only the start)


@pytest.fixture
def flaky(media):
    data = media["story"].read_bytes()
    state = {"data": data, "cut": len(data) // 3, "mode": "drop", "requests": [],
             "release": threading.Event()}
    handler = type("Handler", (_Origin,), {"state": state})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/stream.mp4", state
    finally:
        state["release"].set()
        httpd.shutdown()
        httpd.server_close()


def test_a_download_cut_short_goes_on_next_time_with_a_range_request(flaky, tmp_path):
    url, state = flaky
    work1, work2, partial = tmp_path / "work1", tmp_path / "work2", tmp_path / "resume"
    for folder in (work1, work2, partial):
        folder.mkdir()
    with pytest.raises(MediaError) as info:
        fetch(url, work1, "source0", ALLOW_LOOPBACK, partial=partial)
    assert url in str(info.value)
    part = partial / "source0.mp4.part"
    assert part.stat().st_size == state["cut"], "the part file is kept for the next run"
    assert not list(work1.iterdir())

    state.update(mode="ok", requests=[])
    path = fetch(url, work2, "source0", ALLOW_LOOPBACK, partial=partial)
    assert path.parent == work2 and path.read_bytes() == state["data"]
    assert f"bytes={state['cut']}-" in state["requests"], state["requests"]
    assert not list(partial.glob("source0.*")), "the finished file moved into the work folder"

    # Without a resume folder (a caller that gives none), a failure leaves nothing behind.
    state.update(mode="drop", requests=[])
    with pytest.raises(MediaError):
        fetch(url, work1, "source1", ALLOW_LOOPBACK)
    assert not list(work1.iterdir())


def test_the_disk_check_counts_only_what_is_left_to_download(flaky, tmp_path, monkeypatch):
    from collections import namedtuple

    from afx.media import fetch as fetch_module
    from afx.media import normalize

    url, state = flaky
    monkeypatch.setattr(fetch_module, "_expected_size", lambda info: len(state["data"]))  # the site says its size
    partial = tmp_path / "resume"
    partial.mkdir()
    with pytest.raises(MediaError):
        fetch(url, tmp_path, "source0", ALLOW_LOOPBACK, partial=partial)  # a third is on disk
    size, have = len(state["data"]), state["cut"]
    usage = namedtuple("usage", "total used free")
    spare = normalize.SPARE
    # Room for the two thirds left, not for the whole file: the download goes on.
    monkeypatch.setattr(normalize.shutil, "disk_usage", lambda path: usage(10 ** 12, 0, spare + size - have + 10))
    state["mode"] = "ok"
    work = tmp_path / "work"
    work.mkdir()
    assert fetch(url, work, "source0", ALLOW_LOOPBACK, partial=partial).stat().st_size == size
    monkeypatch.setattr(normalize.shutil, "disk_usage", lambda path: usage(10 ** 12, 0, spare + size - 10))
    with pytest.raises(MediaError) as info:
        fetch(url, work, "source1", ALLOW_LOOPBACK, partial=partial)  # nothing of this one yet
    assert "not enough free disk for downloading it" in str(info.value), str(info.value)


def test_afx_run_killed_mid_download_goes_on_with_a_range_request(flaky, tmp_path):
    url, state = flaky
    state["mode"] = "stall"
    repo = SpecRepo(tmp_path / "repo")
    repo.write("afx.yaml", "version: 1\nfetch:\n  allow_hosts: [127.0.0.1]\n")
    repo.write("a.yaml", f"entry: fetch\nurl: {url}\ntopic: A long stream\n")
    parts = repo.root / ".afx" / "resume"
    proc = subprocess.Popen(_afx("run", "--until", "ingest"), cwd=repo.root, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: any(p.stat().st_size >= 100_000 for p in parts.glob("*/source0.*.part")),
                  what="a part file")
    finally:
        _kill_group(proc)
    time.sleep(0.3)  # the worker dies with afx run
    part, = parts.glob("*/source0.*.part")
    have = part.stat().st_size
    assert 100_000 <= have < len(state["data"])
    state["release"].set()
    state.update(mode="ok", requests=[])
    rerun = subprocess.run(_afx("run", "--until", "ingest"), cwd=repo.root, env=_env(), capture_output=True,
                           text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"bytes={have}-" in state["requests"], (have, state["requests"])
    digest = hashlib.sha256(state["data"]).hexdigest()
    stored = [p for p in (repo.root / ".afx" / "objects").rglob("*") if p.is_file()
              and hashlib.sha256(p.read_bytes()).hexdigest() == digest]
    assert stored, "the whole file, spliced from two runs, is in the store"
    assert not any(parts.iterdir())


# -- afx cache gc ------------------------------------------------------------------------------

def test_cache_gc_drops_resume_folders_no_run_would_go_on_from(media, tmp_path):
    repo = SpecRepo(tmp_path / "repo")
    repo.write("media/a.mp4", media["plain"].read_bytes())
    repo.write("media/b.mp4", media["story"].read_bytes())
    repo.write("a.yaml", "entry: upload\nfile: media/a.mp4\ntopic: A\n")
    repo.write("b.yaml", "entry: upload\nfile: media/b.mp4\ntopic: B\n")
    plan = json.loads(repo.afx("plan", "--json").out)
    keys = {job["job"]: job["stages"][0]["key"] for job in plan["jobs"]}
    base = repo.root / ".afx" / "resume"
    for key in (keys["a"], keys["b"], "0" * 64):
        (base / key).mkdir(parents=True)
        (base / key / "source0.mp4.part").write_bytes(b"x" * 1000)
    week_ago = time.time() - 8 * 86400
    for path in (base / keys["b"], base / keys["b"] / "source0.mp4.part"):
        os.utime(path, (week_ago, week_ago))
    info = json.loads(repo.afx("cache", "info", "--json").out)
    assert info["resume_folders"] == 3 and info["resume_bytes"] == 3000
    dry = json.loads(repo.afx("cache", "gc", "--dry-run", "--json").out)
    assert dry["resume_folders"] == 2 and len(list(base.iterdir())) == 3
    done = json.loads(repo.afx("cache", "gc", "--json").out)
    assert done["resume_folders"] == 2 and done["bytes"] >= 2000
    assert [p.name for p in base.iterdir()] == [keys["a"]], "kept: wanted by job a, and recent"


def test_a_resume_folder_another_job_holds_is_not_removed_under_it(tmp_path):
    import fcntl

    from afx.engine.store import Store

    store = Store(tmp_path / "store")
    folder = store.resume_dir("k" * 64)
    folder.mkdir(parents=True)
    (folder / "chunk0.json").write_text("{}")
    with open(folder / ".lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # a job still working in it
        store.drop_resume("k" * 64)
        assert (folder / "chunk0.json").is_file()
    store.drop_resume("k" * 64)  # now nobody holds it
    assert not folder.exists()
    store.close()
