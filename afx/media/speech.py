"""The source's speech comes first (issue 12): where a voiceover may speak, and where cuts fall.

On a fetch/upload source with speech, afx's voice (a hook, a call to action) must never talk
over what the people in the footage say, and a highlight must not start or end inside a word
or a sentence. Pure functions over word timings (afx.media.tts.Word, in seconds):

- `spans`: the stretches in which the source speaks.
- `place`: where the hook and the call to action go: the hook before the first word, or
  over a short pre-roll (the opening frame held while the voice speaks); the call to action
  after the last word, into a real pause, or over a short post-roll (the last frame held);
  what has no room is left out, and the reason given.
- `snap`: highlight segments moved onto sentence boundaries (a sentence's set-up is kept,
  a sentence is finished), within the target length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from afx.media.highlights import Segment
from afx.media.highlights import snap as frame_snap
from afx.media.tts import Word

JOIN = 0.5  # seconds of pause that still belong to one stretch of speech
GUARD = 0.5  # seconds kept clear between the source's words and the voice's (the duck's release is 0.4 s)
LEAD = 0.3  # seconds of silence before the hook at the very start
PREROLL_MAX = 4.0  # seconds of held opening frame the hook may have
POSTROLL_MAX = 4.0  # seconds of held last frame the call to action may have (only over speech)
TAIL = 0.4  # seconds of footage after the call to action's last word
SENTENCE_GAP = 0.7  # a pause this long ends a sentence even without punctuation
REACH = 8.0  # seconds a cut may move to keep a sentence whole
BEFORE_WORD = 0.2  # a cut this long before a word's start (recognised times are a little late)
AFTER_WORD = 0.3  # and this long after a word's end


def spans(words: Sequence[Word], join: float = JOIN) -> list[tuple[float, float]]:
    """The stretches of speech: words with pauses shorter than `join` between them."""
    out: list[list[float]] = []
    for w in sorted(words, key=lambda w: w.start):
        if out and w.start - out[-1][1] < join:
            out[-1][1] = max(out[-1][1], w.end)
        else:
            out.append([w.start, w.end])
    return [(s, e) for s, e in out]


@dataclass
class Placement:
    """Where the voice's two parts go, on the output timeline (pre-roll included)."""

    preroll: float = 0.0  # seconds of the opening frame held before the footage
    postroll: float = 0.0  # seconds of the last frame held after it
    hook_at: float | None = None  # None: left out
    cta_at: float | None = None
    notes: list[str] = field(default_factory=list)  # why a part was moved or left out

    @property
    def extra(self) -> float:
        return self.preroll + self.postroll


def place(hook: float, cta: float, words: Sequence[Word], seconds: float, limit: float) -> Placement:
    """Room for a hook of `hook` seconds and a call to action of `cta` seconds (0: none) on
    footage of `seconds` whose speech is `words`, in a video of at most `limit` seconds."""
    p = Placement()
    talk = spans(words)
    if hook > 0:
        first = talk[0][0] if talk else seconds
        need = round(max(LEAD + hook + GUARD - first, 0.0), 3)  # held opening frame the hook needs
        if need == 0:
            p.hook_at = LEAD
        elif need <= PREROLL_MAX and seconds + need <= limit:
            p.preroll = need
            p.hook_at = LEAD
            p.notes.append(f"the source speaks from {first:.1f} s: the hook goes over the opening frame, "
                           f"held {p.preroll:.1f} s")
        else:
            p.notes.append(f"no room for the hook ({hook:.1f} s): the source speaks from {first:.1f} s, and a "
                           f"pre-roll would be over {PREROLL_MAX:.0f} s or the {limit:.0f} s limit")
    if cta > 0:
        shift = p.preroll
        last = talk[-1][1] if talk else 0.0
        hook_end = (p.hook_at + hook - shift) if p.hook_at is not None else 0.0  # in footage time
        after = max(last, hook_end) + GUARD
        if after + cta + GUARD <= seconds:
            p.cta_at = round(shift + max(after, seconds - cta - TAIL), 3)  # as late as it goes: it closes
        elif not talk:
            p.notes.append(f"no room for the call to action ({cta:.1f} s) after the hook")
        else:
            gaps = [(e, s2) for (_, e), (s2, _) in zip(talk, talk[1:]) if s2 - e >= cta + 2 * GUARD and e >= hook_end]
            if gaps:
                start, _ = gaps[-1]  # the last real pause: a call to action comes late
                p.cta_at = round(shift + start + GUARD, 3)
                p.notes.append(f"the source speaks to the end: the call to action goes into its pause at "
                               f"{start + GUARD:.1f} s")
            else:
                need = round(after + cta + GUARD - seconds, 3)
                if need <= POSTROLL_MAX and shift + seconds + need <= limit:
                    p.postroll = need
                    p.cta_at = round(shift + after, 3)
                    p.notes.append(f"the source speaks to the end: the call to action goes over the last frame, "
                                   f"held {need:.1f} s")
                else:
                    p.notes.append(f"no room for the call to action ({cta:.1f} s): the source speaks to the end, "
                                   f"and a post-roll would be over {POSTROLL_MAX:.0f} s or the {limit:.0f} s limit")
    return p


# -- cuts on sentence boundaries -------------------------------------------------------------
def sentence_starts(words: Sequence[Word]) -> list[int]:
    return [i for i, w in enumerate(words)
            if i == 0 or ends_sentence(words[i - 1]) or w.start - words[i - 1].end >= SENTENCE_GAP]


def ends_sentence(w: Word) -> bool:
    return w.text.rstrip("\"')”’»").endswith((".", "!", "?", "…"))


def _inside(words: Sequence[Word], t: float) -> bool:
    """t falls in speech: inside a word, or between two words of one sentence."""
    for i, w in enumerate(words):
        if w.start - BEFORE_WORD < t < w.end + 0.05:
            return True
        if i + 1 < len(words) and w.end <= t <= words[i + 1].start:
            nxt = words[i + 1]
            return not (ends_sentence(w) or nxt.start - w.end >= SENTENCE_GAP)
    return False


def snap(segments: Sequence[Segment], words: Sequence[Sequence[Word]], durations: Sequence[float],
         target: float, fps: int) -> list[Segment]:
    """`segments` with starts and ends moved out of sentences: a start back to its sentence's
    first word (or on to the next sentence), an end on to its sentence's last (or back to
    the previous one), so no cut falls inside a word or a sentence; never longer than
    `target` in all. `words[i]` are source i's words, in source time, sorted."""
    out = [Segment(s.source, s.start, s.end) for s in segments]
    total = sum(s.duration for s in out)
    for k, seg in enumerate(out):
        ws = list(words[seg.source]) if seg.source < len(words) else []
        if not ws:
            continue
        starts = sentence_starts(ws)
        ends = [i - 1 for i in starts[1:]] + [len(ws) - 1]
        start, end = seg.start, seg.end
        if _inside(ws, start):
            back = max((i for i in starts if ws[i].start <= start + BEFORE_WORD), default=None,
                       key=lambda i: ws[i].start)
            fwd = min((i for i in starts if ws[i].start > start), default=None, key=lambda i: ws[i].start)
            earlier = cut_before(ws, back) if back is not None else None
            later = cut_before(ws, fwd) if fwd is not None else None
            if earlier is not None and start - earlier <= REACH and total + (start - earlier) <= target:
                total += start - earlier
                start = max(earlier, 0.0)
            elif later is not None and later < end - 1.0:
                total -= later - start
                start = later
        if _inside(ws, end):
            fwd_end = min((i for i in ends if ws[i].end >= end - 0.05), default=None, key=lambda i: ws[i].end)
            back_end = max((i for i in ends if ws[i].end < end - 0.05), default=None, key=lambda i: ws[i].end)
            later = cut_after(ws, fwd_end) if fwd_end is not None else None
            earlier = cut_after(ws, back_end) if back_end is not None else None
            if later is not None and later - end <= REACH and total + (later - end) <= target:
                total += later - end
                end = min(later, durations[seg.source])
            elif earlier is not None and earlier > start + 1.0:
                total -= end - earlier
                end = earlier
        out[k] = Segment(seg.source, frame_snap(max(start, 0.0), fps),
                         frame_snap(min(end, durations[seg.source]), fps))
    return _merge([s for s in out if s.duration > 0])


def cut_before(ws: Sequence[Word], i: int, margin: float = BEFORE_WORD) -> float:
    """A cut just before word i: `margin` ahead of it, but not into the word before."""
    t = ws[i].start - margin
    if i > 0 and t < ws[i - 1].end + 0.02:
        t = (ws[i - 1].end + ws[i].start) / 2
    return max(t, 0.0)


def cut_after(ws: Sequence[Word], i: int, margin: float = AFTER_WORD) -> float:
    """A cut just after word i: `margin` past it, but not into the word after."""
    t = ws[i].end + margin
    if i + 1 < len(ws) and t > ws[i + 1].start - 0.02:
        t = (ws[i].end + ws[i + 1].start) / 2
    return t


def _merge(segments: list[Segment]) -> list[Segment]:
    """Segments of one source that now touch or overlap become one."""
    merged: list[Segment] = []
    for seg in sorted(segments, key=lambda s: (s.source, s.start)):
        if merged and merged[-1].source == seg.source and seg.start <= merged[-1].end + 1e-6:
            merged[-1] = Segment(seg.source, merged[-1].start, max(merged[-1].end, seg.end))
        else:
            merged.append(seg)
    return merged
