"""A timed word: what speech synthesis (tts), recognition (asr), captions and the speech-first
placement (speech) all exchange, in seconds. Its own module so that none of them imports
another for it (tts uses asr to time a voice; asr needs only this)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
