"""Writing a voiceover script offline: a template library per tone, sized to the duration.

A script is a hook line, a body and a call to action. Body sentences come from the tone's
pool, picked in an order seeded by the topic (the same topic always gives the same
script), with the topic's key words filled in. Each pool holds a little over a minute of
speech, and no line is said twice: a longer target gets a script short of it (`short_by`),
and the script stage says so (long-form needs the spec's own script, or an LLM). For
fetch/upload jobs the voice only opens and closes the clip (hook and call to action), and
never quotes what the source says: recognition of real footage is not exact enough to put
in a voice's mouth ("least, time, I to keep it", issue 12), and the source says it itself.
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
        "body": ["Every second of this is pure {k1} energy.", "Watch how fast this turns around.",
                 "Nobody saw this coming, not even the players.", "The timing here is unreal.",
                 "This is why {k1} fans cannot stop talking.", "One move changes everything.",
                 "Look at the reaction when it lands.", "It gets even better from here.",
                 "That is skill, not luck.", "Run it back, because this deserves a second look.",
                 "The crowd goes wild, and honestly, so do we.", "This is {k2} at its absolute peak.",
                 "Eyes on the left side of the screen, right now.", "Three seconds. That is all it took.",
                 "You can feel the whole lobby panic.", "This is the play people will be copying for months.",
                 "No hesitation, no second guessing, just pure instinct.", "Pause it here and count the mistakes.",
                 "Most players would have given up already.", "The comeback starts with one tiny decision.",
                 "Hands steady, heart racing, and then it happens.",
                 "This is what practice looks like on the big stage.",
                 "Somebody clip that, because nobody will believe it.", "The chat absolutely exploded at this part.",
                 "Zero room for error, and zero errors made.", "That reaction time should not be humanly possible.",
                 "If you blinked, you missed it.", "This is the highlight reel everyone wanted.",
                 "The whole {k1} community is still talking about it.", "Pure confidence from start to finish.",
                 "Every move here has a purpose.", "It looked impossible, right up until it was not.",
                 "That is how you close out a round.", "Give this player a trophy already."],
        "cta": ["Follow for more {k1} moments every week!", "Follow now so you never miss the next one!",
                "Like and follow if this got you hyped!"],
    },
    "calm": {
        "hook": ["Let's take a quiet minute: {topic}.", "A calm look at this: {topic}.",
                 "Slow down for a moment. {Topic}."],
        "body": ["Notice the small details first.", "There is no rush; everything here has a reason.",
                 "{K1} rewards patience more than speed.", "Take a breath and watch how it unfolds.",
                 "The best moments are often the simplest ones.", "It helps to look at it one step at a time.",
                 "Nothing here is forced.", "Let the rhythm of it settle in.",
                 "Sometimes the quiet parts say the most.", "There is a kind of balance to {k2}.",
                 "Each part has its own pace.", "Watch the edges of the picture, not just the middle.",
                 "Small choices, made well, carry a long way.", "It is easy to miss how much care goes into this.",
                 "Let your eyes follow the movement.", "Good things here take a little time.",
                 "There is something steady about the way {k1} works.", "Nothing needs to be rushed to be good.",
                 "Pay attention to what stays the same.", "Slowly, the whole picture comes together."],
        "cta": ["Follow for more moments like this.", "Save this for later, when you need a calm minute."],
    },
    "educational": {
        "hook": ["Here's what you need to know: {topic}.", "{Topic}, explained in under a minute.",
                 "The part most people miss: {topic}."],
        "body": ["Start with the setup, before anything happens.",
                 "The key idea is simple: with {k1}, timing is everything.",
                 "Notice where everyone is positioned.",
                 "This works because it takes away the obvious answer.",
                 "A common mistake is rushing this step.",
                 "Watch how the decision is made under pressure.",
                 "If you remember one thing, remember this.", "Practice it slowly first, then speed it up.",
                 "The numbers back this up: small edges add up.", "Here is the part most guides skip.",
                 "Think of {k2} as a chain, where each step sets up the next.", "Now put it all together.",
                 "Here is the reason it matters.", "Look at what changes, and what does not.",
                 "The difference between good and great is often one detail.",
                 "Ask yourself what you would do in the same spot.",
                 "The best players make this look easy, but it is not.",
                 "Break it into small pieces, and it becomes clear.", "This is where most of the learning happens.",
                 "Once you see the pattern in {k1}, you cannot unsee it."],
        "cta": ["Follow for a new breakdown every week.", "Save this so you can try it next time."],
    },
    "funny": {
        "hook": ["Okay. {Topic}. This was not supposed to happen.", "Nobody asked for this, but here we are: {topic}.",
                 "{Topic}: a short story about confidence."],
        "body": ["Step one: be confident. Step two: regret it.", "You can hear the exact moment the plan died.",
                 "Honestly, {k1} had other ideas.", "This is fine. Everything is fine.",
                 "Plot twist: it somehow worked.", "Someone please check on the teammates.",
                 "Science cannot explain what happens next.", "Ten out of ten, would panic again.",
                 "The confidence is unmatched. The results, less so.", "And that is how {k2} was invented.",
                 "At this point, the plan is just vibes.", "Nobody in the room knows what is going on, including him.",
                 "The audacity. The sheer audacity.", "Somewhere, a coach just sighed very loudly.",
                 "He had one job. He did a different job.", "Physics left the chat.",
                 "This is the kind of play you explain to nobody.", "Bold strategy. Let us see if it pays off.",
                 "Spoiler: it did not pay off. Or did it?", "Tell me you panicked without telling me you panicked.",
                 "The {k1} gods were clearly watching.", "Instant regret, followed by instant glory.",
                 "We will be thinking about this for a while.", "Even the replay looks confused."],
        "cta": ["Follow for more chaos!", "Tag the friend who would do this.", "Follow before it happens again."],
    },
    "dramatic": {
        "hook": ["It all came down to this. {Topic}.", "{Topic}. One chance. No second try.",
                 "They said it couldn't be done. {Topic}."],
        "body": ["The pressure was enormous.", "Every second felt like a minute.",
                 "One wrong move, and it would all be over.", "And then, silence.",
                 "What happened next changed everything.", "History was written right here.",
                 "Remember this moment.", "No one in the room dared to breathe.",
                 "This is what {k1} is really about.", "The stakes could not have been higher.",
                 "Everything they had worked for came down to one moment.", "The clock kept running.",
                 "There was no plan left, only instinct.", "Somewhere, someone was already celebrating too early.",
                 "The silence before the storm.", "Then, without warning, it turned.",
                 "Nobody would forget what came next.", "Years of practice, tested in a single second.",
                 "The whole world of {k2} held its breath.", "And in that moment, a legend was made.",
                 "It was not over. Not yet.", "Every eye was on one player."],
        "cta": ["Follow to see what happens next.", "Follow for the next chapter."],
    },
}
DEFAULT_TONE = "educational"


@dataclass(frozen=True)
class Script:
    hook: str
    body: tuple[str, ...]
    cta: str
    short_by: float = 0.0  # seconds of speech short of the target: the pool ran out

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


def _fill(template: str, topic: str, kws: list[str]) -> str:
    k1 = kws[0]
    k2 = kws[1] if len(kws) > 1 else kws[0]
    text = template.format(topic=topic, Topic=topic[:1].upper() + topic[1:], k1=k1, k2=k2, K1=k1[:1].upper() + k1[1:])
    return re.sub(r"\s+", " ", text).strip()


def write(topic: str, tone: str | None, seconds: float, words_per_second: float, *,
          bookends_only: bool = False) -> Script:
    """A script of about `seconds` of speech (or only hook and call to action)."""
    pools = POOLS.get((tone or "").strip().lower(), POOLS[DEFAULT_TONE])
    topic = " ".join((topic or "this").split()) or "this"
    seed = int(hashlib.sha256(f"{topic}|{tone}".encode()).hexdigest()[:12], 16)
    rnd = random.Random(seed)
    kws = keywords(topic)
    hook = _fill(rnd.choice(pools["hook"]), topic, kws)
    cta = _fill(rnd.choice(pools["cta"]), topic, kws)
    if bookends_only:
        return Script(hook, (), cta)
    budget = int(seconds * words_per_second) - len(hook.split()) - len(cta.split())
    body: list[str] = []
    order = list(pools["body"])
    rnd.shuffle(order)
    for template in order:  # each line once: the pool holds a minute, not a long-form script
        if budget <= 3:
            break
        sentence = _fill(template, topic, kws)
        n = len(sentence.split())
        if n > budget + 3 and body:
            break
        body.append(sentence)
        budget -= n
    return Script(hook, tuple(body), cta, short_by=max(budget, 0) / words_per_second if budget > 3 else 0.0)
