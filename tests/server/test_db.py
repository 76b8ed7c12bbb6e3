"""The server database: migrations from an older schema, and the credit ledger's guarantees."""

from __future__ import annotations

import sqlite3

from sqlalchemy import inspect, select

from afx.server import accounts, db


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
            assert [r[0] for r in conn.execute(select(db.schema_migrations.c.version))] == [1, 2]
            assert conn.execute(select(db.idempotency.c.key)).scalar() == "k"  # kept
        assert db.migrate(engine) == 2  # again: nothing to do
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
