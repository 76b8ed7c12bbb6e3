"""Choose the parts of the sources that make the video (issue 4).

The sources are cut into shots at scene cuts and silences (never shorter than MIN_SHOT,
long shots split near their quietest moment), each shot scored by how loud and how busy it
is relative to the rest, and the best shots taken until the target is filled, then put back
in source order. A source shorter than the target is used whole, never padded.
All times are on the output frame grid, so audio and video segments have equal lengths.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from afx.media.analysis import Analysis

MIN_SHOT = 1.5
MAX_SHOT = 8.0


@dataclass(frozen=True)
class Segment:
    source: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        return {"source": self.source, "start": self.start, "end": self.end}


def snap(t: float, fps: int) -> float:
    return round(round(t * fps) / fps, 6)


def _zscores(values: Sequence[float]) -> list[float]:
    if len(values) < 2:
        return [0.0] * len(values)
    mean = statistics.fmean(values)
    spread = statistics.pstdev(values) or 1.0
    return [(v - mean) / spread for v in values]


def window_scores(a: Analysis) -> list[float]:
    energy = _zscores([max(db, -60.0) for db in a.energy_db])
    motion = _zscores(a.motion_per_window())
    return [0.6 * e + 0.4 * m for e, m in zip(energy, motion)]


def shots(a: Analysis) -> list[tuple[float, float]]:
    """Cut points: 0, scene cuts, middles of silences, the end; then even out shot lengths."""
    points = {0.0, a.duration}
    points.update(c for c in a.cuts if 0 < c < a.duration)
    points.update((s + e) / 2 for s, e in a.silences if 0 < (s + e) / 2 < a.duration)
    ordered = sorted(points)
    merged = [ordered[0]]
    for p in ordered[1:]:
        if p - merged[-1] < MIN_SHOT and p != a.duration:
            continue
        merged.append(p)
    if len(merged) > 2 and merged[-1] - merged[-2] < MIN_SHOT:
        del merged[-2]
    out: list[tuple[float, float]] = []
    for start, end in zip(merged, merged[1:]):
        pieces = max(1, round((end - start) / MAX_SHOT + 0.49))
        step = (end - start) / pieces
        bounds = [start] + [_quietest(a, start + i * step, step / 3) for i in range(1, pieces)] + [end]
        out.extend(zip(bounds, bounds[1:]))
    return out


def _quietest(a: Analysis, t: float, reach: float) -> float:
    """The quietest window boundary within `reach` of t: where a long shot is split."""
    lo, hi = int((t - reach) / a.window), int((t + reach) / a.window)
    best = min(range(max(lo, 1), max(min(hi, len(a.energy_db) - 1), lo + 1) + 1),
               key=lambda i: (a.energy_db[min(i, len(a.energy_db) - 1)], abs(i * a.window - t)), default=None)
    return t if best is None else best * a.window


def _score(scores: list[float], window: float, start: float, end: float) -> float:
    i, j = int(start / window), max(int(start / window) + 1, int(end / window))
    part = scores[i:j]
    return statistics.fmean(part) if part else -10.0


def select(analyses: Sequence[Analysis], target: float, fps: int = 30) -> list[Segment]:
    """Segments filling `target` seconds (or everything, when the sources are shorter)."""
    total = sum(a.duration for a in analyses)
    if total <= target + 0.5 / fps:
        return [Segment(i, 0.0, snap(a.duration, fps)) for i, a in enumerate(analyses)
                if snap(a.duration, fps) > 0]
    candidates = []
    for i, a in enumerate(analyses):
        scores = window_scores(a)
        for start, end in shots(a):
            candidates.append((_score(scores, a.window, start, end), i, start, end))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    chosen: list[Segment] = []
    filled = 0.0
    for _, i, start, end in candidates:
        room = target - filled
        if room < 0.5:
            break
        length = min(end - start, room)
        if length < min(MIN_SHOT, room):
            continue
        if length < end - start:  # only part of the shot fits: take its best part
            start = _best_part(window_scores(analyses[i]), analyses[i].window, start, end, length)
        seg = Segment(i, snap(start, fps), snap(start + length, fps))
        if seg.duration <= 0:
            continue
        chosen.append(seg)
        filled += seg.duration
    chosen.sort(key=lambda s: (s.source, s.start))
    return _join_adjacent(chosen)


def _best_part(scores: list[float], window: float, start: float, end: float, length: float) -> float:
    """Start of the `length`-second stretch of [start, end] with the highest score."""
    best, best_score = start, float("-inf")
    t = start
    while t + length <= end + 1e-9:
        score = _score(scores, window, t, t + length)
        if score > best_score:
            best, best_score = t, score
        t += window
    return best


def _join_adjacent(segments: list[Segment]) -> list[Segment]:
    """Neighbouring shots of one source become one segment: fewer seams, same content."""
    out: list[Segment] = []
    for seg in segments:
        if out and out[-1].source == seg.source and abs(out[-1].end - seg.start) < 1e-6:
            out[-1] = Segment(seg.source, out[-1].start, seg.end)
        else:
            out.append(seg)
    return out
