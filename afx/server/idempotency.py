"""Idempotency-Key on POST: the same key and request replay the first answer.

Per account and key: the first request is recorded `in_flight`; its answer is stored with
it when the same request would always get it (2xx, and 400/413/415/422). The same key with
the same request gets that answer again; with a different request, 422; while the first is
still in flight, 409. An answer of the moment (402 no credits, 409, 429 busy, 5xx), or a
request that dies, releases the key, so a retry with it can succeed later.

A key lives 24 hours from its first use, as Stripe's do (issue 11): after that the same key
is a new request (it creates a new job), and the scheduler tick prunes expired rows.

Requests meet these rules in one place, afx.server.deps.idempotent: every POST that takes
a key answers through it, an upload too (its key claimed before its body is read).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from afx import procs, times
from afx.server import db
from afx.server.jobs import Refused

MAX_KEY = 255
TTL = 24 * 3600.0  # seconds a key is remembered after its first use
# This server process, as `host:pid:start time`: who holds an in-flight key.
OWNER = procs.name()


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise Refused(400, "bad_idempotency_key", f"Idempotency-Key must be 1-{MAX_KEY} printable characters")
    return key


def expired(row: Any, now: float | None = None, clock: times.Clock = times.SYSTEM) -> bool:
    return bool(row["created"] < (clock.time() if now is None else now) - TTL)


def begin(engine: Engine, account_id: str, key: str, request: str, _tries: int = 3, *,
          clock: times.Clock = times.SYSTEM) -> tuple[int, Any] | None:
    """None: go ahead (the key is now ours). (status, body): replay this answer."""
    try:
        with db.write(engine) as conn:
            conn.execute(insert(db.idempotency).values(account_id=account_id, key=key, request=request,
                                                       state="in_flight", created=clock.time(), owner=OWNER))
        return None
    except IntegrityError:
        pass
    with db.read(engine) as conn:
        row = conn.execute(select(db.idempotency).where(db.idempotency.c.account_id == account_id,
                                                        db.idempotency.c.key == key)).mappings().first()
    if (row is None or _drop_expired(engine, row, clock)) and _tries > 0:
        # released between our insert and this read, or expired and dropped: try again
        return begin(engine, account_id, key, request, _tries - 1, clock=clock)
    if row is None:
        raise Refused(409, "idempotency_in_flight", "a request with this Idempotency-Key is still being processed")
    if row["state"] == "in_flight":
        raise Refused(409, "idempotency_in_flight", "a request with this Idempotency-Key is still being processed")
    if row["request"] != request:
        raise Refused(422, "idempotency_mismatch", "this Idempotency-Key was used with a different request")
    return row["status_code"], json.loads(row["response"])


def set_request(engine: Engine, account_id: str, key: str, request: str) -> None:
    """For a streamed body: the request's hash, once it is known."""
    with db.write(engine) as conn:
        conn.execute(update(db.idempotency).where(db.idempotency.c.account_id == account_id,
                                                  db.idempotency.c.key == key).values(request=request))


def finish(engine: Engine, account_id: str, key: str, status: int, body: Any) -> None:
    with db.write(engine) as conn:
        if status >= 500:
            conn.execute(delete(db.idempotency).where(db.idempotency.c.account_id == account_id,
                                                      db.idempotency.c.key == key))
        else:
            conn.execute(update(db.idempotency).where(db.idempotency.c.account_id == account_id,
                                                      db.idempotency.c.key == key)
                         .values(state="done", status_code=status, response=json.dumps(body)))


def release(engine: Engine, account_id: str, key: str) -> None:
    with db.write(engine) as conn:
        conn.execute(delete(db.idempotency).where(db.idempotency.c.account_id == account_id,
                                                  db.idempotency.c.key == key,
                                                  db.idempotency.c.state == "in_flight"))


def peek(engine: Engine, account_id: str, key: str, *, clock: times.Clock = times.SYSTEM) -> dict[str, Any] | None:
    """The key's row, unless there is none or it has expired (then it is dropped)."""
    with db.read(engine) as conn:
        row = conn.execute(select(db.idempotency).where(db.idempotency.c.account_id == account_id,
                                                        db.idempotency.c.key == key)).mappings().first()
    if row is None or _drop_expired(engine, row, clock):
        return None
    return dict(row)


def _drop_expired(engine: Engine, row: Any, clock: times.Clock) -> bool:
    """Delete `row` if it has expired (that very row: a reuse since is left alone)."""
    if not expired(row, clock=clock):
        return False
    with db.write(engine) as conn:
        conn.execute(delete(db.idempotency).where(db.idempotency.c.account_id == row["account_id"],
                                                  db.idempotency.c.key == row["key"],
                                                  db.idempotency.c.created == row["created"]))
    return True


def prune(engine: Engine, *, clock: times.Clock = times.SYSTEM) -> int:
    """Delete every key whose 24 hours are over. Returns how many."""
    with db.write(engine) as conn:
        return conn.execute(delete(db.idempotency).where(db.idempotency.c.created < clock.time() - TTL)).rowcount


def expire(engine: Engine, older_than: float, dead: Callable[[str], bool] = lambda owner: False, *,
           clock: times.Clock = times.SYSTEM) -> int:
    """Free in-flight keys whose request died with its server: the owner is known dead (a
    process of this machine that is gone), or it is older than `older_than` seconds."""
    with db.write(engine) as conn:
        rows = conn.execute(select(db.idempotency.c.account_id, db.idempotency.c.key, db.idempotency.c.owner,
                                   db.idempotency.c.created).where(db.idempotency.c.state == "in_flight")).all()
        freed = 0
        for row in rows:
            if row.owner != OWNER and (dead(row.owner or "") or row.created < clock.time() - older_than):
                freed += conn.execute(delete(db.idempotency).where(
                    db.idempotency.c.account_id == row.account_id, db.idempotency.c.key == row.key,
                    db.idempotency.c.state == "in_flight")).rowcount
        return freed
