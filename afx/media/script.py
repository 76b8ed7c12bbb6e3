"""Writing a voiceover script offline: a template library per tone, sized to the duration.

A script is a hook line, a body and a call to action. Body sentences come from the tone's
pool, picked in an order seeded by the topic (the same topic always gives the same
script), with the topic's key words filled in. For fetch/upload jobs the voice only opens
and closes the clip (hook and call to action) and may quote what the source says.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

STOP = frozenset("""seconds second minutes minute hours hour four five six seven eight nine ten first third
facts fact things thing tips tip
ways reasons a an the and or but of in on at to for with this that these those is are was were be been
being it its it's my your our their his her best top week weekly day daily new how why what when who
vs versus from by about into out up down just only very most more all any every some one two three
plays play moments moment video clip clips""".split())

POOLS: dict[str, dict[str, list[str]]] = {
    "hype": {
        "hook": ["Stop scrolling. {Topic}.", "You are not ready for this: {topic}.",
                 "{Topic}, and it is absolutely insane.", "{Topic}. Turn the volume up."],
        "quote": ["\u201c{quote}\u201d. Yeah, you heard that right."],
        "body": ["Every second of this is pure {k1} energy.", "Watch how fast this turns around.",
                 "Nobody saw this coming, not even the players.", "The timing here is unreal.",
                 "This is why {k1} fans cannot stop talking.", "One move changes everything.",
                 "Look at the reaction when it lands.", "It gets even better from here.",
                 "That is skill, not luck.", "Run it back, because this deserves a second look.",
                 "The crowd goes wild, and honestly, so do we.", "This is {k2} at its absolute peak."],
        "cta": ["Follow for more {k1} moments every week!", "Follow now so you never miss the next one!",
                "Like and follow if this got you hyped!"],
    },
    "calm": {
        "hook": ["Let's take a quiet minute: {topic}.", "A calm look at this: {topic}.",
                 "Slow down for a moment. {Topic}."],
        "quote": ["As someone put it, \u201c{quote}\u201d."],
        "body": ["Notice the small details first.", "There is no rush; everything here has a reason.",
                 "{K1} rewards patience more than speed.", "Take a breath and watch how it unfolds.",
                 "The best moments are often the simplest ones.", "It helps to look at it one step at a time.",
                 "Nothing here is forced.", "Let the rhythm of it settle in.",
                 "Sometimes the quiet parts say the most.", "There is a kind of balance to {k2}."],
        "cta": ["Follow for more moments like this.", "Save this for later, when you need a calm minute."],
    },
    "educational": {
        "hook": ["Here's what you need to know: {topic}.", "{Topic}, explained in under a minute.",
                 "The part most people miss: {topic}."],
        "quote": ["Listen closely: \u201c{quote}\u201d. That's the key."],
        "body": ["Start with the setup, before anything happens.",
                 "The key idea is simple: with {k1}, timing is everything.",
                 "Notice where everyone is positioned.",
                 "This works because it takes away the obvious answer.",
                 "A common mistake is rushing this step.",
                 "Watch how the decision is made under pressure.",
                 "If you remember one thing, remember this.", "Practice it slowly first, then speed it up.",
                 "The numbers back this up: small edges add up.", "Here is the part most guides skip.",
                 "Think of {k2} as a chain, where each step sets up the next.", "Now put it all together."],
        "cta": ["Follow for a new breakdown every week.", "Save this so you can try it next time."],
    },
    "funny": {
        "hook": ["Okay. {Topic}. This was not supposed to happen.", "Nobody asked for this, but here we are: {topic}.",
                 "{Topic}: a short story about confidence."],
        "quote": ["Direct quote: \u201c{quote}\u201d. Incredible."],
        "body": ["Step one: be confident. Step two: regret it.", "You can hear the exact moment the plan died.",
                 "Honestly, {k1} had other ideas.", "This is fine. Everything is fine.",
                 "Plot twist: it somehow worked.", "Someone please check on the teammates.",
                 "Science cannot explain what happens next.", "Ten out of ten, would panic again.",
                 "The confidence is unmatched. The results, less so.", "And that is how {k2} was invented."],
        "cta": ["Follow for more chaos!", "Tag the friend who would do this.", "Follow before it happens again."],
    },
    "dramatic": {
        "hook": ["It all came down to this. {Topic}.", "{Topic}. One chance. No second try.",
                 "They said it couldn't be done. {Topic}."],
        "quote": ["Then came the words: \u201c{quote}\u201d."],
        "body": ["The pressure was enormous.", "Every second felt like a minute.",
                 "One wrong move, and it would all be over.", "And then, silence.",
                 "What happened next changed everything.", "History was written right here.",
                 "Remember this moment.", "No one in the room dared to breathe.",
                 "This is what {k1} is really about.", "The stakes could not have been higher."],
        "cta": ["Follow to see what happens next.", "Follow for the next chapter."],
    },
}
DEFAULT_TONE = "educational"


@dataclass(frozen=True)
class Script:
    hook: str
    body: tuple[str, ...]
    cta: str

    @property
    def text(self) -> str:
        middle = " ".join(self.body)
        return "\n\n".join(p for p in (self.hook, middle, self.cta) if p)

    @property
    def words(self) -> int:
        return len(self.text.split())


def keywords(topic: str, extra: Sequence[str] = ()) -> list[str]:
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9'+-]*", " ".join([topic, *extra]))
    seen: dict[str, str] = {}
    for w in words:
        key = w.lower().strip("'")
        letters = sum(c.isalpha() for c in key)
        if key in STOP or len(key) < 2 or letters < 2 or letters * 2 < sum(c.isdigit() for c in key):
            continue  # stop words, numbers, dates and codes such as 2026-W48
        seen.setdefault(key, w)
    first = words[0].lower() if words else ""
    # Names and game titles (capitals or digits, not merely a sentence's first word) first,
    # then longer words.
    ranked = sorted(seen.values(), key=lambda w: (
        not ((w[0].isupper() and w.lower() != first) or any(c.isdigit() for c in w) or w.isupper()), -len(w)))
    return ranked or ["this"]


def _fill(template: str, topic: str, kws: list[str], quote: str = "") -> str:
    k1 = kws[0]
    k2 = kws[1] if len(kws) > 1 else kws[0]
    text = template.format(topic=topic, Topic=topic[:1].upper() + topic[1:], k1=k1, k2=k2, K1=k1[:1].upper() + k1[1:],
                           quote=quote)
    return re.sub(r"\s+", " ", text).strip()


def pick_quote(heard: Sequence[str]) -> str:
    """A short line from what the source says (3-8 words), if there is one."""
    text = " ".join(heard)
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        n = len(sentence.split())
        if 3 <= n <= 8:
            return sentence.strip().rstrip(".")
    return ""


def write(topic: str, tone: str | None, seconds: float, words_per_second: float, *,
          bookends_only: bool = False, heard: Sequence[str] = ()) -> Script:
    """A script of about `seconds` of speech (or only hook and call to action)."""
    pools = POOLS.get((tone or "").strip().lower(), POOLS[DEFAULT_TONE])
    topic = " ".join((topic or "this").split()) or "this"
    seed = int(hashlib.sha256(f"{topic}|{tone}".encode()).hexdigest()[:12], 16)
    rnd = random.Random(seed)
    quote = pick_quote(heard)
    kws = keywords(topic, [quote] if quote else [])
    hook_t = rnd.choice(pools["quote"]) if quote and bookends_only else rnd.choice(pools["hook"])
    hook = _fill(hook_t, topic, kws, quote)
    cta = _fill(rnd.choice(pools["cta"]), topic, kws)
    if bookends_only:
        return Script(hook, (), cta)
    budget = int(seconds * words_per_second) - len(hook.split()) - len(cta.split())
    body: list[str] = []
    order = list(pools["body"])
    rnd.shuffle(order)
    i = 0
    while budget > 3:
        sentence = _fill(order[i % len(order)], topic, kws)
        if i >= len(order):  # a long script revisits the pool: vary the wording a little
            lead = rnd.choice(["And remember:", "Again,", "Once more:", "So,"])
            sentence = f"{lead} {sentence[0].lower()}{sentence[1:]}"
        n = len(sentence.split())
        if n > budget + 3 and body:
            break
        body.append(sentence)
        budget -= n
        i += 1
    return Script(hook, tuple(body), cta)
