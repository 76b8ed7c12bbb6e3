"""Publish copy per platform: title, description, hashtags, within each platform's limits.

Limits (each platform's record, afx.media.platforms): TikTok caption <= 2,200 characters;
YouTube title <= 100, description <= 5,000, tags <= 500 characters in all; Instagram caption
<= 2,200 and at most 30 hashtags. Text is cut at a word boundary (with a warning), never
emitted too long.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from afx.media.platforms import platform as platform_record
from afx.media.script import keywords

TONE_TAGS = {"hype": ["#hype"], "funny": ["#funny"], "educational": ["#learn"], "calm": ["#chill"],
             "dramatic": ["#epic"]}


@dataclass
class Copy:
    title: str
    description: str
    hashtags: list[str]
    warnings: list[str] = field(default_factory=list)

    def caption(self) -> str:
        """One text for platforms with a single caption: description, then hashtags."""
        return "\n\n".join(p for p in (self.description, " ".join(self.hashtags)) if p)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("warnings")
        return data


def hashtag(text: str) -> str:
    """`#cs2` from "CS2", "#Best plays" -> "#bestplays": letters and digits, lower case."""
    norm = unicodedata.normalize("NFKC", str(text)).lower()
    body = "".join(ch for ch in norm if ch.isalnum() or ch == "_")
    return f"#{body}" if body and not body.isdigit() else ""


def normalise_tags(tags: Sequence[str]) -> list[str]:
    out: list[str] = []
    for t in tags:
        tag = hashtag(t)
        if tag and tag not in out:
            out.append(tag)
    return out


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, ending at a word boundary (an ellipsis marks the cut)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    room = max(limit - 1, 0)
    head = text[:room]
    if " " in head and not text[room].isspace():
        head = head[: head.rfind(" ")]
    return head.rstrip(" ,;:-–—") + "…"


def first_sentences(text: str, limit: int) -> str:
    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    out = ""
    for part in parts:
        trial = f"{out} {part}".strip()
        if len(trial) > limit:
            break
        out = trial
    return out or cut(text, limit)


# Words that mark a line worth quoting: what people say when something happens.
LIVELY = ("oh my god", "no way", "let's go", "wow", "insane", "crazy", "holy", "unbelievable", "haha", "oh no",
          "clutch", "are you kidding", "did you see", "i can't believe", "amazing", "incredible", "never")


def quote(words: Sequence[Mapping[str, Any]], limit: int = 70) -> str:
    """The clip's most quotable line, from its speech (words with text, start, end): the
    liveliest whole sentence of 2 to 14 words that fits `limit` characters ("" when none)."""
    sentences: list[list[str]] = [[]]
    last_end = None
    for w in words:
        text = str(w.get("text", "")).strip()
        if not text:
            continue
        if sentences[-1] and last_end is not None and float(w.get("start", 0)) - last_end >= 0.7:
            sentences.append([])
        sentences[-1].append(text)
        last_end = float(w.get("end", 0))
        if text.endswith((".", "!", "?", "…")):
            sentences.append([])
    best, best_score = "", 0.0
    for parts in sentences:
        line = " ".join(parts).strip()
        if not 3 <= len(parts) <= 14 or len(line) > limit:
            continue
        plain = re.sub(r"[^\w' ]+", " ", line.lower())
        score = sum(2.0 for x in LIVELY if re.search(rf"\b{re.escape(x)}\b", plain))
        score += 1.0 * line.endswith(("!", "?")) + 0.15 * min(len(parts), 10)
        if score > best_score:
            best, best_score = line, score
    if best and best[-1] not in ".!?…":
        best += "!"
    return best[0].upper() + best[1:] if best else ""


def write(topic: str, tone: str | None, script: str, fmt: str, platform: str | None,
          overrides: Mapping[str, Any] | None = None) -> Copy:
    """Copy for one platform: the spec's overrides (platform block, then general), else afx's."""
    overrides = dict(overrides or {})
    specific = dict(overrides.get(platform) or {}) if platform else {}
    record = platform_record(platform)
    limits = record.limits
    warnings: list[str] = []

    def pick(name: str, default: Any) -> Any:
        if name in specific:
            return specific[name]
        return overrides.get(name, default)

    title = pick("title", topic.strip() or first_sentences(script, 90) or "New video")
    description = pick("description", first_sentences(script, 300))
    words = keywords(topic)[:3]
    tags = pick("hashtags", [*words, *TONE_TAGS.get((tone or "").lower(), []),
                             *record.hashtags.get(fmt, ())])
    tags = normalise_tags(tags)
    label = platform or "copy"
    if len(tags) > limits.hashtags:
        warnings.append(f"{label}: {len(tags)} hashtags, at most {limits.hashtags}: kept the first {limits.hashtags}")
        tags = tags[: limits.hashtags]
    if limits.tags_chars is not None:
        while tags and len(",".join(t.lstrip("#") for t in tags)) > limits.tags_chars:
            tags = tags[:-1]
    if len(title) > limits.title:
        warnings.append(f"{label}: title is {len(title)} characters, at most {limits.title}: cut")
        title = cut(title, limits.title)
    if len(description) > limits.description:
        warnings.append(f"{label}: description is {len(description)} characters, at most "
                        f"{limits.description}: cut")
        description = cut(description, limits.description)
    copy = Copy(title, description, tags, warnings)
    if limits.caption is not None and len(copy.caption()) > limits.caption:
        room = limits.caption - len(" ".join(tags)) - 2
        if room < 40:  # hashtags crowd the caption: drop some first
            while tags and limits.caption - len(" ".join(tags)) - 2 < 40:
                tags = tags[:-1]
            room = limits.caption - len(" ".join(tags)) - 2
        warnings.append(f"{label}: caption over {limits.caption} characters: description cut")
        copy = Copy(title, cut(description, max(room, 0)), tags, warnings)
    return copy


def check(copy: Copy, platform: str | None) -> list[str]:
    """Every limit the copy breaks (empty: it fits). Used by tests and before publishing."""
    limits = platform_record(platform).limits
    problems = []
    if len(copy.title) > limits.title:
        problems.append("title")
    if len(copy.description) > limits.description:
        problems.append("description")
    if limits.caption is not None and len(copy.caption()) > limits.caption:
        problems.append("caption")
    if len(copy.hashtags) > limits.hashtags:
        problems.append("hashtags")
    if limits.tags_chars is not None and len(",".join(t.lstrip("#") for t in copy.hashtags)) > limits.tags_chars:
        problems.append("tags")
    if any(not re.fullmatch(r"#[^\W_]?[\w]*", t) or " " in t for t in copy.hashtags):
        problems.append("hashtag form")
    if len(set(copy.hashtags)) != len(copy.hashtags):
        problems.append("duplicate hashtags")
    return problems
