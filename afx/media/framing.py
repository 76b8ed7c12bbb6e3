"""Framing people in a vertical crop of landscape footage (issue 12): the `auto` layout.

Per segment of the cut, from face boxes sampled over it (afx.media.faces):
- one subject, or several who fit one 9:16 crop: a **virtual camera** pans a 9:16 window
  over the source. It holds still while the subject stays inside a dead zone around the
  window's centre, eases towards the subject when it nears the edge (speed and acceleration
  limited: never more than a fraction of a percent of the frame width per frame), and is
  set afresh at scene cuts, never panned across one;
- two subjects who do not fit one crop (an interview in split screen, two podiums): they are
  **stacked**, each in its own 9:8 window, the left one on top;
- no face: the camera follows where the picture moves (`motion`), with the same dead zone,
  so a static or evenly busy picture stays centred.

All positions are fractions of the source frame (0-1) until `crop_path` turns a path into
source pixels; the render turns it into an ffmpeg expression of numbers only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

FPS = 30
DEAD_ZONE = 0.16  # of the crop's width: the subject may wander this far from centre unfollowed
MAX_SPEED = 0.22  # of the frame width per second (0.73 % a frame at 30 fps)
MAX_ACCEL = 0.6  # of the frame width per second per second
MARGIN = 0.18  # of a face's width kept around it inside the crop
STACK_MIN_GAP = 0.05  # faces closer than this (fraction of width) are one group, not two subjects

# The histogram distance (0..1) between two frames that counts as a scene cut: analysis finds
# cuts on keyframes with it, the face scan between them (afx.media.faces).
CUT_THRESHOLD = 0.45


@dataclass(frozen=True)
class Box:
    """A face: centre and size as fractions of the frame, and the detector's confidence."""

    cx: float
    cy: float
    w: float
    h: float
    score: float = 1.0
    frontal: float = 1.0  # 1: looking at the camera; 0: in profile (from the nose between the eyes)

    @property
    def left(self) -> float:
        return self.cx - self.w / 2

    @property
    def right(self) -> float:
        return self.cx + self.w / 2


@dataclass
class Framing:
    """How one segment is framed: "crop" (a path of the window's centre), "stack" (two fixed
    windows), or "fit" (the whole frame over a blurred copy)."""

    mode: str
    path: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the segment, centre x 0-1)
    windows: list[tuple[float, float, float, float]] = field(default_factory=list)  # stack: (x, y, w, h) 0-1
    subjects: int = 0

    def to_dict(self) -> dict:
        out: dict = {"mode": self.mode, "subjects": self.subjects}
        if self.path:
            out["path"] = [[round(t, 3), round(x, 4)] for t, x in self.path]
        if self.windows:
            out["windows"] = [[round(v, 4) for v in w] for w in self.windows]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Framing:
        return cls(data["mode"], [tuple(p) for p in data.get("path", [])],
                   [tuple(w) for w in data.get("windows", [])], int(data.get("subjects", 0)))


def crop_width(src_w: int, src_h: int, out_w: int, out_h: int) -> float:
    """The 9:16 window's width as a fraction of the source's width."""
    return min((src_h * out_w / out_h) / src_w, 1.0)


def tracks(samples: Sequence[tuple[float, Sequence[Box]]], reach: float = 0.12) -> list[list[tuple[float, Box]]]:
    """Faces linked over time by nearness (a face is the one nearest where a track last was)."""
    out: list[list[tuple[float, Box]]] = []
    for t, boxes in samples:
        free = list(range(len(out)))
        for b in sorted(boxes, key=lambda b: -b.w):
            best = min(free, key=lambda k: abs(out[k][-1][1].cx - b.cx) + abs(out[k][-1][1].cy - b.cy), default=None)
            if best is not None and abs(out[best][-1][1].cx - b.cx) < max(reach, b.w):
                out[best].append((t, b))
                free.remove(best)
            else:
                out.append([(t, b)])
    return out


def subjects(samples: Sequence[tuple[float, Sequence[Box]]], min_share: float = 0.3) -> list[list[tuple[float, Box]]]:
    """The tracks that are people of the shot: seen in at least `min_share` of the samples
    (a face glimpsed once is not a subject), largest first."""
    n = max(len(samples), 1)
    every = tracks(samples)
    found = [tr for tr in every if len(tr) >= max(1, min_share * n)]
    if not found:  # nobody steady: the most-seen face, if it was seen more than once
        best = max(every, key=len, default=[])
        found = [best] if len(best) >= 2 else []
    return sorted(found, key=lambda tr: -sum(b.w for _, b in tr) / len(tr))


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2] if s else 0.0


def choose(boxes: Sequence[Box], which: str) -> list[Box]:
    """One face of a frame, as a spec's framing names it: left, right or largest."""
    if not boxes:
        return []
    pick = {"left": min(boxes, key=lambda b: b.cx), "right": max(boxes, key=lambda b: b.cx)}.get(
        which, max(boxes, key=lambda b: b.w))
    return [pick]


def frame(samples: Sequence[tuple[float, Sequence[Box]]], duration: float, cw: float,
          motion: Sequence[tuple[float, float]] = (), cuts: Sequence[float] = (), aspect: float = 9 / 16,
          stack: bool = True) -> Framing:
    """The framing of one shot (no scene cut inside: see `shots`) `duration` seconds long whose
    faces are `samples` ((seconds into the shot, boxes)), for a window `cw` wide (fraction of
    the source width), of a source whose height is `aspect` times its width."""
    people = subjects(samples)
    if not people:
        targets = [(t, x) for t, x in motion]
        return Framing("crop", camera(targets, duration, cw, cuts), subjects=0)
    if not stack:
        people = people[:1]
    main = people[:2]
    if len(main) == 2:  # two people of the shot are two only if seen together
        together = len({t for t, _ in main[0]} & {t for t, _ in main[1]})
        if together < 0.5 * min(len(main[0]), len(main[1])):
            main, people = main[:1], people[:1]
    spread = (max(_median([b.right for _, b in tr]) for tr in main)
              - min(_median([b.left for _, b in tr]) for tr in main))
    if stack and len(main) == 2 and spread + 2 * MARGIN * max(_median([b.w for _, b in tr]) for tr in main) > cw:
        a, b = sorted(main, key=lambda tr: _median([bx.cx for _, bx in tr]))
        return Framing("stack", windows=[_window(a, aspect), _window(b, aspect)], subjects=2)
    group = people if len(people) > 1 and spread <= cw else people[:1]
    targets = []
    times = sorted({t for tr in group for t, _ in tr})
    for t in times:
        near = [min(tr, key=lambda p: abs(p[0] - t))[1] for tr in group]
        targets.append((t, (min(b.left for b in near) + max(b.right for b in near)) / 2))
    return Framing("crop", camera(targets, duration, cw, cuts), subjects=len(group))


def shots(start: float, end: float, cuts: Sequence[float], shortest: float = 0.5) -> list[tuple[float, float]]:
    """[start, end] split at the scene cuts inside it: each part is framed on its own (the
    camera is set afresh at a cut, never panned across it). A part shorter than `shortest`
    stays with its neighbour."""
    points = [start] + [c for c in sorted(cuts) if start + shortest <= c <= end - shortest] + [end]
    out: list[tuple[float, float]] = []
    for a, b in zip(points, points[1:]):
        if out and a - out[-1][0] < shortest:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _window(track: Sequence[tuple[float, Box]], aspect: float) -> tuple[float, float, float, float]:
    """A 9:8 window (half of a 9:16 frame, in source fractions) around one person: the face
    in its upper part, head and shoulders in view."""
    cx, cy = _median([b.cx for _, b in track]), _median([b.cy for _, b in track])
    fh = _median([b.h for _, b in track])
    h = min(max(fh * 2.6, 0.35), 1.0)
    w = min(h * (9 / 8) * aspect, 1.0)  # a 9:8 window, h of the source's height
    x = min(max(cx - w / 2, 0.0), 1.0 - w)
    y = min(max(cy - h * 0.42, 0.0), 1.0 - h)
    return (x, y, w, h)


def camera(targets: Sequence[tuple[float, float]], duration: float, cw: float,
           cuts: Sequence[float] = ()) -> list[tuple[float, float]]:
    """The window's centre over time: a dead-zone camera with limited speed and acceleration,
    set at once at the start and at each cut, as (seconds, centre) keyframes."""
    lo, hi = cw / 2, 1 - cw / 2
    if hi <= lo or not targets:
        return [(0.0, 0.5), (round(duration, 3), 0.5)]
    targets = sorted(targets)
    step = 1 / FPS
    frames = max(int(round(duration * FPS)), 1)
    bounds = sorted(c for c in cuts if 0 < c < duration)

    def target_at(t: float) -> float:
        if t <= targets[0][0]:
            return targets[0][1]
        for (t0, x0), (t1, x1) in zip(targets, targets[1:]):
            if t0 <= t <= t1:
                return x0 + (x1 - x0) * (t - t0) / max(t1 - t0, 1e-6)
        return targets[-1][1]

    def clamp(x: float) -> float:
        return min(max(x, lo), hi)

    xs: list[float] = []
    pos = clamp(target_at(0.0))
    speed = 0.0
    next_cut = 0
    for i in range(frames + 1):
        t = i * step
        if next_cut < len(bounds) and t >= bounds[next_cut]:
            pos, speed = clamp(target_at(t)), 0.0  # a cut: set, do not pan across it
            next_cut += 1
        goal = clamp(target_at(t))
        off = goal - pos
        zone = DEAD_ZONE * cw
        if abs(off) > zone:  # follow until the subject is back near the centre
            want = (off - (zone * 0.25 if off > 0 else -zone * 0.25)) * 2.5
        else:
            want = 0.0
        want = max(min(want, MAX_SPEED), -MAX_SPEED)
        delta = want - speed
        speed += max(min(delta, MAX_ACCEL * step), -MAX_ACCEL * step)
        pos = clamp(pos + speed * step)
        xs.append(pos)
    return _simplify([(i * step, x) for i, x in enumerate(xs)], tolerance=0.001)


def _simplify(points: list[tuple[float, float]], tolerance: float) -> list[tuple[float, float]]:
    """Fewer keyframes, the path kept within `tolerance` (Douglas-Peucker)."""
    if len(points) < 3:
        return points
    (t0, x0), (t1, x1) = points[0], points[-1]
    worst, at = 0.0, 0
    for k in range(1, len(points) - 1):
        t, x = points[k]
        line = x0 + (x1 - x0) * (t - t0) / max(t1 - t0, 1e-9)
        if abs(x - line) > worst:
            worst, at = abs(x - line), k
    if worst <= tolerance:
        return [points[0], points[-1]]
    return _simplify(points[:at + 1], tolerance)[:-1] + _simplify(points[at:], tolerance)


def contains(window_centre: float, cw: float, box: Box) -> bool:
    """The face lies wholly inside the window (horizontally)."""
    return window_centre - cw / 2 <= box.left and box.right <= window_centre + cw / 2


def windows_at(framing: dict, t: float, cw: float) -> list[tuple[float, float, float, float]]:
    """What a framing shows of the source at t seconds into its shot: (x, y, w, h) fractions."""
    if framing.get("mode") == "stack":
        return [tuple(w) for w in framing.get("windows", [])]
    path = framing.get("path") or []
    if framing.get("mode") == "crop" and path:
        x = path[-1][1]
        for (t0, x0), (t1, x1) in zip(path, path[1:]):
            if t0 <= t <= t1:
                x = x0 + (x1 - x0) * (t - t0) / max(t1 - t0, 1e-9)
                break
        return [(x - cw / 2, 0.0, cw, 1.0)]
    return [(0.0, 0.0, 1.0, 1.0)]


def inside(box: Box, window: tuple[float, float, float, float]) -> bool:
    x, y, w, h = window
    return (x - 1e-3 <= box.left and box.right <= x + w + 1e-3
            and y - 1e-3 <= box.cy - box.h / 2 and box.cy + box.h / 2 <= y + h + 1e-3)


def kept(samples: Sequence[tuple[float, Sequence[Box]]], framing: dict, cw: float) -> tuple[int, int]:
    """(moments with a face, moments at which a face lies wholly in what the output shows)."""
    moments = hits = 0
    for t, boxes in samples:
        if boxes:
            moments += 1
            hits += any(inside(b, w) for b in boxes for w in windows_at(framing, t, cw))
    return moments, hits
