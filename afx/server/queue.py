"""The job queue on PostgreSQL: procrastinate's tables, driven through the caller's transaction.

On SQLite the queue is the jobs table itself (a `queued` row is claimed by afx.server.worker).
On PostgreSQL a queued job also has a procrastinate job (task `afx_job`, queue `afx`, lock =
the afx job's id, args `{"job_id": ...}`), which is what a worker (afx.server.pgworker)
claims: `FOR UPDATE SKIP LOCKED`, woken by LISTEN/NOTIFY.

Everything here is plain SQL on the caller's SQLAlchemy connection, calling procrastinate's
own SQL functions (`procrastinate_defer_jobs_v1`, `procrastinate_cancel_job_v1`, ...): the
defer commits or rolls back with the transaction that debits and inserts the job, so nothing
is queued without its debit and nothing is debited without its queue entry. (procrastinate's
Python `defer` would use a connection of its own, outside that transaction.)

The afx row stays the truth about a job (status, attempts, result); a procrastinate job is
only a delivery: a worker runs it only if the afx row is still `queued` (and not waiting for
its parent), so a stale or duplicate delivery does nothing.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

TASK = "afx_job"
QUEUE = "afx"


def enabled(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"  # (afx.server.db runs the migration below: no import of it)


def apply_schema(conn: Connection) -> bool:
    """procrastinate's schema, in the caller's (migration) transaction, if it is not there yet.
    Returns whether it was applied."""
    if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None:
        return False
    from importlib import resources

    schema = (resources.files("procrastinate.sql") / "schema.sql").read_text(encoding="utf-8")
    # Through the driver with no parameters: the schema is many statements, with % in it.
    conn.connection.driver_connection.execute(schema)  # type: ignore[union-attr]
    return True


def enqueue(conn: Connection, job_id: str) -> int | None:
    """Queue an afx job whose row is `queued` (and not waiting): on PostgreSQL defer its
    procrastinate job in the caller's transaction and remember its id on the row; on SQLite
    nothing more is needed. Returns the procrastinate job's id (None on SQLite)."""
    if not enabled(conn):
        return None
    queue_id = conn.execute(text(
        "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(CAST(:queue AS varchar), CAST(:task AS varchar), 0, "
        "CAST(:lock AS text), NULL::text, CAST(:args AS jsonb), NULL::timestamptz)"
        "::procrastinate_job_to_defer_v1]))"),
        {"queue": QUEUE, "task": TASK, "lock": job_id, "args": json.dumps({"job_id": job_id})}).scalar_one()
    conn.execute(text("UPDATE jobs SET queue_id = :q WHERE id = :id"), {"q": queue_id, "id": job_id})
    return int(queue_id)


def abort(conn: Connection, queue_id: Any) -> bool:
    """Cancel a job's procrastinate job in the caller's transaction: a waiting one is
    cancelled, a running one marked to abort (its worker hears of it by NOTIFY once this
    commits, and kills the job's process group). False: nothing to cancel."""
    if queue_id is None or not enabled(conn):
        return False
    return conn.execute(text("SELECT procrastinate_cancel_job_v1(:id, true, false)"),
                        {"id": int(queue_id)}).scalar() is not None


def finish(conn: Connection, queue_id: int, status: str = "failed") -> None:
    """End a procrastinate job that is still todo or doing (a stalled one), in the caller's
    transaction; one already ended is left as it is."""
    conn.execute(text("UPDATE procrastinate_jobs SET status = CAST(:status AS procrastinate_job_status), "
                      "abort_requested = false WHERE id = :id AND status IN ('todo', 'doing')"),
                 {"id": queue_id, "status": status})


def entry(conn: Connection, job_id: str) -> dict[str, Any] | None:
    """The afx job's latest procrastinate job (id, status, abort_requested), or None."""
    row = conn.execute(text("SELECT id, status, abort_requested FROM procrastinate_jobs WHERE lock = :lock "
                            "ORDER BY id DESC LIMIT 1"), {"lock": job_id}).mappings().first()
    return dict(row) if row is not None else None
