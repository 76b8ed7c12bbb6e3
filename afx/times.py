"""Times, in one place: RFC 3339 read and written, and the clock that code takes as a parameter.

Everything afx writes (afx.lock, result.json, API answers, the ledger) is UTC to the
second: `2026-05-26T09:00:00Z`. Everything it reads may carry any offset (`+02:00`), or
`z`; a time without an offset is refused where a person typed it (`rfc3339`) and read as
"not a time" where a file holds it (`timestamp`).

`Clock` is what long-running logic (afx push's polling, idempotency keys' expiry) is given
instead of calling `time` itself: tests pass a `ManualClock` and move it, never patching
module globals.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Protocol

FORMAT = "%Y-%m-%dT%H:%M:%SZ"
EXAMPLE = "2026-05-26T09:00:00Z"


class BadTime(ValueError):
    """A text that is not an RFC 3339 time with an offset; the message says what is wrong,
    without naming the field (the caller knows which one it was)."""


def parse(value: str) -> dt.datetime:
    """An aware datetime from RFC 3339 text (`Z`, `z` or `+hh:mm`); ValueError otherwise."""
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    return dt.datetime.fromisoformat(text)


def rfc3339(value: str) -> str:
    """The UTC form of a time a person gave, or BadTime saying why it cannot be one."""
    shown = repr(value[:40] + ("..." if len(value) > 40 else ""))
    try:
        when = parse(value)
    except (ValueError, OverflowError):
        raise BadTime(f"{shown} is not an RFC 3339 time such as {EXAMPLE}") from None
    if when.tzinfo is None:
        raise BadTime(f"{shown} needs a UTC offset (Z or +02:00)")
    try:
        when = when.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise BadTime(f"{shown} is not between 1970 and 9999") from None
    if not 1970 <= when.year <= 9999:
        raise BadTime(f"{shown} is not between 1970 and 9999")
    return when.strftime(FORMAT)


def timestamp(value: str | None) -> float | None:
    """Seconds since the epoch of a stored time, or None for none or one that cannot be read."""
    if not value:
        return None
    try:
        return parse(str(value)).timestamp()
    except (ValueError, OverflowError):
        return None


def iso(ts: float | None) -> str | None:
    """The RFC 3339 UTC text of an epoch time; None (or 0) stays None."""
    if not ts:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(FORMAT)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime(FORMAT)


class Clock(Protocol):
    def time(self) -> float: ...                 # wall clock, seconds since the epoch
    def monotonic(self) -> float: ...            # for intervals and deadlines
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM = SystemClock()


@dataclass
class ManualClock:
    """A clock that moves only when told to (or when slept on): for tests."""

    now: float = 1_780_000_000.0
    mono: float = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        self.mono += max(0.0, seconds)
