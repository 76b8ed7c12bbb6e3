"""Idempotency-Keys expire 24 hours after their first use (issue 11, hole 4)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select

from afx import times
from afx.server import db, idempotency
from tests.server.serverproc import Server

HOUR = 3600.0
COMPOSE = {"entry": "compose", "topic": "Patch notes", "tone": "calm", "platforms": ["tiktok"]}


@pytest.fixture
def engine(tmp_path):
    engine = db.connect(f"sqlite:///{tmp_path / 'afx.sqlite'}")
    yield engine
    engine.dispose()


@pytest.fixture
def clock():
    return times.ManualClock(now=1_800_000_000.0)


def used(engine, clock, key: str, body: str = "body-1") -> tuple[int, object] | None:
    """One request with `key`: None if it went ahead (and answered 201), else the replay."""
    request = idempotency.request_hash("POST", "/v1/jobs", body.encode())
    replay = idempotency.begin(engine, "acct_1", key, request, clock=clock)
    if replay is None:
        idempotency.finish(engine, "acct_1", key, 201, {"jobId": f"job_{body}"})
    return replay


def test_a_key_replays_for_24_hours_then_is_a_new_request(engine, clock):
    assert used(engine, clock, "k") is None
    clock.advance(23.9 * HOUR)
    assert used(engine, clock, "k") == (201, {"jobId": "job_body-1"})
    with pytest.raises(idempotency.Refused) as info:
        used(engine, clock, "k", "body-2")  # another body within the 24 h: a mismatch
    assert info.value.status == 422
    clock.advance(0.2 * HOUR)  # 24.1 h after the first use
    assert used(engine, clock, "k", "body-2") is None, "an expired key goes ahead, whatever its old body"
    assert used(engine, clock, "k", "body-2") == (201, {"jobId": "job_body-2"}), "and is remembered afresh"


def test_peek_forgets_an_expired_upload_key(engine, clock):
    assert used(engine, clock, "up") is None
    assert idempotency.peek(engine, "acct_1", "up", clock=clock)["state"] == "done"
    clock.advance(25 * HOUR)
    assert idempotency.peek(engine, "acct_1", "up", clock=clock) is None


def test_expired_keys_are_pruned_and_fresh_ones_kept(engine, clock):
    for key in ("old-1", "old-2"):
        assert used(engine, clock, key) is None
    clock.advance(20 * HOUR)
    assert used(engine, clock, "fresh") is None
    clock.advance(5 * HOUR)  # old-* are 25 h old, fresh 5 h
    assert idempotency.prune(engine, clock=clock) == 2
    with db.read(engine) as conn:
        assert [r.key for r in conn.execute(select(db.idempotency.c.key))] == ["fresh"]


def _age(srv: Server, key: str, hours: float) -> None:
    """Move the key's first use `hours` into the past (the server's clock, shifted)."""
    con = sqlite3.connect(srv.data_dir / "afx.sqlite", timeout=30)
    try:
        with con:
            assert con.execute("UPDATE idempotency SET created = created - ? WHERE key = ?",
                               (hours * HOUR, key)).rowcount == 1
    finally:
        con.close()


def test_over_http_a_key_first_used_25_hours_ago_creates_a_new_job(tmp_path):
    with Server(tmp_path / "data", "--rate-limit", "100000") as srv, srv.client(srv.key(credits=10)) as api:
        headers = {"Idempotency-Key": "nightly-2026-11-30"}
        first = api.post("/jobs", json=COMPOSE, headers=headers)
        assert first.status_code == 201, first.text
        _age(srv, "nightly-2026-11-30", 23)
        replay = api.post("/jobs", json=COMPOSE, headers=headers)
        assert replay.headers.get("idempotent-replayed") == "true" and replay.json() == first.json()
        _age(srv, "nightly-2026-11-30", 2)  # now 25 h
        again = api.post("/jobs", json=COMPOSE, headers=headers)
        assert again.status_code == 201 and "idempotent-replayed" not in again.headers
        assert again.json()["jobId"] != first.json()["jobId"]
        assert api.get("/account").json()["credits"]["balance"] == 8  # two jobs, each charged once
        assert api.post("/jobs", json=COMPOSE, headers=headers).json() == again.json()
