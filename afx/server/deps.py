"""What every route shares: the app's services, the caller's account, the request body, threads.

`create_app` builds one `Services` and keeps it on `app.state.services`; a route asks for it
with `Depends(services)` and for the caller with `Depends(account)`, which also counts the
request against the key's rate limit (or the address's, for a request without a valid key).

Request bodies are read by `small_body` / `json_body`, never by FastAPI's parsing: every
route refuses more than 256 KB as it arrives, and job and template bodies are checked by the
same resolver and schema `afx validate` uses (a 422 naming each field).

Every POST that takes an Idempotency-Key answers through `idempotent`: the rules (what is
stored, what releases the key, how long it lives) are afx.server.idempotency's; this is
where a request meets them.

Database work runs in threads (`in_thread`, `run_in_threadpool`): the event loop serves
everyone and runs no blocking call (issue 11).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from afx import times
from afx.errors import SpecError
from afx.server import accounts, idempotency
from afx.server.accounts import Account
from afx.server.handlers import error_body, spec_error_body
from afx.server.jobs import Refused
from afx.server.limits import RateLimiter, SharedRateLimiter
from afx.server.models import SafeJSON
from afx.server.resolver import Resolvers
from afx.server.settings import Settings

if TYPE_CHECKING:
    from afx.server.pgworker import PgWorkers
    from afx.server.worker import Workers

AUTH_TTL = 5.0  # seconds a checked key is trusted without a database read (a revoked key lasts this long)
STORED_REFUSALS = (400, 413, 415, 422)  # the same body always gets these: a retry replays them
Answer = tuple[int, Any]  # an answer's status and JSON body
Receive = Callable[[bool], Awaitable[bytes]]  # a streamed body's reader (see `idempotent`)


class KeyCache:
    """API keys checked in the last AUTH_TTL seconds, by their sha256: most requests of a busy
    client then read no database to authenticate."""

    def __init__(self, engine: Engine, clock: times.Clock = times.SYSTEM, ttl: float = AUTH_TTL) -> None:
        self.engine, self.clock, self.ttl = engine, clock, ttl
        self._known: dict[str, tuple[float, Account]] = {}  # sha256(key) -> (checked at, account)

    def authenticate(self, key: str) -> Account | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        hit = self._known.get(digest)
        now = self.clock.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        found = accounts.authenticate(self.engine, key)
        if found is not None:
            if len(self._known) > 10_000:  # a bound, not an LRU: refilling costs one read per key
                self._known.clear()
            self._known[digest] = (now, found)
        return found


@dataclass(frozen=True)
class Services:
    """The app's long-lived parts, made by create_app for its lifetime."""

    engine: Engine
    settings: Settings
    workers: Workers | PgWorkers
    resolvers: Resolvers
    limiter: RateLimiter | SharedRateLimiter
    keys: KeyCache


async def services(request: Request) -> Services:
    """For `Depends`: async, so that asking for it costs no thread (a sync dependency runs in one)."""
    return services_of(request)


def services_of(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def account(request: Request) -> Account:
    """The caller, by `Authorization: Bearer <key>`; 401 without a valid key, 429 over the limit."""
    srv = services_of(request)
    scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
    key = credentials.strip() if scheme.lower() == "bearer" else ""  # schemes are case-insensitive
    found = srv.keys.authenticate(key) if key else None
    if found is None:
        # Unknown callers are limited per address, so key guessing is slow too.
        verdict = srv.limiter.hit(f"ip:{request.client.host if request.client else '?'}")
        request.state.ratelimit = verdict
        if not verdict.allowed:
            raise Refused(429, "rate_limited", "too many requests", retryAfter=int(verdict.reset) + 1)
        raise Refused(401, "unauthorized", "missing or invalid API key" if key else
                      "pass your API key as `Authorization: Bearer af_live_...`")
    verdict = srv.limiter.hit(found.key_id)
    request.state.ratelimit = verdict
    if not verdict.allowed:
        raise Refused(429, "rate_limited", f"more than {verdict.limit} requests a minute",
                      retryAfter=max(1, int(verdict.reset + 0.999)))
    return found


def base(request: Request) -> str:
    """The origin the client reached us by: the answers' file URLs start with it."""
    return str(request.base_url).rstrip("/")


async def small_body(request: Request) -> bytes:
    """The request body, refused (413) as soon as it passes 256 KB: no route reads more."""
    from afx.spec.api import MAX_BODY

    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise Refused(413, "too_large", f"the body is larger than {MAX_BODY // 1024} KB")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Refused(413, "too_large", f"the body is larger than {MAX_BODY // 1024} KB")
    return bytes(raw)


async def json_body(request: Request) -> tuple[bytes, Any]:
    """The raw body (what an Idempotency-Key's request is compared by) and its JSON, or None
    for an empty body."""
    from afx.spec.api import parse_json

    raw = await small_body(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if raw and kind not in ("application/json", ""):
        raise Refused(415, "unsupported_media_type", "send the body as application/json")
    return raw, parse_json(raw) if raw else None


def in_thread(fn: Callable[[], Answer]) -> Callable[[], Awaitable[Answer]]:
    return lambda: run_in_threadpool(fn)


async def idempotent(request: Request, acct: Account, body: bytes | Receive,
                     produce: Callable[[], Awaitable[Answer]]) -> JSONResponse:
    """`produce`'s answer, under the request's Idempotency-Key if it has one.

    `body` is the request body in hand (a JSON route: its bytes identify the request), or a
    streamed body's reader (an upload, too big to read before the key is claimed): called
    with keep=False when the request may be a replay, it only checks and hashes the body,
    and returns the bytes that identify the request (the file's sha256).
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        if not isinstance(body, bytes):
            await body(True)
        status, answer = await produce()
        return SafeJSON(answer, status_code=status)
    idempotency.check_key(key)
    engine = services_of(request).engine
    streamed: str | None = None  # a streamed body's hash, stored with its answer
    if isinstance(body, bytes):
        replay = await run_in_threadpool(idempotency.begin, engine, acct.id, key,
                                         idempotency.request_hash(request.method, request.url.path, body))
        if replay is not None:
            return _replayed(*replay)
    else:
        replay, streamed = await _claim_streamed(request, engine, acct, key, body)
        if replay is not None:
            return _replayed(*replay)

    def finish(status: int, answer: Any) -> None:
        if streamed is not None:
            idempotency.set_request(engine, acct.id, key, streamed)
        idempotency.finish(engine, acct.id, key, status, answer)

    try:
        status, answer = await produce()
    except Refused as exc:
        if exc.status in STORED_REFUSALS:
            await run_in_threadpool(finish, exc.status, error_body(exc))
        else:  # 402, 404, 409, 429 depend on the moment: a retry with the key may succeed
            await run_in_threadpool(idempotency.release, engine, acct.id, key)
        raise
    except SpecError as exc:
        await run_in_threadpool(finish, 422, spec_error_body(exc))
        raise
    except BaseException:
        # (also a cancelled request: released in a thread we do not wait for)
        await asyncio.shield(run_in_threadpool(idempotency.release, engine, acct.id, key))
        raise
    await run_in_threadpool(finish, status, answer)
    return SafeJSON(answer, status_code=status)


async def _claim_streamed(request: Request, engine: Engine, acct: Account, key: str,
                          receive: Receive) -> tuple[Answer | None, str]:
    """Claim `key` for a streamed body before reading it, or find the answer it may replay:
    (the answer to replay, or None to go ahead; the request's hash)."""
    # Only uploads are streamed, hence the wording.
    earlier = await run_in_threadpool(idempotency.peek, engine, acct.id, key)
    if earlier and earlier["state"] == "in_flight":
        raise Refused(409, "idempotency_in_flight", "an upload with this Idempotency-Key is in progress")
    # (a key claimed by another upload since the peek: begin refuses it, or finds its answer)
    if earlier is None and await run_in_threadpool(idempotency.begin, engine, acct.id, key, "pending") is not None:
        raise Refused(409, "idempotency_in_flight", "an upload with this Idempotency-Key is in progress")
    try:
        identity = await receive(earlier is None)  # a replay's body is only compared, not kept
    except BaseException:
        if earlier is None:
            await asyncio.shield(run_in_threadpool(idempotency.release, engine, acct.id, key))
        raise
    request_id = idempotency.request_hash(request.method, request.url.path, identity)
    if earlier is None:
        return None, request_id
    if earlier["request"] != request_id:
        raise Refused(422, "idempotency_mismatch", "this Idempotency-Key was used with a different file")
    return (earlier["status_code"], json.loads(earlier["response"])), request_id


def _replayed(status: int, answer: Any) -> JSONResponse:
    return SafeJSON(answer, status_code=status, headers={"Idempotent-Replayed": "true"})
