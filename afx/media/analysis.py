"""What happens when in a source: loudness, motion, scene cuts, silences, a facecam (issues 4, 14).

Streamers cut shorts from multi-hour VODs, so analysis must run far faster than real time on
two cores, in memory that does not grow with the source. Full decoding of 1080p runs at ~11x
real time here (bench/analyze.py), so video is analysed on keyframes only (only key packets
reach the decoder, ~0.5 per second in stream recordings), scaled to 64x36 grey; audio (cheap
to decode) is analysed in full, in 0.5 s windows, read from ffmpeg's pipe as it comes, in a
thread beside the video (ffmpeg decodes it in a process of its own: the two cores work at
once). Cuts therefore land on keyframes or silences, which is also where a cut looks clean.

A long source is analysed in chunks of source time (CHUNK, 10 minutes): both streams run
through the whole source in one pass, and each chunk's part of the result is saved as a small
JSON file as soon as both have passed its end, when the caller gives a folder for it (the
analyze stage's StageContext.resume). A rerun loads the finished chunks and starts both
streams at the first missing one: the audio a second before it (decoder warm-up, then trimmed
to the sample), the video from the keyframe before it, comparing its first keyframe with the
last small frame the previous chunk saved. Energy windows stay on the 0.5 s grid, a cut on a
chunk's first keyframe is found, and silences and the facecam are computed over the whole
source once the chunks are joined.
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from afx.fsutil import atomic_write
from afx.media.ffmpeg import BASE, SOURCE_INPUT, MediaError, confine_inputs, ffmpeg_exe
from afx.media.framing import CUT_THRESHOLD
from afx.media.probe import open_media
from afx.procs import die_with_parent

WINDOW = 0.5  # seconds per audio window
RATE = 16000  # audio samples a second, mono
SILENCE_DB = -45.0
CHUNK = 600.0  # seconds of source per saved chunk (the analyze stage: AFX_ANALYSIS_CHUNK)
FACE_SAMPLES = 16  # keyframes looked at for a facecam, spread over the whole source
PREROLL = 1.0  # seconds of audio decoded (and dropped) before a resumed chunk
UNFLAGGED = 1000  # packets with no keyframe flag among them: then the decoder picks keyframes
# 2: times from the container's start, as ffmpeg's -ss counts; 3: YuNet facecams;
# 4: streamed in chunks (resumable), facecam samples over the whole source, audio on the
# container's clock (a late audio start is padded)
ANALYSIS_VERSION = 4


@dataclass
class Analysis:
    duration: float
    window: float = WINDOW
    energy_db: list[float] = field(default_factory=list)  # per window, dBFS (RMS)
    keyframes: list[float] = field(default_factory=list)  # times of analysed frames
    motion: list[float] = field(default_factory=list)  # per keyframe: change since the previous one, 0-1
    motion_x: list[float] = field(default_factory=list)  # per keyframe: where (0-1 across) the change is
    cuts: list[float] = field(default_factory=list)  # scene cut times (on keyframes)
    silences: list[list[float]] = field(default_factory=list)  # [start, end] pairs
    facecam: list[float] | None = None  # [x, y, w, h] as fractions, when a face sits in a corner

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Analysis:
        return cls(**data)

    def motion_per_window(self) -> list[float]:
        """Keyframe motion spread over the audio windows it covers."""
        n = len(self.energy_db)
        out = [0.0] * n
        if not self.keyframes:
            return out
        for i in range(n):
            t = (i + 0.5) * self.window
            k = _bisect(self.keyframes, t)
            out[i] = self.motion[min(k + 1, len(self.motion) - 1)] if self.motion else 0.0
        return out


def _bisect(times: list[float], t: float) -> int:
    lo, hi = 0, len(times)
    while lo < hi:
        mid = (lo + hi) // 2
        if times[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    return max(lo - 1, 0)


# -- audio --------------------------------------------------------------------------------

def audio_command(path: Path, start: float = 0.0) -> list[str]:
    """The ffmpeg that decodes the audio from `start` (less the pre-roll) as 16 kHz mono s16le.

    `aresample` with first_pts=0 keeps the samples on the container's clock: an audio stream
    that starts late, or a seek that lands after the asked time, is padded, never shifted."""
    seek = ["-ss", f"{start - min(PREROLL, start):.3f}"] if start > 0 else []
    return [ffmpeg_exe(), *BASE, "-loglevel", "error",
            *confine_inputs([*SOURCE_INPUT, *seek, "-i", str(path), "-vn", "-sn", "-dn",
                             "-af", f"aresample={RATE}:async=1:first_pts=0", "-ac", "1", "-ar", str(RATE),
                             "-f", "s16le", "pipe:1"])]


def _db(rms: float) -> float:
    return round(20 * math.log10(rms) if rms > 1e-5 else -100.0, 2)


class _Energy:
    """RMS per window of a source's audio from window `first` on, computed in a thread as
    ffmpeg's pipe delivers it (a few hundred KB held at a time, whatever the length).

    `windows` is the source's whole count: windows past the end of its audio are -100 dB
    (digital silence), and audio past it is not read. No audio: -90 dB throughout."""

    BLOCK = 32  # windows read from the pipe at a time (16 s of audio, 256 KB)

    def __init__(self, path: Path, windows: int, has_audio: bool, first: int = 0) -> None:
        self.path, self.total, self.first = path, windows, first
        self.values: list[float] = []  # windows first, first+1, ... as they are done
        self.cond = threading.Condition()
        self.finished = False
        self.error: BaseException | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        if not has_audio:
            self.values = [-90.0] * (windows - first)
            self.finished = True
            return
        start = first * WINDOW
        self.skip = int(round(min(PREROLL, start) * RATE)) * 2  # bytes of pre-roll to drop
        self.err_tail: deque[str] = deque(maxlen=20)
        self.stopped = False
        self.proc = subprocess.Popen(audio_command(path, start), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=die_with_parent())
        for target in (self._read, self._drain):
            thread = threading.Thread(target=target, daemon=True, name=f"afx-energy-{target.__name__}")
            thread.start()
            self._threads.append(thread)

    @property
    def windows(self) -> int:
        """Windows done so far, counted from the source's start."""
        return self.first + len(self.values)

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.err_tail.append(line)

    def _add(self, values: list[float]) -> None:
        with self.cond:
            self.values.extend(values[: self.total - self.windows])
            self.cond.notify_all()

    def _read(self) -> None:
        import numpy as np

        assert self.proc is not None and self.proc.stdout is not None
        out, per = self.proc.stdout, int(RATE * WINDOW)
        try:
            skip = self.skip
            while skip > 0:
                got = out.read(min(skip, 1 << 20))
                if not got:
                    break
                skip -= len(got)
            rest = b""
            while self.windows < self.total:
                data = out.read(per * 2 * self.BLOCK)
                if not data:
                    break
                data, rest = rest + data, b""
                whole = len(data) // (per * 2)
                rest = data[whole * per * 2:]
                if whole:
                    samples = np.frombuffer(data, dtype=np.int16, count=whole * per).astype(np.float32) / 32768.0
                    squares = samples * samples
                    rms = np.sqrt(np.mean(squares.reshape(whole, per), axis=1))
                    self._add([_db(float(r)) for r in rms])
            if self.windows < self.total:  # the end of the audio: did ffmpeg get there?
                self._check(self.proc.wait())
                if rest:  # the last, shorter window
                    samples = np.frombuffer(rest[: len(rest) // 2 * 2], dtype=np.int16).astype(np.float32) / 32768.0
                    self._add([_db(float(np.sqrt(np.mean(samples * samples))))] if samples.size else [])
                self._add([-100.0] * (self.total - self.windows))
            elif self.proc.poll() is None:  # enough read: the rest of the audio is not needed
                self.stopped = True
                self.proc.kill()
            self._check(self.proc.wait())
            error = None
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits
            error = exc
        with self.cond:
            self.error, self.finished = error, True
            self.cond.notify_all()

    def _check(self, code: int) -> None:
        """A failed ffmpeg fails the analysis (before a window made of its silence is used)."""
        if code != 0 and not self.stopped:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join(timeout=5)  # its last words
            raise MediaError(f"reading the audio of {self.path.name} failed (ffmpeg exit {code})",
                             " | ".join(list(self.err_tail)[-4:]))

    def until(self, window: int) -> list[float]:
        """Block until windows up to `window` (exclusive) are done; all values so far."""
        with self.cond:
            while self.windows < min(window, self.total) and not self.finished:
                self.cond.wait(timeout=0.5)  # a timeout: Ctrl-C is seen while waiting
            if self.error is not None:
                raise self.error
            return self.values

    def close(self) -> None:
        """Stop ffmpeg (an error, an interrupt): nothing is left running."""
        if self.proc is not None and self.proc.poll() is None:
            self.stopped = True
            self.proc.kill()
            self.proc.wait()
        for thread in self._threads:
            thread.join(timeout=5)


def audio_energy(path: Path, duration: float, has_audio: bool) -> list[float]:
    """dBFS (RMS) per 0.5 s window of the whole source, read as a stream."""
    energy = _Energy(path, max(1, math.ceil(duration / WINDOW)), has_audio)
    try:
        return list(energy.until(energy.total))
    finally:
        energy.close()


def silences(energy: list[float], window: float = WINDOW) -> list[list[float]]:
    """Runs of quiet windows (absolute floor, or the quietest tenth of a loud clip)."""
    if not energy:
        return []
    ordered = sorted(energy)
    threshold = max(SILENCE_DB, ordered[len(ordered) // 10] - 1.0) if ordered[-1] > -60 else SILENCE_DB
    threshold = min(threshold, -25.0)
    out, start = [], None
    for i, db in enumerate([*energy, 0.0]):
        if db <= threshold and i < len(energy):
            start = i if start is None else start
        elif start is not None:
            out.append([round(start * window, 3), round(i * window, 3)])
            start = None
    return out


# -- video --------------------------------------------------------------------------------

def _keyframes(path: Path, start: float = 0.0) -> Generator[tuple[float, Any], None, None]:
    """(seconds from the container's start, frame) of each keyframe at or after `start`.

    Only key packets reach the decoder (about 2x faster than letting it skip the others; a
    stream that flags none gets them all after a while, the decoder skipping); a start seeks
    to the keyframe before it (an unseekable file is read from its start instead)."""
    import av

    try:
        with open_media(path) as container:
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            stream.thread_type = "AUTO"
            origin = container.start_time / 1e6 if container.start_time else 0.0  # ffmpeg's -ss counts from it
            if start > 0 and stream.time_base:
                try:
                    container.seek(int((start + origin) / stream.time_base), stream=stream, backward=True)
                except av.error.FFmpegError:
                    pass  # frames before `start` are skipped below
            keyed, skipped = False, 0
            for packet in container.demux(stream):
                if packet.size and not packet.is_keyframe and (keyed or skipped < UNFLAGGED):
                    skipped += 1
                    continue
                keyed = keyed or packet.is_keyframe
                for frame in packet.decode():
                    if frame.time is None:
                        continue
                    t = float(frame.time) - origin
                    if start <= 0 or t >= start:  # as a chunk's start is tested: a frame is in one chunk
                        yield t, frame
    except av.error.FFmpegError as exc:
        raise MediaError(f"analysing {path.name}", str(exc)) from None


class _Motion:
    """Motion and cuts between consecutive keyframes (64x36 grey), the facecam samples."""

    def __init__(self, duration: float, last: Any = None, next_face: int = 0) -> None:
        self.prev, self.prev_hist = None, None
        if last is not None:
            self.prev, self.prev_hist = last, self._hist(last)
        self.targets = [(j + 0.5) * duration / FACE_SAMPLES for j in range(FACE_SAMPLES)]
        self.next_face = next_face

    @staticmethod
    def _hist(small: Any) -> Any:
        import numpy as np

        hist = np.histogram(small, bins=32, range=(0, 256))[0].astype(np.float32)
        return hist / max(hist.sum(), 1.0)

    def add(self, t: float, frame: Any, chunk: _Chunk) -> None:
        import numpy as np

        small = frame.reformat(width=64, height=36, format="gray").to_ndarray().astype(np.float32)
        hist = self._hist(small)
        if self.prev is None:
            chunk.motion.append(0.0)
            chunk.motion_x.append(0.5)
        else:
            diff = np.abs(small - self.prev)
            chunk.motion.append(round(float(diff.mean() / 255.0), 4))
            cols = diff.sum(axis=0)
            total = float(cols.sum())
            centre = float((cols * np.arange(cols.size)).sum() / total / (cols.size - 1)) if total else 0.5
            chunk.motion_x.append(round(centre, 4))
            if float(np.abs(hist - self.prev_hist).sum()) / 2 > CUT_THRESHOLD:
                chunk.cuts.append(round(t, 3))
        self.prev, self.prev_hist = small, hist
        chunk.keyframes.append(round(t, 3))
        if self.next_face < FACE_SAMPLES and self.targets[self.next_face] <= t:
            while self.next_face < FACE_SAMPLES and self.targets[self.next_face] <= t:
                self.next_face += 1
            image = frame.reformat(width=480, height=270, format="gray").to_ndarray()
            chunk.faces.append([round(t, 3), face_hits(image)])

    def last(self) -> str | None:
        import numpy as np

        return None if self.prev is None else base64.b64encode(self.prev.astype(np.uint8).tobytes()).decode()


def keyframe_features(path: Path, on_progress: Callable[[float], None] = lambda f: None,
                      duration: float = 0.0) -> tuple[list[float], list[float], list[float], list[float], list]:
    """Decode keyframes only: times, motion, horizontal motion centre, cuts, and face samples
    ((time, hits) of at most FACE_SAMPLES keyframes spread over `duration`)."""
    chunk = _Chunk(0)
    motion = _Motion(duration)
    for t, frame in _keyframes(path):
        motion.add(t, frame, chunk)
        if duration:
            on_progress(min(t / duration, 1.0))
    return chunk.keyframes, chunk.motion, chunk.motion_x, chunk.cuts, chunk.faces


# -- facecam ------------------------------------------------------------------------------

def face_hits(image: Any) -> list[list[float]]:
    """The small, off-centre faces in a 480x270 grey frame (an overlay camera's candidates),
    as [cx, cy, w, h] fractions; none when face detection is not installed."""
    try:
        import cv2

        from afx.media.faces import detector
        detect = detector()
    except (ImportError, MediaError):  # pragma: no cover - dependencies; split then needs render.facecam
        return []
    return [[round(b.cx, 4), round(b.cy, 4), round(b.w, 4), round(b.h, 4)]
            for b in detect(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
            if b.w < 0.3 and (b.cx < 0.4 or b.cx > 0.6)]  # small and off-centre: an overlay camera


def facecam_from(hits_per_sample: list[list[list[float]]]) -> list[float] | None:
    """The facecam from the face hits of each sampled keyframe: the face box seen in at least
    40% of them, grown to the camera frame around it."""
    hits = sorted(tuple(h) for sample in hits_per_sample for h in sample)
    if not hits_per_sample or len(hits) < max(2, int(0.4 * len(hits_per_sample))):
        return None
    cx, cy, fw, fh = hits[len(hits) // 2]  # the median detection
    bw, bh = min(fw * 2.6, 0.45), min(fh * 2.6, 0.5)
    x = min(max(cx - bw / 2, 0.0), 1.0 - bw)
    y = min(max(cy - bh / 2, 0.0), 1.0 - bh)
    return [round(x, 4), round(y, 4), round(bw, 4), round(bh, 4)]


def find_facecam(samples: list) -> list[float] | None:
    """A face that stays in one corner region across the clip: a streamer's facecam.

    The face detector (YuNet, afx.media.faces) on up to 16 of the (time, 480x270 grey frame)
    samples, evenly spread (see facecam_from)."""
    if not samples:
        return None
    step = max(1, len(samples) // FACE_SAMPLES)
    return facecam_from([face_hits(image) for _, image in samples[::step][:FACE_SAMPLES]])


# -- chunks -------------------------------------------------------------------------------

@dataclass
class _Chunk:
    """One chunk of source time's part of an analysis, as saved between runs."""

    index: int
    energy_db: list[float] = field(default_factory=list)
    keyframes: list[float] = field(default_factory=list)
    motion: list[float] = field(default_factory=list)
    motion_x: list[float] = field(default_factory=list)
    cuts: list[float] = field(default_factory=list)
    faces: list[list[Any]] = field(default_factory=list)  # [time, hits] of the facecam samples in it
    next_face: int = 0  # facecam samples taken by its end
    last: str | None = None  # the last keyframe by its end (64x36 grey, base64): the next one's motion


@dataclass(frozen=True)
class Chunking:
    """How a source of `duration` seconds is cut into chunks of `length` (a whole number of windows)."""

    duration: float
    length: float = CHUNK

    def __post_init__(self) -> None:
        object.__setattr__(self, "length", max(WINDOW, math.floor(self.length / WINDOW + 0.5) * WINDOW))

    @property
    def windows(self) -> int:
        return max(1, math.ceil(self.duration / WINDOW))

    @property
    def count(self) -> int:
        return max(1, math.ceil(self.windows * WINDOW / self.length))

    def start(self, k: int) -> float:
        return k * self.length

    def first_window(self, k: int) -> int:
        return min(round(k * self.length / WINDOW), self.windows)


def _chunk_file(folder: Path, stem: str, k: int) -> Path:
    return folder / f"{stem}.chunk{k:05d}.json"


def _chunk_header(plan: Chunking, has_audio: bool) -> dict[str, Any]:
    return {"analysis": ANALYSIS_VERSION, "duration": plan.duration, "chunk": plan.length, "audio": has_audio}


def load_chunks(folder: Path, stem: str, plan: Chunking, has_audio: bool) -> list[_Chunk]:
    """The finished chunks saved in `folder`, in order, up to the first missing or unusable one."""
    done: list[_Chunk] = []
    header = _chunk_header(plan, has_audio)
    for k in range(plan.count):
        try:
            data = json.loads(_chunk_file(folder, stem, k).read_text())
            if {key: data.get(key) for key in header} != header or data["chunk_index"] != k:
                break
            chunk = _Chunk(**data["part"])
        except (OSError, ValueError, KeyError, TypeError):
            break
        if len(chunk.energy_db) != plan.first_window(k + 1) - plan.first_window(k):
            break
        done.append(chunk)
    return done


def _save(folder: Path, stem: str, plan: Chunking, has_audio: bool, chunk: _Chunk) -> None:
    atomic_write(_chunk_file(folder, stem, chunk.index),
                 json.dumps({**_chunk_header(plan, has_audio), "chunk_index": chunk.index, "part": asdict(chunk)}))


def _run_chunks(path: Path, plan: Chunking, has_audio: bool, done: list[_Chunk],
                on_progress: Callable[[float], None], save: Callable[[_Chunk], None]) -> list[_Chunk]:
    """Analyse the chunks after `done`: audio (a thread on ffmpeg's pipe) and video (PyAV,
    here) at once, each chunk finished, and saved, once both are past its end."""
    import numpy as np

    first = len(done)
    last = done[-1] if done else None
    prev = (np.frombuffer(base64.b64decode(last.last), dtype=np.uint8).reshape(36, 64).astype(np.float32)
            if last is not None and last.last else None)
    motion = _Motion(plan.duration, prev, last.next_face if last is not None else 0)
    energy = _Energy(path, plan.windows, has_audio, plan.first_window(first))
    out: list[_Chunk] = []
    current = _Chunk(first)

    def finish(chunk: _Chunk) -> None:
        lo, hi = plan.first_window(chunk.index), plan.first_window(chunk.index + 1)
        chunk.energy_db = energy.until(hi)[lo - energy.first:hi - energy.first]
        chunk.next_face, chunk.last = motion.next_face, motion.last()
        save(chunk)
        out.append(chunk)
        on_progress(min(plan.start(chunk.index + 1) / plan.duration, 1.0) if plan.duration else 1.0)

    frames = _keyframes(path, plan.start(first))
    try:
        for t, frame in frames:
            while current.index < plan.count - 1 and t >= plan.start(current.index + 1):
                finish(current)
                current = _Chunk(current.index + 1)
            motion.add(t, frame, current)
            if plan.duration:
                on_progress(min(t / plan.duration, 1.0))
        while True:
            finish(current)
            if current.index >= plan.count - 1:
                break
            current = _Chunk(current.index + 1)
    finally:
        frames.close()  # the file, at once
        energy.close()
    return out


def join(plan: Chunking, chunks: list[_Chunk]) -> Analysis:
    """The analysis of the whole source from its chunks: silences and the facecam over all of it."""
    energy = [db for c in chunks for db in c.energy_db]
    return Analysis(duration=plan.duration, energy_db=energy,
                    keyframes=[t for c in chunks for t in c.keyframes], motion=[m for c in chunks for m in c.motion],
                    motion_x=[x for c in chunks for x in c.motion_x], cuts=[t for c in chunks for t in c.cuts],
                    silences=silences(energy), facecam=facecam_from([hits for c in chunks for _, hits in c.faces]))


def analyse(path: Path, duration: float, has_audio: bool,
            on_progress: Callable[[float], None] = lambda f: None, *, chunk: float = CHUNK,
            resume: Path | None = None, stem: str = "analysis",
            on_resumed: Callable[[int, int], None] = lambda done, total: None) -> Analysis:
    """The analysis of a source. With `resume` (an existing folder), each finished chunk is
    saved there as `<stem>.chunkNNNNN.json`, and the chunks found there from an interrupted
    run are used instead of analysed again (`on_resumed(done, total)` says how many)."""
    plan = Chunking(duration, chunk)
    done = load_chunks(resume, stem, plan, has_audio) if resume is not None else []
    on_resumed(len(done), plan.count)
    on_progress(min(plan.start(len(done)) / duration, 1.0) if duration else 0.0)
    if len(done) < plan.count:
        def save(part: _Chunk) -> None:
            if resume is not None:
                _save(resume, stem, plan, has_audio, part)

        done += _run_chunks(path, plan, has_audio, done, on_progress, save)
    return join(plan, done)
