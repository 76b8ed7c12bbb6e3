"""The server database: migrations from an older schema, and the credit ledger's guarantees."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import inspect, select

from afx.server import accounts, db
from afx.server.limits import SharedRateLimiter


def test_a_version_1_database_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)  # the v1 idempotency table, as released
    con.executescript("""
        CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied FLOAT NOT NULL);
        INSERT INTO schema_migrations VALUES (1, 0);
        CREATE TABLE idempotency (account_id VARCHAR(40) NOT NULL, key VARCHAR(255) NOT NULL,
            request VARCHAR(64) NOT NULL, state VARCHAR(10) NOT NULL, status_code INTEGER, response TEXT,
            created FLOAT NOT NULL, PRIMARY KEY (account_id, key));
        INSERT INTO idempotency VALUES ('acct_1', 'k', 'r', 'done', 201, '{}', 0);
    """)
    con.close()
    engine = db.connect(f"sqlite:///{path}")
    try:
        assert "owner" in {c["name"] for c in inspect(engine).get_columns("idempotency")}
        with db.read(engine) as conn:
            assert [r[0] for r in conn.execute(select(db.schema_migrations.c.version))] == [1, 2, 3, 4, 5]
            assert conn.execute(select(db.idempotency.c.key)).scalar() == "k"  # kept
        assert "rate_counts" in inspect(engine).get_table_names()
        assert db.migrate(engine) == 5  # again: nothing to do
    finally:
        engine.dispose()


# The jobs table as versions 1-3 made it (before clips).
V3_JOBS = """
    CREATE TABLE jobs (id VARCHAR(40) PRIMARY KEY, account_id VARCHAR(40) NOT NULL, status VARCHAR(20) NOT NULL,
        run_kind VARCHAR(10) NOT NULL, body TEXT NOT NULL, fields TEXT NOT NULL, upload_id VARCHAR(40),
        credit_cost INTEGER NOT NULL, staging BOOLEAN NOT NULL, scheduled_at VARCHAR(40), created FLOAT NOT NULL,
        updated FLOAT NOT NULL, started FLOAT, finished FLOAT, attempts INTEGER NOT NULL, worker VARCHAR(80),
        stage VARCHAR(20), progress FLOAT, error TEXT, error_kind VARCHAR(10), result TEXT, score INTEGER);
    INSERT INTO jobs (id, account_id, status, run_kind, body, fields, credit_cost, staging, created, updated,
        attempts) VALUES ('job_old', 'acct_1', 'complete', 'build', '{}', '{}', 1, 0, 0, 0, 1);
"""


def test_a_version_3_database_gets_the_clip_columns(tmp_path):
    path = tmp_path / "v3.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied FLOAT NOT NULL);"
                      "INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0);" + V3_JOBS)
    con.close()
    engine = db.connect(f"sqlite:///{path}")
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("jobs")}
        assert {"parent_id", "clip_rank", "waiting_for", "clip_count", "clip"} <= columns
        assert "jobs_parent" in {i["name"] for i in inspect(engine).get_indexes("jobs")}
        with db.read(engine) as conn:
            old = conn.execute(select(db.jobs).where(db.jobs.c.id == "job_old")).mappings().one()
        assert old["status"] == "complete" and old["parent_id"] is None and old["clip_count"] is None
        assert db.migrate(engine) == 5
    finally:
        engine.dispose()


def test_debit_and_refund_are_once_per_job(tmp_path):
    engine = db.connect(f"sqlite:///{tmp_path / 'a.sqlite'}")
    try:
        acct = accounts.create_account(engine, "guided", 3)
        with db.write(engine) as conn:
            assert accounts.debit(conn, acct.id, "job_1", 2)
            assert not accounts.debit(conn, acct.id, "job_2", 2)  # balance 1
        with db.write(engine) as conn:
            assert accounts.refund(conn, acct.id, "job_1", "test")
            assert not accounts.refund(conn, acct.id, "job_1", "again")
            assert not accounts.refund(conn, acct.id, "job_2", "never charged")
        info = accounts.summary(engine, acct.id)
        assert info["credits"] == {"balance": 3, "included": 3, "used": 0} and info["planTier"] == "guided"
        assert accounts.check_ledger(engine, acct.id)
    finally:
        engine.dispose()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_rate_limit_is_shared_by_servers_on_one_database(tmp_path):
    engine, other = (db.connect(f"sqlite:///{tmp_path / 'shared.sqlite'}") for _ in range(2))
    clock = Clock(6000.0)  # the start of a minute
    try:
        one, two = SharedRateLimiter(engine, 10, clock=clock), SharedRateLimiter(other, 10, clock=clock)
        verdicts = [(one if i % 2 else two).hit("key_a") for i in range(10)]
        assert all(v.allowed for v in verdicts) and [v.remaining for v in verdicts] == list(range(9, -1, -1))
        refused = two.hit("key_a")
        assert not refused.allowed and refused.remaining == 0
        assert 0 < refused.reset <= 66, refused  # about when the minute's count has faded enough
        assert one.hit("key_b").allowed  # per key
        # Half a minute on: still over (this minute's 10 all count); refused requests did not count.
        clock.now += 30
        assert not one.hit("key_a").allowed
        # 45 s into the next minute, a quarter of the last minute's 10 still counts: 2.5, so 7 more.
        clock.now = 6000 + 60 + 45
        assert sum(two.hit("key_a").allowed for _ in range(9)) == 7
        # Much later: the old minutes are swept, and the full limit is back.
        clock.now = 6000 + 600
        assert sum(one.hit("key_a").allowed for _ in range(12)) == 10
        with db.read(engine) as conn:
            assert {r[0] for r in conn.execute(select(db.rate_counts.c.window))} == {int(clock.now // 60)}
    finally:
        engine.dispose()
        other.dispose()


def test_concurrent_requests_never_pass_the_limit_together(tmp_path):
    engines = [db.connect(f"sqlite:///{tmp_path / 'race.sqlite'}") for _ in range(4)]
    try:
        limiters = [SharedRateLimiter(e, 25, clock=Clock(6000.5)) for e in engines]
        with ThreadPoolExecutor(16) as pool:
            verdicts = list(pool.map(lambda i: limiters[i % 4].hit("key_x"), range(80)))
        assert sum(v.allowed for v in verdicts) == 25
    finally:
        for e in engines:
            e.dispose()


def test_an_upload_replay_is_hashed_and_checked_without_being_written(tmp_path):
    import asyncio
    import hashlib

    from afx.server import uploads

    data = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(range(256)) * 400
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n"
            b"Content-Type: video/mp4\r\n\r\n" + data + b"\r\n--b--\r\n")

    async def stream():
        for i in range(0, len(body), 7000):
            yield body[i:i + 7000]

    def receive(folder, keep):
        return asyncio.run(uploads.receive(stream(), "multipart/form-data; boundary=b", folder, 10 ** 7, keep=keep))

    kept = receive(tmp_path / "kept", True)
    assert kept.path.read_bytes() == data and kept.sha256 == hashlib.sha256(data).hexdigest()
    checked = receive(tmp_path / "checked", False)
    assert (checked.sha256, checked.size, checked.filename) == (kept.sha256, kept.size, "a.mp4")
    assert list((tmp_path / "checked").iterdir()) == []  # nothing written
    bad = body.replace(b"ftypisom", b"notavide")
    with pytest.raises(Exception) as refused:
        asyncio.run(uploads.receive(iter_async(bad), "multipart/form-data; boundary=b", tmp_path / "x", 10 ** 7,
                                    keep=False))
    assert getattr(refused.value, "status", None) == 415


def iter_async(data: bytes):
    async def gen():
        yield data
    return gen()
