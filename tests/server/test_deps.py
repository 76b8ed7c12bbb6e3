"""The routes' shared parts in process (no server): the key cache, and the one Idempotency-Key
helper with a streamed body whose answer fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine

from afx import times
from afx.server import accounts, db
from afx.server.accounts import Account
from afx.server.app import create_app
from afx.server.deps import AUTH_TTL, Answer, KeyCache, account, idempotent
from afx.server.settings import Settings


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    app = create_app(Settings(data_dir=tmp_path / "data", rate_limit=1000), start_workers=False)
    yield app  # its lifespan never runs (no TestClient context): no workers, no resolvers
    app.state.services.engine.dispose()


def new_key(engine: Engine) -> str:
    return accounts.create_key(engine, accounts.create_account(engine, credits=5).id)


def test_a_checked_key_is_trusted_for_its_ttl_then_read_again(app: FastAPI) -> None:
    engine = app.state.services.engine
    key, clock = new_key(engine), times.ManualClock()
    cache = KeyCache(engine, clock)
    assert cache.authenticate(key) is not None
    with db.write(engine) as conn:
        conn.execute(update(db.api_keys).values(revoked=True))
    clock.advance(AUTH_TTL - 1)
    assert cache.authenticate(key) is not None  # a revoked key lasts the TTL...
    clock.advance(2)
    assert cache.authenticate(key) is None  # ...and no longer
    assert cache.authenticate("af_live_nope") is None


def test_a_streamed_request_whose_answer_fails_releases_its_key(app: FastAPI) -> None:
    made: list[bytes] = []

    @app.post("/test/streamed")
    async def streamed(request: Request, acct: Account = Depends(account)) -> JSONResponse:
        body = b""

        async def receive(keep: bool) -> bytes:
            nonlocal body
            body = await request.body()
            return body

        async def produce() -> Answer:
            if not made:
                made.append(body)
                raise OSError("disk full")  # the first attempt dies after its body arrived
            made.append(body)
            return 201, {"made": len(made)}

        return await idempotent(request, acct, receive, produce)

    engine = app.state.services.engine
    headers = {"Authorization": f"Bearer {new_key(engine)}", "Idempotency-Key": "k"}
    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/test/streamed", content=b"one", headers=headers).status_code == 500
    again = client.post("/test/streamed", content=b"one", headers=headers)
    assert again.status_code == 201 and again.json() == {"made": 2}  # the key was free again
    replay = client.post("/test/streamed", content=b"one", headers=headers)
    assert replay.json() == {"made": 2} and replay.headers["idempotent-replayed"] == "true"
    other = client.post("/test/streamed", content=b"two", headers=headers)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_mismatch"
    assert made == [b"one", b"one"]
