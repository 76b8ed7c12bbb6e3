"""Per-key request rate limit: N requests a minute.

Every answer carries the IETF RateLimit headers (RateLimit-Limit, RateLimit-Remaining,
RateLimit-Reset); a refused one is a 429 with Retry-After.

- On PostgreSQL, where several servers may share the database, `SharedRateLimiter` counts
  there, so the servers share each key's minute: a sliding-window counter (this minute's
  count, plus the last minute's weighted by how much of it is still inside the 60 s that end
  now), taken with one conditional UPDATE, so concurrent requests on any server never pass
  the limit together. A refused request is not counted.
- On SQLite (one machine, usually one server) `RateLimiter` counts in the process's memory,
  an exact sliding log: a write per request would queue behind job submissions for SQLite's
  one write lock (bench/api.py: POST /jobs from ~300 to ~170 jobs/s, GET p99 x2-10).
  Servers sharing one SQLite file each count their own requests.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.dml import Insert, ReturningInsert

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
    def __init__(self, limit: int, window: float = WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
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


class SharedRateLimiter:
    """The limit over a database every server shares (see the module's docstring)."""

    def __init__(self, engine: Engine, limit: int, window: float = WINDOW,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine, self.limit, self.window, self.clock = engine, limit, window, clock
        self._swept = -1

    def hit(self, key: str) -> Verdict:
        from afx.server import db

        now = self.clock()
        w = int(now // self.window)
        into = (now - w * self.window) / self.window  # how far into this window, 0..1
        c = db.rate_counts.c
        with db.write(self.engine) as conn:
            counts = dict(conn.execute(select(c.window, c.count).where(c.key == key, c.window.in_((w - 1, w)))).all())
            carry = counts.get(w - 1, 0) * (1.0 - into)
            cap = math.floor(self.limit - carry + 1e-9)  # hits this window may hold in all
            allowed = False
            if cap >= 1:
                bump = update(db.rate_counts).where(c.key == key, c.window == w, c.count < cap).values(
                    count=c.count + 1)
                allowed = conn.execute(bump).rowcount == 1
                if not allowed and w not in counts:
                    allowed = conn.execute(_insert_new(conn, key, w)).first() is not None
                    if not allowed:  # another server inserted it just now
                        allowed = conn.execute(bump).rowcount == 1
            current = conn.execute(select(c.count).where(c.key == key, c.window == w)).scalar() or 0
            if w != self._swept:  # once a minute per process: forget older minutes
                conn.execute(delete(db.rate_counts).where(c.window < w - 1))
                self._swept = w
        if allowed:
            remaining = max(0, math.floor(self.limit - carry - current + 1e-9))
            return Verdict(True, self.limit, remaining, (w + 1) * self.window - now)
        return Verdict(False, self.limit, 0, self._wait(now, w, into, counts.get(w - 1, 0), current))

    def _wait(self, now: float, w: int, into: float, previous: int, current: int) -> float:
        """Seconds until one more request fits."""
        room = self.limit - current - 1
        if previous > 0 and room >= 0:  # later in this window, as the last minute fades
            at = 1.0 - room / previous
            if at <= 1.0:
                return max(at - into, 0.0) * self.window
        # next window: this one's count carries over, fading
        at = max(1.0 - (self.limit - 1) / current, 0.0) if current else 0.0
        return (w + 1) * self.window - now + at * self.window


def _insert_new(conn: Connection, key: str, window: int) -> ReturningInsert[tuple[int]]:
    from afx.server import db

    new: Insert  # either dialect's INSERT ... ON CONFLICT DO NOTHING
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        new = postgresql_insert(db.rate_counts).values(key=key, window=window, count=1).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        new = sqlite_insert(db.rate_counts).values(key=key, window=window, count=1).on_conflict_do_nothing()
    # RETURNING says whether the row went in (a rowcount is not reliable for this on psycopg)
    return new.returning(db.rate_counts.c.count)
