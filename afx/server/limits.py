"""Per-key request rate limit: N requests in any 60 s (a sliding window).

Every answer carries the IETF RateLimit headers (RateLimit-Limit, RateLimit-Remaining,
RateLimit-Reset); a refused one is a 429 with Retry-After. Counted in this process: one
`afx serve` process serves an API (its workers are child processes that make no requests).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

WINDOW = 60.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: float  # seconds until a request is free again

    def headers(self) -> dict[str, str]:
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
               "RateLimit-Reset": str(math.ceil(self.reset)),
               "RateLimit-Policy": f'{self.limit};w={int(WINDOW)}'}
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.reset)))
        return out


class RateLimiter:
    def __init__(self, limit: int, window: float = WINDOW, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.limit, self.window, self.clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> Verdict:
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return Verdict(False, self.limit, 0, hits[0] + self.window - now)
            hits.append(now)
            reset = hits[0] + self.window - now
            return Verdict(True, self.limit, self.limit - len(hits), reset)

    def peek(self, key: str) -> Verdict:
        now = self.clock()
        with self._lock:
            hits = [t for t in self._hits.get(key, ()) if t > now - self.window]
        reset = (hits[0] + self.window - now) if hits else 0.0
        return Verdict(len(hits) < self.limit, self.limit, max(0, self.limit - len(hits)), reset)
