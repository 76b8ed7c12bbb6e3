"""A 0-100 quality score a person can act on: each part measured, given points, explained.

Parts (points): hook 20 (motion, loudness and text in the first 3 s), loudness 10 (-14 LUFS,
true peak under -1 dBTP), captions 15 (the footage's spoken words found, in order, in the
captions; a voiceover's captions do not count for it), voice 10 (the voiceover keeps off the
footage's speech), framing 10 (a face the footage shows is wholly in the frame), duration 10
(fits the format and the platforms), picture 5 (resolution and fps of the profile), silence
10 (share of the video that is quiet), pace 10 (cuts per minute). Everything is measured on
the finished file and the recorded choices, so the same video always gets the same score
(issue 12: captions of the voice over a talking head scored 15/15, 81 in all).
"""

from __future__ import annotations

import re
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


def _tokens(text: str) -> list[str]:
    return [t for t in (re.sub(r"[^a-z0-9]", "", w.lower()) for w in text.split()) if t]


def in_order(reference: Sequence[str], found: Sequence[str]) -> float:
    """The share of `reference` found in `found` in order (longest common subsequence)."""
    if not reference:
        return 1.0
    prev = [0] * (len(found) + 1)
    for r in reference:
        cur = [0]
        for j, f in enumerate(found):
            cur.append(prev[j] + 1 if r == f else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1] / len(reference)


def score(*, analysis: Analysis, loudness: dict[str, float], width: int, height: int, fps: float,
          expected: tuple[int, int, int], seconds: float, target: float, max_seconds: float,
          speech: Sequence[tuple[float, float]], captioned: Sequence[tuple[float, float]],
          text_in_hook: bool, seams: int, heard: Sequence[dict] = (), caption_text: str | None = None,
          voice: Sequence[tuple[float, float]] = (), faces: dict | None = None) -> dict[str, Any]:
    """`speech`/`captioned`: spans of all speech and of captioned speech; `heard`: the footage's
    words (text, start, end, output timeline); `caption_text`: what the captions say; `voice`:
    the voiceover's spans; `faces`: {"moments", "kept"} from the auto layout's framing."""
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
    loud = 8 * (1 - _scale(off, 0.5, 4.0)) + (2 if tp_ok else 0)
    parts.append(Part("loudness", {"lufs": loudness["integrated"], "true_peak": loudness["true_peak"]}, loud, 10,
                      "" if loud >= 8 else f"integrated loudness {loudness['integrated']} LUFS: aim for -14"
                      + ("" if tp_ok else ", and keep true peaks under -1 dBTP")))
    # captions: of the footage's speech word for word when it speaks, else of all speech
    spoken = sum(e - s for s, e in speech)
    source_words = _tokens(" ".join(w["text"] for w in heard))
    if source_words and caption_text is not None:
        share = in_order(source_words, _tokens(caption_text)) if captioned else 0.0
        parts.append(Part("captions", {"source_words": len(source_words), "covered": round(share, 3)}, 15 * share,
                          15, "" if share >= 0.9 else "caption what the footage says: most viewers watch without "
                          "sound" if captioned else "turn captions on: most viewers watch without sound"))
    elif spoken < 0.5:
        parts.append(Part("captions", {"speech_s": round(spoken, 1), "covered": None}, 15, 15))
    else:
        covered = sum(max(0.0, min(e, ce) - max(s, cs)) for s, e in speech for cs, ce in captioned)
        share = min(covered / spoken, 1.0)
        parts.append(Part("captions", {"speech_s": round(spoken, 1), "covered": round(share, 3)}, 15 * share, 15,
                          "" if share >= 0.8 else "turn captions on: most viewers watch without sound"))
    # the voiceover keeps off the footage's speech
    talk = sum(w["end"] - w["start"] for w in heard)
    if talk > 0.2 and voice:
        over = sum(max(0.0, min(e, w["end"]) - max(s, w["start"])) for s, e in voice for w in heard)
        clear = 1 - min(over / talk, 1.0)
        parts.append(Part("voice", {"over_speech_s": round(over, 2), "speech_s": round(talk, 1)}, 10 * clear, 10,
                          "" if clear >= 0.95 else f"the voiceover talks over {over:.1f} s of the footage's speech: "
                          "move it to a pause, or drop it (render.voice: none)"))
    else:
        parts.append(Part("voice", {"over_speech_s": 0.0, "speech_s": round(talk, 1)}, 10, 10))
    # framing: faces the footage shows, wholly in frame
    if faces and faces.get("moments"):
        share = faces["kept"] / faces["moments"]
        parts.append(Part("framing", {"faces_kept": round(share, 3), "moments": faces["moments"]}, 10 * share, 10,
                          "" if share >= 0.9 else "faces leave the frame: pin the framing (render.segments[].framing)"
                          " or use layout: fit"))
    else:
        parts.append(Part("framing", {"faces_kept": None}, 10, 10))
    # duration fit
    fits = seconds <= max_seconds + 0.05
    closeness = 1 - _scale(abs(seconds - target) / max(target, 1.0), 0.1, 0.6)
    dur = (6 if fits else 0) + 4 * closeness
    parts.append(Part("duration", {"seconds": round(seconds, 2), "target": target, "limit": max_seconds}, dur, 10,
                      "" if dur >= 8 else (f"{seconds:.0f} s is over the {max_seconds:.0f} s limit" if not fits
                                           else f"{seconds:.0f} s against a target of {target:.0f} s")))
    # picture
    ew, eh, efps = expected
    pic = (3.5 if (width, height) == (ew, eh) else 0) + (1.5 if abs(fps - efps) < 0.5 else 0)
    parts.append(Part("picture", {"size": f"{width}x{height}", "fps": fps, "expected": f"{ew}x{eh}@{efps}"}, pic, 5,
                      "" if pic == 5 else f"render at {ew}x{eh}, {efps} fps"))
    # silence
    quiet = sum(1 for db in analysis.energy_db if db < -45) / max(len(analysis.energy_db), 1)
    sil = 10 * (1 - _scale(quiet, 0.1, 0.5))
    parts.append(Part("silence", {"quiet_share": round(quiet, 3)}, sil, 10,
                      "" if sil >= 7 else f"{quiet:.0%} of the video is silent: add voice or music"))
    # pace: cuts per minute (scene changes on screen plus the edit's seams)
    cuts = len(analysis.cuts) + seams
    per_min = cuts / max(seconds / 60, 1 / 60)
    pace = 10 * (_scale(per_min, 0, 6) if per_min < 6 else 1 - _scale(per_min, 40, 90))
    parts.append(Part("pace", {"cuts_per_minute": round(per_min, 1)}, pace, 10,
                      "" if pace >= 7 else ("cut more often: a change every 5-10 s holds attention" if per_min < 6
                                             else "fewer cuts: the pace is hard to follow")))
    total = int(round(sum(p.points for p in parts)))
    return {"total": total, "parts": [p.to_dict() for p in parts]}
