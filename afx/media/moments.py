"""The best moments of a long recording, and where each one's short starts and ends (issue 14).

Two passes, so that hours of source cost seconds, not hours:

1. **Sound and picture, over the whole source**, from afx.media.analysis's 0.5 s windows
   (already computed): a loudness *jump* over the source's own level of the last minute,
   sustained *excitement* (loud for several seconds), *burstiness* (rapid swings in level:
   laughter, shouting, an exchange of fire), *motion* and scene *cuts*. Each is a robust
   z-score over the source; their blend peaks where something happens. The peaks, at least
   `min` seconds apart, are the candidate moments; the best `pool` go on.
2. **Speech, on those candidates only**: a window around each is recognised (`hear`). The
   clip starts on the moment's set-up (the sentence in progress a few seconds before the
   sound starts rising) and ends on a sentence boundary after the reaction, never inside a
   word, `min` to `max` seconds long. Its speech adds to its score: words per second,
   exclamations ("no way", "oh my god", "!"), and the job's `keywords`.

`choose` then takes moments in score order, skipping any that overlaps (or comes within
`gap` of) one already taken: the first k taken do not depend on how many are asked for, so
asking for more adds clips and changes none of the others. Pure functions over numbers and
words; the stage (afx.stages.clips) does the reading and the writing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from afx.media.analysis import Analysis
from afx.media.highlights import snap as frame_snap
from afx.media.speech import cut_after, cut_before, ends_sentence
from afx.media.words import Word

POOL = 20  # candidates recognised at least (the pool grows with count: twice count)
LEVEL_SPAN = 60.0  # seconds of the source whose median level a jump is measured against
EXCITE_SPAN = 6.0  # seconds a level must hold to count as excitement
SETUP = 4.0  # seconds of set-up kept before the sound starts rising
REACTION = 3.0  # seconds kept after the peak at the least (the reaction)
BEFORE_WORD = 0.35  # a cut this long before a word's start (Whisper's starts are up to 0.2 s late)
AFTER_WORD = 0.35  # and this long after a word's end
SENTENCE_GAP = 0.7  # a pause this long ends a sentence even without punctuation
TIGHT = 0.45  # a pause shorter than this between two sentences is a poor place to cut
EXCLAIM = ("oh my god", "oh my gosh", "no way", "let's go", "lets go", "what", "wow", "insane", "crazy",
           "holy", "unbelievable", "yes", "haha", "hahaha", "lol", "oh no", "clutch", "are you kidding")
WEIGHTS = {"loud": 0.25, "jump": 0.20, "excited": 0.25, "bursty": 0.12, "motion": 0.10, "cuts": 0.08}


@dataclass(frozen=True)
class Settings:
    """A job's `clips` block, with its defaults (schemas/job.schema.json)."""

    count: int
    min: float = 15.0
    max: float = 45.0
    gap: float = 0.0
    keywords: tuple[str, ...] = ()

    @classmethod
    def of(cls, block: Any) -> Settings:
        block = dict(block or {})
        return cls(int(block.get("count", 1)), float(block.get("min", 15)), float(block.get("max", 45)),
                   float(block.get("minGap", 0)), tuple(str(k) for k in block.get("keywords", ())))

    @property
    def pool(self) -> int:
        """How many candidates are recognised: a count of up to POOL / 2 shares one pool, so
        raising it within that range reuses the recognition as well as the clips."""
        return max(POOL, 2 * self.count)


@dataclass
class Moment:
    source: int
    peak: float  # the moment's loudest point, source time
    start: float  # the clip, source time, on the frame grid
    end: float
    acoustic: float  # the sound-and-picture score at the peak
    score: float = 0.0  # with speech
    signals: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # how the cut was placed
    heard: bool = False  # its speech was recognised (pooled)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "start": round(self.start, 3), "end": round(self.end, 3),
                "peak": round(self.peak, 3), "score": round(self.score, 3), "acoustic": round(self.acoustic, 3),
                "signals": {k: round(v, 3) for k, v in self.signals.items()}, "notes": list(self.notes),
                "heard": self.heard}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Moment:
        return cls(int(data["source"]), float(data["peak"]), float(data["start"]), float(data["end"]),
                   float(data["acoustic"]), float(data["score"]), dict(data.get("signals", {})),
                   list(data.get("notes", [])), bool(data.get("heard", False)))


# -- pass 1: sound and picture ----------------------------------------------------------------
def _np() -> Any:
    import numpy as np

    return np


def _robust_z(x: Any) -> Any:
    np = _np()
    med = float(np.median(x)) if x.size else 0.0
    mad = float(np.median(np.abs(x - med))) * 1.4826 if x.size else 0.0
    spread = mad if mad > 1e-6 else (float(np.std(x)) or 1.0)
    return np.clip((x - med) / spread, -3.0, 8.0)


def _rolling(x: Any, width: int, how: str) -> Any:
    """A centred rolling mean, max or standard deviation over `width` windows."""
    np = _np()
    width = max(1, int(width))
    if width == 1 or x.size == 0:
        return x.copy() if how != "std" else np.zeros_like(x)
    pad = width // 2
    padded = np.pad(x, (pad, width - 1 - pad), mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, width)
    if how == "max":
        return view.max(axis=1)
    if how == "std":
        return view.std(axis=1)
    c = np.cumsum(np.concatenate([[0.0], padded]))
    return (c[width:] - c[:-width]) / width


def _local_level(energy: Any, window: float) -> Any:
    """The source's own level around each window: the median over LEVEL_SPAN seconds, taken
    on 5 s blocks (so a 6-hour source costs milliseconds)."""
    np = _np()
    block = max(1, int(round(5.0 / window)))
    n = energy.size
    blocks = math.ceil(n / block)
    padded = np.pad(energy, (0, blocks * block - n), mode="edge")
    medians = np.median(padded.reshape(blocks, block), axis=1)
    span = max(1, int(round(LEVEL_SPAN / 5.0)))
    if blocks > 1:
        pad = span // 2
        view = np.lib.stride_tricks.sliding_window_view(np.pad(medians, (pad, span - pad), mode="edge"), span + 1)
        medians = np.median(view, axis=1)[:blocks]
    return np.repeat(medians, block)[:n]


def _motion(a: Analysis, n: int) -> Any:
    """Keyframe motion per window, a scene cut's frame counting none: a cut changes every
    pixel, but a stream switching scenes is not a moment (bench/vod.py)."""
    np = _np()
    if not a.keyframes or not a.motion:
        return np.zeros(n)
    times = np.asarray(a.keyframes, dtype=np.float64)
    motion = np.asarray(a.motion, dtype=np.float64)[:times.size]
    for t in a.cuts:
        k = int(np.searchsorted(times, t - 1e-3))
        if k < motion.size and abs(times[k] - t) < 1e-2:
            motion[k] = 0.0
    centres = (np.arange(n) + 0.5) * a.window
    k = np.clip(np.searchsorted(times, centres, side="right"), 0, motion.size - 1)  # the next keyframe's
    return motion[k]


def signals(a: Analysis) -> dict[str, Any]:
    """Per 0.5 s window of `a`: each signal as a robust z-score, and their blend ("score")."""
    np = _np()
    w = a.window
    energy = np.maximum(np.asarray(a.energy_db, dtype=np.float64), -60.0)
    if energy.size == 0:
        energy = np.full(max(1, math.ceil(a.duration / w)), -60.0)
    n = energy.size
    jump = energy - _local_level(energy, w)  # over the minute around
    above = energy - float(np.median(energy))  # over the source's usual level
    cuts = np.zeros(n)
    for t in a.cuts:
        cuts[min(int(t / w), n - 1)] += 1.0
    around = _rolling(cuts, round(10.0 / w), "mean") * round(10.0 / w)
    raw = {
        "loud": _rolling(above, round(4.0 / w), "mean"),
        "jump": _rolling(jump, round(2.0 / w), "max"),
        "excited": _rolling(jump, round(EXCITE_SPAN / w), "mean"),
        "bursty": _rolling(energy, round(3.0 / w), "std"),
        "motion": _rolling(_motion(a, n), round(4.0 / w), "mean"),
        "cuts": np.maximum(around - 1.0, 0.0),  # quick changes; one cut is a scene switch
    }
    out = {name: _robust_z(values) for name, values in raw.items()}
    # Silence is never a moment, however much the picture moves; a source that is silent
    # throughout (a screen recording, no sound track) is judged by its picture alone.
    quiet = energy <= -50.0 if float(np.median(energy)) > -50.0 else np.zeros(n, dtype=bool)
    blend = sum(WEIGHTS[name] * out[name] for name in WEIGHTS)
    out["score"] = np.where(quiet, -3.0, _rolling(blend, round(2.0 / w), "mean"))
    out["level_db"] = _rolling(jump, round(2.0 / w), "max")
    out["loud_db"] = raw["loud"]
    out["onset"] = jump
    return out


def candidates(analyses: Sequence[Analysis], settings: Settings, limit: int) -> list[Moment]:
    """The best `limit` peaks of the blend over every source, at least `settings.min`
    seconds apart within a source, best first (ties: earlier first). Their cuts are rough
    (set by `cut`)."""
    np = _np()
    found: list[Moment] = []
    for source, a in enumerate(analyses):
        sig = signals(a)
        score = sig["score"].copy()
        w = a.window
        radius = max(int(round(max(settings.min, 10.0) / w)), 1)
        for _ in range(limit):
            i = int(np.argmax(score))
            if score[i] <= -2.5:
                break
            peak = min((i + 0.5) * w, a.duration)
            found.append(Moment(source, round(peak, 3), max(peak - settings.max * 0.6, 0.0),
                                min(peak + settings.max * 0.4, a.duration), float(sig["score"][i]),
                                signals={k: float(sig[k][i]) for k in WEIGHTS} |
                                {"level_db": float(sig["level_db"][i]), "loud_db": float(sig["loud_db"][i])}))
            score[max(i - radius, 0):i + radius + 1] = -10.0
    found.sort(key=lambda m: (-m.acoustic, m.source, m.peak))
    return found[:limit]


# -- pass 2: speech, and the cut ---------------------------------------------------------------
def hear_span(m: Moment, settings: Settings, duration: float) -> tuple[float, float]:
    """The part of the source recognised for moment m: room for its set-up and its reaction."""
    return max(m.peak - settings.max - 2.0, 0.0), min(m.peak + settings.max * 0.6 + 2.0, duration)


def _starts(words: Sequence[Word], heard_from: float = 0.0) -> list[int]:
    """The words that start a sentence. The first word heard starts one only when a pause
    lies before it within what was heard: recognition that began mid-sentence hears its
    rest as a sentence of its own."""
    return [i for i, w in enumerate(words)
            if (w.start - heard_from >= SENTENCE_GAP or heard_from <= 0.0 if i == 0 else
                ends_sentence(words[i - 1]) or w.start - words[i - 1].end >= SENTENCE_GAP)]


def in_word(words: Sequence[Word], t: float) -> bool:
    """t falls inside a recognised word."""
    return any(w.start < t < w.end for w in words)


def _clear(words: Sequence[Word], t: float, later: bool) -> float:
    """t, or the nearest moment outside any word (after it when `later`)."""
    for w in words:
        if w.start < t < w.end:
            return w.end + 0.05 if later else max(w.start - 0.05, 0.0)
    return t


def cut(m: Moment, words: Sequence[Word], a: Analysis, settings: Settings, fps: int = 30,
        sig: dict[str, Any] | None = None, heard: tuple[float, float] | None = None) -> Moment:
    """Moment m with its clip placed: from the set-up to a sentence end after the reaction,
    `settings.min` to `settings.max` seconds, never inside a word. `words` are the source's
    in `heard` (source time, sorted: by default the whole source).

    Every pair of a sentence start and a sentence end that holds the peak and is min..max
    long is a choice; the one nearest the wanted start (SETUP seconds before the sound
    starts rising) and the wanted end (once the excitement has died down) wins. Where no
    sentence boundary fits (no speech, or one long run-on), a cut between words stands in,
    at a cost."""
    sig = sig if sig is not None else signals(a)
    w = a.window
    n = len(sig["excited"])
    duration = a.duration
    lo_len, hi_len = min(settings.min, duration), min(settings.max, duration)
    i = min(int(m.peak / w), n - 1)
    rise = i  # where the excitement starts (walking back from the peak)
    while rise > 0 and sig["excited"][rise - 1] > 0.5 and (i - rise) * w < hi_len:
        rise -= 1
    fall = i  # where it has died down
    while fall < n - 1 and sig["excited"][fall + 1] > 0.5 and (fall - i) * w < hi_len * 0.5:
        fall += 1
    # The loud event's onset: the clip starts before it, whatever sentence is there.
    jump = sig["onset"]
    lo_i, hi_i = max(i - 8, 0), min(i + 8, n - 1)
    top = lo_i + int(_np().argmax(jump[lo_i:hi_i + 1]))
    onset = top
    while onset > 0 and (top - onset) * w < hi_len * 0.6 and jump[onset - 1] >= jump[top] - 8.0:
        onset -= 1
    # (no loud event, a jump of under 6 dB: the peak itself is what the clip must hold)
    onset_t = min(onset * w, m.peak) if jump[top] >= 6.0 else m.peak - 0.7
    want_start = max(min(rise * w, onset_t) - SETUP, 0.0)
    want_end = min(max((fall + 1) * w, m.peak + REACTION), duration)
    ws = sorted(words, key=lambda x: x.start)
    heard_from, heard_to = heard if heard is not None else (0.0, duration)
    starts = _starts(ws, heard_from)
    ends = [k - 1 for k in starts if k > 0]
    if ws and (heard_to >= duration - 1e-6 or heard_to - ws[-1].end >= SENTENCE_GAP):
        ends.append(len(ws) - 1)  # the last word heard ends a sentence only if a pause follows
    # (time, cost, how): sentence boundaries cost nothing; a cut between words of a sentence does
    first = ws[0].start if ws else duration
    last = ws[-1].end if ws else 0.0
    def tight(gap: float) -> float:  # a boundary with hardly a pause: a weak place to cut
        return 2.5 if gap < TIGHT else 0.0

    begin = [(cut_before(ws, k, BEFORE_WORD), tight(ws[k].start - ws[k - 1].end) if k else 0.0,
              "starts on a sentence") for k in starts]
    begin.append((0.0, 0.0 if first >= 0.3 else 4.0, "starts with the recording"))
    begin.append((_clear(ws, want_start, later=False), 0.0 if not ws else 6.0, "starts before the sound rises"))
    finish = [(min(cut_after(ws, k, AFTER_WORD), duration),
               tight(ws[k + 1].start - ws[k].end) if k + 1 < len(ws) else 0.0, "ends on a sentence end") for k in ends]
    finish.append((duration, 0.0 if last <= duration - 0.3 else 4.0, "ends with the recording"))
    finish.append((_clear(ws, want_end, later=True), 0.0 if not ws else 6.0, "ends as the sound dies down"))
    # Cuts between words on a one-second grid, for where no sentence boundary fits (no
    # speech, or one long run-on): a last resort when there are words.
    for t in [m.peak - hi_len + k for k in range(int(2 * hi_len) + 1)] + [duration - hi_len, duration - lo_len]:
        if 0.0 <= t <= onset_t - 0.3:
            begin.append((_clear(ws, t, later=False), 7.0 if ws else 0.5, "starts before the sound rises"))
        if m.peak + 1.0 <= t <= duration:
            finish.append((_clear(ws, t, later=True), 7.0 if ws else 0.5, "ends as the sound dies down"))
    best: tuple[float, float, float, str, str] | None = None
    for lo_len_try in (lo_len, 0.0):  # a clip shorter than min only when nothing else holds the peak
        for t0, c0, how0 in begin:
            if t0 > onset_t - 0.3 or t0 < 0:
                continue
            for t1, c1, how1 in finish:
                length = t1 - t0
                if t1 < min(m.peak + 1.0, duration) or not lo_len_try - 1e-6 <= length <= hi_len + 1e-6:
                    continue
                cost = c0 + c1 + 0.5 * abs(t0 - want_start) + 0.7 * abs(t1 - want_end)
                if best is None or cost < best[0]:
                    best = (cost, t0, t1, how0, how1)
        if best is not None:
            break
    notes: list[str] = []
    if best is None:  # nothing holds the peak within max: the max around it, out of words
        start = _clear(ws, max(min(want_start, m.peak - hi_len / 2, duration - hi_len), 0.0), later=True)
        end = _clear(ws, min(start + hi_len, duration), later=False)
        notes.append(f"{hi_len:g} s around the moment (no sentence boundaries fit)")
    else:
        _, start, end, how0, how1 = best
        notes += [how0, how1]
        if end - start < lo_len - 1e-6:
            notes.append(f"shorter than the {settings.min:g} s minimum: nothing longer holds the moment")
    start = frame_snap(max(start, 0.0), fps)
    end = min(frame_snap(min(end, duration), fps), math.floor(duration * fps + 1e-6) / fps)
    return Moment(m.source, m.peak, round(start, 6), round(end, 6), m.acoustic, m.acoustic, dict(m.signals),
                  notes, heard=True)


def rate(m: Moment, words: Sequence[Word], keywords: Sequence[str]) -> Moment:
    """m's score with its speech: density, exclamations, keywords (each noted in signals)."""
    inside = [w for w in words if w.start >= m.start - 0.05 and w.end <= m.end + 0.05]
    text = " ".join(w.text for w in inside).lower()
    plain = re.sub(r"[^\w' ]+", " ", text)
    density = len(inside) / max(m.duration, 1.0)
    exclaims = sum(w.text.endswith(("!", "?")) for w in inside)
    exclaims += sum(len(re.findall(rf"\b{re.escape(x)}\b", plain)) for x in EXCLAIM)
    hits = {k: len(re.findall(rf"\b{re.escape(k.lower())}\b", plain)) for k in keywords}
    hits = {k: v for k, v in hits.items() if v}
    sentences = sum(ends_sentence(w) for w in inside)
    m.signals.update({"words_per_s": density, "exclaims": float(exclaims), "sentences": float(sentences),
                      "keywords": float(sum(hits.values()))})
    m.score = (m.acoustic + 0.3 * min(density / 2.5, 1.2) + 0.2 * min(exclaims, 5)
               + 1.0 * min(sum(hits.values()), 3) + 0.05 * min(sentences, 4))
    if hits:
        m.notes.append("mentions " + ", ".join(f"{k!r}" for k in sorted(hits)))
    return m


def find(analyses: Sequence[Analysis], settings: Settings, hear: Callable[[int, float, float], list[Word]],
         fps: int = 30, on_progress: Callable[[float, str], None] = lambda f, m: None) -> tuple[list[Moment],
                                                                                                list[Moment]]:
    """(the pool's moments, cut and rated, best first; the candidates beyond the pool, rough,
    best first). `hear(source, start, end)` gives a source's words there, in source time."""
    rough = candidates(analyses, settings, settings.pool * 3)
    pool, rest = rough[:settings.pool], rough[settings.pool:]
    sigs = {i: signals(a) for i, a in enumerate(analyses) if any(m.source == i for m in pool)}
    # Each stretch of the source is recognised once: candidates' windows that overlap are
    # heard together (on a short source they all do).
    spans: dict[int, list[list[float]]] = {}
    for m in sorted(pool, key=lambda m: (m.source, m.peak)):
        lo, hi = hear_span(m, settings, analyses[m.source].duration)
        runs = spans.setdefault(m.source, [])
        if runs and lo <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], hi)
        else:
            runs.append([lo, hi])
    total = sum(hi - lo for runs in spans.values() for lo, hi in runs) or 1.0
    heard: dict[tuple[int, float, float], list[Word]] = {}
    done = 0.0
    for source, runs in spans.items():
        for lo, hi in runs:
            heard[(source, lo, hi)] = hear(source, lo, hi)
            done += hi - lo
            on_progress(done / total, f"listening to the {len(pool)} best moments")
    out = []
    for m in pool:
        a = analyses[m.source]
        lo, hi = hear_span(m, settings, a.duration)
        (source, start, end), words = next((key, ws) for key, ws in heard.items()
                                           if key[0] == m.source and key[1] <= lo + 1e-9 and hi <= key[2] + 1e-9)
        out.append(rate(cut(m, words, a, settings, fps, sigs[m.source], (start, end)), words, settings.keywords))
    out.sort(key=lambda m: (-m.score, m.source, m.peak))
    return out, rest


def whole(a: Analysis, source: int, fps: int = 30) -> Moment:
    """One moment of a whole (short) source."""
    end = math.floor(a.duration * fps + 1e-6) / fps
    return Moment(source, round(a.duration / 2, 3), 0.0, round(end, 6), 0.0, 0.0,
                  notes=["the whole source: it is shorter than one clip"])


@dataclass(frozen=True)
class Pick:
    moment: Moment
    rank: int  # 1 = best; 0 = not taken
    why: str
    pinned: int | None = None  # render.segments index


def _clash(m: Moment, taken: Sequence[Pick], gap: float) -> Pick | None:
    for p in taken:
        t = p.moment
        if t.source == m.source and m.start < t.end + gap and t.start < m.end + gap:
            return p
    return None


def choose(moments: Sequence[Moment], count: int, gap: float, pinned: Sequence[Moment] = (),
           names: Callable[[int], str] = str) -> tuple[list[Pick], list[Pick]]:
    """(the clips, in rank order; every other moment with why it was not taken). Pinned
    moments come first, in the order written; then the best that overlaps (or comes within
    `gap` seconds of) nothing taken."""
    taken: list[Pick] = []
    left: list[Pick] = []
    for k, m in enumerate(pinned):  # every pinned part, even beyond count (the stage warns)
        taken.append(Pick(m, len(taken) + 1, f"pinned by hand (render.segments[{k}])", pinned=k))
    for m in moments:
        clash = _clash(m, taken, gap)
        if clash is not None:
            how = "overlaps" if _clash(m, [clash], 0.0) else f"is within minGap ({gap:g} s) of"
            left.append(Pick(m, 0, f"{how} {names(clash.rank)}, which " +
                             ("is pinned" if clash.pinned is not None else "scored higher")))
        elif len(taken) >= count:
            left.append(Pick(m, 0, f"scored below the {count} clip{'s' * (count != 1)} asked for"))
        else:
            taken.append(Pick(m, len(taken) + 1, explain(m)))
    return taken, left


def _clock(t: float) -> str:
    t = int(round(t))
    return f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}" if t >= 3600 else f"{t // 60}:{t % 60:02d}"


def explain(m: Moment) -> str:
    """Why a moment ranks where it does, in words, from its strongest signals."""
    s = m.signals
    parts = []
    if s.get("level_db", 0.0) >= 6:
        parts.append(f"a jump of {s['level_db']:+.0f} dB over the minute around it at {_clock(m.peak)}")
    if s.get("loud_db", 0.0) >= 6:
        parts.append(f"{s['loud_db']:.0f} dB louder than the recording's usual level")
    if s.get("excited", 0.0) >= 1:
        parts.append("sustained excitement")
    if s.get("bursty", 0.0) >= 1:
        parts.append("bursts of laughter or shouting")
    if s.get("motion", 0.0) >= 1:
        parts.append("fast motion")
    if s.get("cuts", 0.0) >= 1:
        parts.append("quick scene changes")
    if s.get("exclaims", 0.0) >= 2:
        parts.append(f"{s['exclaims']:.0f} exclamations")
    if s.get("words_per_s", 0.0) >= 2:
        parts.append(f"dense speech ({s['words_per_s']:.1f} words/s)")
    if s.get("keywords", 0.0) >= 1:
        parts.append(next((n for n in m.notes if n.startswith("mentions")), "its keywords"))
    if not parts:
        parts.append(f"the liveliest stretch left (score {m.score:.2f})")
    return "; ".join(parts)
