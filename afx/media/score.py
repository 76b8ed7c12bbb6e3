"""A 0-100 quality score a person can act on: each part measured, given points, explained.

Parts (points): hook 20 (motion, loudness and text in the first 3 s), loudness 15 (-14 LUFS,
true peak under -1 dBTP), captions 15 (how much of the speech is captioned), duration 10
(fits the format and the platforms), picture 10 (resolution and fps of the profile),
silence 15 (share of the video that is quiet), pace 15 (cuts per minute). Everything is
measured on the finished file, so the same video always gets the same score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from afx.media.analysis import Analysis


@dataclass
class Part:
    name: str
    value: Any
    points: float
    max: int
    suggestion: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "points": round(self.points, 1), "max": self.max,
                "suggestion": self.suggestion}


def _scale(x: float, lo: float, hi: float) -> float:
    """0 at lo, 1 at hi (either way round), clipped."""
    if hi == lo:
        return 1.0
    return min(max((x - lo) / (hi - lo), 0.0), 1.0)


def score(*, analysis: Analysis, loudness: dict[str, float], width: int, height: int, fps: float,
          expected: tuple[int, int, int], seconds: float, target: float, max_seconds: float,
          speech: Sequence[tuple[float, float]], captioned: Sequence[tuple[float, float]],
          text_in_hook: bool, seams: int) -> dict[str, Any]:
    parts: list[Part] = []
    # hook: the first 3 seconds
    early = [m for t, m in zip(analysis.keyframes, analysis.motion) if t <= 3.0]
    hook_motion = max(early, default=0.0)
    n_hook = max(1, int(3.0 / analysis.window))
    hook_db = sum(analysis.energy_db[:n_hook]) / max(len(analysis.energy_db[:n_hook]), 1)
    hook = 8 * _scale(hook_motion, 0.0, 0.04) + 6 * _scale(hook_db, -45, -22) + (6 if text_in_hook else 0)
    parts.append(Part("hook", {"motion": round(hook_motion, 4), "level_db": round(hook_db, 1), "text": text_in_hook},
                      hook, 20, "" if hook >= 14 else "open with movement, sound and a line of text in the first "
                      "3 seconds"))
    # loudness
    off = abs(loudness["integrated"] + 14)
    tp_ok = loudness["true_peak"] <= -1.0
    loud = 12 * (1 - _scale(off, 0.5, 4.0)) + (3 if tp_ok else 0)
    parts.append(Part("loudness", {"lufs": loudness["integrated"], "true_peak": loudness["true_peak"]}, loud, 15,
                      "" if loud >= 12 else f"integrated loudness {loudness['integrated']} LUFS: aim for -14"
                      + ("" if tp_ok else ", and keep true peaks under -1 dBTP")))
    # captions coverage of speech
    spoken = sum(e - s for s, e in speech)
    if spoken < 0.5:
        parts.append(Part("captions", {"speech_s": round(spoken, 1), "covered": None}, 15, 15))
    else:
        covered = sum(max(0.0, min(e, ce) - max(s, cs)) for s, e in speech for cs, ce in captioned)
        share = min(covered / spoken, 1.0)
        parts.append(Part("captions", {"speech_s": round(spoken, 1), "covered": round(share, 3)}, 15 * share, 15,
                          "" if share >= 0.8 else "turn captions on: most viewers watch without sound"))
    # duration fit
    fits = seconds <= max_seconds + 0.05
    closeness = 1 - _scale(abs(seconds - target) / max(target, 1.0), 0.1, 0.6)
    dur = (6 if fits else 0) + 4 * closeness
    parts.append(Part("duration", {"seconds": round(seconds, 2), "target": target, "limit": max_seconds}, dur, 10,
                      "" if dur >= 8 else (f"{seconds:.0f} s is over the {max_seconds:.0f} s limit" if not fits
                                           else f"{seconds:.0f} s against a target of {target:.0f} s")))
    # picture
    ew, eh, efps = expected
    pic = (7 if (width, height) == (ew, eh) else 0) + (3 if abs(fps - efps) < 0.5 else 0)
    parts.append(Part("picture", {"size": f"{width}x{height}", "fps": fps, "expected": f"{ew}x{eh}@{efps}"}, pic, 10,
                      "" if pic == 10 else f"render at {ew}x{eh}, {efps} fps"))
    # silence
    quiet = sum(1 for db in analysis.energy_db if db < -45) / max(len(analysis.energy_db), 1)
    sil = 15 * (1 - _scale(quiet, 0.1, 0.5))
    parts.append(Part("silence", {"quiet_share": round(quiet, 3)}, sil, 15,
                      "" if sil >= 11 else f"{quiet:.0%} of the video is silent: add voice or music"))
    # pace: cuts per minute (scene changes on screen plus the edit's seams)
    cuts = len(analysis.cuts) + seams
    per_min = cuts / max(seconds / 60, 1 / 60)
    pace = 15 * (_scale(per_min, 0, 6) if per_min < 6 else 1 - _scale(per_min, 40, 90))
    parts.append(Part("pace", {"cuts_per_minute": round(per_min, 1)}, pace, 15,
                      "" if pace >= 11 else ("cut more often: a change every 5-10 s holds attention" if per_min < 6
                                             else "fewer cuts: the pace is hard to follow")))
    total = int(round(sum(p.points for p in parts)))
    return {"total": total, "parts": [p.to_dict() for p in parts]}
