"""What happens when in a source: loudness, motion, scene cuts, silences, a facecam (issue 4).

Streamers cut shorts from multi-hour VODs, so analysis must run far faster than real time on
two cores. Full decoding of 1080p runs at ~11x real time here (bench/analyze.py), so video
is analysed on keyframes only (`skip_frame=NONKEY`, ~0.5 per second in stream recordings,
at 170x real time), scaled to 64x36 grey; audio (cheap to decode) is analysed in full, in
0.5 s windows. Cuts therefore land on keyframes or silences, which is also where a cut looks
clean.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from afx.media.ffmpeg import SOURCE_INPUT, MediaError, run
from afx.media.framing import CUT_THRESHOLD
from afx.media.probe import open_media

WINDOW = 0.5  # seconds per audio window
SILENCE_DB = -45.0
ANALYSIS_VERSION = 3  # 2: times from the container's start, as ffmpeg's -ss counts; 3: YuNet facecams


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


def audio_energy(path: Path, duration: float, has_audio: bool) -> list[float]:
    import numpy as np

    n = max(1, math.ceil(duration / WINDOW))
    if not has_audio:
        return [-90.0] * n
    rate = 16000
    raw = run([*SOURCE_INPUT, "-i", str(path), "-vn", "-ac", "1", "-ar", str(rate), "-f", "s16le", "pipe:1"],
              what=f"reading the audio of {path.name}", capture_stdout=True)
    samples = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0
    per = int(rate * WINDOW)
    out = []
    for i in range(n):
        chunk = samples[i * per:(i + 1) * per]
        rms = float(np.sqrt(np.mean(chunk * chunk))) if chunk.size else 0.0
        out.append(round(20 * math.log10(rms) if rms > 1e-5 else -100.0, 2))
    return out


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


def keyframe_features(path: Path, on_progress: Callable[[float], None] = lambda f: None,
                      duration: float = 0.0) -> tuple[list[float], list[float], list[float], list[float], list]:
    """Decode keyframes only: times, motion, horizontal motion centre, cuts, and face samples."""
    import av
    import numpy as np

    times: list[float] = []
    motion: list[float] = []
    motion_x: list[float] = []
    cuts: list[float] = []
    samples: list = []  # (time, small grey frame) for face detection
    prev = None
    prev_hist = None
    try:
        with open_media(path) as container:
            stream = container.streams.video[0]
            stream.codec_context.skip_frame = "NONKEY"
            stream.thread_type = "AUTO"
            origin = container.start_time / 1e6 if container.start_time else 0.0  # ffmpeg's -ss counts from it
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                t = float(frame.time) - origin
                small = frame.reformat(width=64, height=36, format="gray").to_ndarray().astype(np.float32)
                hist = np.histogram(small, bins=32, range=(0, 256))[0].astype(np.float32)
                hist /= max(hist.sum(), 1.0)
                if prev is None:
                    motion.append(0.0)
                    motion_x.append(0.5)
                else:
                    diff = np.abs(small - prev)
                    motion.append(round(float(diff.mean() / 255.0), 4))
                    cols = diff.sum(axis=0)
                    total = float(cols.sum())
                    centre = float((cols * np.arange(cols.size)).sum() / total / (cols.size - 1)) if total else 0.5
                    motion_x.append(round(centre, 4))
                    assert prev_hist is not None  # set with prev
                    if float(np.abs(hist - prev_hist).sum()) / 2 > CUT_THRESHOLD:
                        cuts.append(round(t, 3))
                prev, prev_hist = small, hist
                times.append(round(t, 3))
                if len(samples) < 400:
                    samples.append((t, frame.reformat(width=480, height=270, format="gray").to_ndarray()))
                if duration:
                    on_progress(min(t / duration, 1.0))
    except av.error.FFmpegError as exc:
        raise MediaError(f"analysing {path.name}", str(exc)) from None
    return times, motion, motion_x, cuts, samples


def find_facecam(samples: list) -> list[float] | None:
    """A face that stays in one corner region across the clip: a streamer's facecam.

    The face detector (YuNet, afx.media.faces) on up to 16 keyframes at 480x270; the
    facecam is the face box seen in at least 40% of them, grown to the camera frame around it.
    """
    if not samples:
        return None
    try:
        import cv2

        from afx.media.faces import detector
        detect = detector()
    except (ImportError, MediaError):  # pragma: no cover - dependencies; split then needs render.facecam
        return None
    step = max(1, len(samples) // 16)
    picked = samples[::step][:16]
    hits = []
    for _, image in picked:
        for b in detect(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)):
            if b.w < 0.3 and (b.cx < 0.4 or b.cx > 0.6):  # small and off-centre: an overlay camera
                hits.append((b.cx, b.cy, b.w, b.h))
    if len(hits) < max(2, int(0.4 * len(picked))):
        return None
    hits.sort()
    cx, cy, fw, fh = hits[len(hits) // 2]  # the median detection
    bw, bh = min(fw * 2.6, 0.45), min(fh * 2.6, 0.5)
    x = min(max(cx - bw / 2, 0.0), 1.0 - bw)
    y = min(max(cy - bh / 2, 0.0), 1.0 - bh)
    return [round(x, 4), round(y, 4), round(bw, 4), round(bh, 4)]


def analyse(path: Path, duration: float, has_audio: bool,
            on_progress: Callable[[float], None] = lambda f: None) -> Analysis:
    energy = audio_energy(path, duration, has_audio)
    on_progress(0.1)
    times, motion, motion_x, cuts, samples = keyframe_features(
        path, lambda f: on_progress(0.1 + 0.85 * f), duration)
    return Analysis(duration=duration, energy_db=energy, keyframes=times, motion=motion, motion_x=motion_x,
                    cuts=cuts, silences=silences(energy), facecam=find_facecam(samples))
