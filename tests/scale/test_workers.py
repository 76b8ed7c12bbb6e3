"""Job workers on procrastinate + PostgreSQL (issue 15): an API-only front (`afx serve
--no-workers`), `afx worker` processes, a real PostgreSQL and (the kill -9 test, machines that
share nothing else) a real S3 server (afx/testing/services.py).

Skipped where PostgreSQL's server binaries or psycopg are missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from afx import procs
from afx.server import accounts, db, jobs, queue
from afx.server.settings import Settings
from tests.server.serverproc import Server, WorkerProc, wait_for

SLOW = {"AFX_TEST_SLEEP": "render:1.5"}
FAST_RECOVERY = ("--tick", "0.2", "--heartbeat", "0.5", "--stalled-after", "3")
PLATFORMS = ["tiktok", "youtube"]


@pytest.fixture
def pg(postgres_url: str, request: pytest.FixtureRequest) -> str:
    from afx.testing.services import new_database

    return new_database(postgres_url, "afx_workers_" + request.node.name[5:30].lower())


def _child_of(pid: int) -> set[int]:
    """The executor workers (job process groups) an `afx worker` process runs now."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and int(fields[2]) == int(entry.name):  # ppid; pgrp == pid: a group leader
                out.add(int(entry.name))
    return out


def _running_on(engine, worker: WorkerProc) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The jobs running in `worker`'s executor processes: job id -> its process group."""
    kids = _child_of(worker.pid)
    with db.read(engine) as conn:
        rows = conn.execute(select(db.jobs.c.id, db.jobs.c.worker).where(db.jobs.c.status == "running")).all()
    return {r.id: pid for r in rows if (pid := procs.parse(r.worker)[1]) in kids}


def _until(what, timeout: float, step: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s")


def test_front_and_two_workers_survive_a_kill_9_and_cancel_reaches_the_other_worker(pg, s3_server, tmp_path):
    # Three machines: each its own data dir; they share PostgreSQL and the S3 store only.
    s3_server.make_bucket("afx-workers")
    env = {"AFX_DATABASE_URL": pg, "AFX_STORAGE_URL": f"s3://afx-workers/{tmp_path.name}", **s3_server.env}
    data = tmp_path / "front"
    engine = db.connect(pg)
    a = WorkerProc(tmp_path / "machine-a", "-j", "2", *FAST_RECOVERY, env={**env, **SLOW})
    b = WorkerProc(tmp_path / "machine-b", "-j", "2", *FAST_RECOVERY, env={**env, **SLOW})
    try:
        with Server(data, "--no-workers", "--max-active", "100", env=env) as front, a, b:
            with front.client(front.key(credits=100)) as api:
                ids = []
                for i in range(20):
                    r = api.post("/jobs", json={"entry": "compose", "topic": f"Scale {i}", "platforms": PLATFORMS})
                    assert r.status_code == 201, r.text
                    ids.append(r.json()["jobId"])
                # kill -9 worker A in the middle of a render
                on_a = _until(lambda: _running_on(engine, a), 30)
                a.kill9()
                groups_of_a = set(on_a.values())
                # cancel a job running on worker B: its process group is gone, and it is
                # cancelled, within 2 s of the DELETE
                victim, group = next(iter(_until(lambda: {k: v for k, v in _running_on(engine, b).items()
                                                          if k not in on_a}, 30).items()))
                started = time.monotonic()
                r = api.delete(f"/jobs/{victim}")
                assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
                _until(lambda: procs.group_gone(group), 5, step=0.01)
                landed = time.monotonic() - started
                assert api.get(f"/jobs/{victim}").json()["status"] == "cancelled"
                assert landed < 2.0, f"the cancel took {landed:.2f} s"
                # every other job completes, the killed worker's ones on worker B
                done = {j: wait_for(api, j, ("published", "complete", "failed", "cancelled"), timeout=90)
                        for j in ids if j != victim}
                assert {d["status"] for d in done.values()} == {"published"}, done
                assert all(procs.group_gone(g) for g in groups_of_a), "the killed worker's job left processes"
                # the front, which ran nothing, serves their videos from the store
                for job_id in ids[:3]:
                    if job_id == victim:
                        continue
                    video = api.get(f"/jobs/{job_id}/result").json()["videoUrl"]
                    r = api.get(video.removeprefix(front.url + "/v1"))
                    assert r.status_code == 307 and httpx.get(r.headers["location"]).content, r.text
        account = next(iter({r.account_id for r in _rows(engine)}))
        with db.read(engine) as conn:
            debits = dict(conn.execute(select(db.credit_events.c.job_id, func.count()).where(
                db.credit_events.c.kind == "debit").group_by(db.credit_events.c.job_id)).all())
            refunds = conn.execute(select(func.count()).where(db.credit_events.c.kind == "refund")).scalar()
            attempts = dict(conn.execute(select(db.jobs.c.id, db.jobs.c.attempts)).all())
            succeeded = dict(conn.execute(text(
                "SELECT lock, count(*) FROM procrastinate_jobs WHERE status = 'succeeded' GROUP BY lock")).all())
        assert debits == {j: 1 for j in ids}  # one debit each
        assert refunds == 0  # the cancelled job had started: not refunded
        assert all(attempts[j] == 2 for j in on_a), (on_a, attempts)  # run again after the kill
        assert succeeded == {j: 1 for j in ids}, succeeded  # one delivery of each ran to its end
        assert accounts.check_ledger(engine, account)
        from afx.publish.ledger import Ledger
        from afx.publish.location import locate

        settings = Settings(data_dir=data, database_url=pg)  # the ledger is in the database: every machine's
        root = settings.account_root(account)
        with Ledger(locate(root, settings.account_config(account))) as ledger:
            for job_id in ids:
                published = [e["platform"] for e in ledger.events(job_id) if e["kind"] == "published"]
                expected = [] if job_id == victim else PLATFORMS
                assert sorted(published) == expected, (job_id, ledger.events(job_id))
    finally:
        a.kill9()
        b.kill9()
        engine.dispose()


def _rows(engine):  # type: ignore[no-untyped-def]
    with db.read(engine) as conn:
        return conn.execute(select(db.jobs.c.id, db.jobs.c.account_id)).all()


def test_a_job_and_its_queue_entry_and_debit_are_made_together_or_not_at_all(pg, tmp_path, monkeypatch):
    engine = db.connect(pg)
    try:
        settings = Settings(data_dir=tmp_path, database_url=pg)
        acct = accounts.create_account(engine, credits=5)
        body = {"entry": "compose", "topic": "Together"}
        made = jobs.create(engine, settings, acct.id, "job_together", body, body)
        assert made["balance"] == 4
        with db.read(engine) as conn:
            assert queue.entry(conn, "job_together")["status"] == "todo"
        real = queue.enqueue

        def then_fail(conn, job_id):  # type: ignore[no-untyped-def]
            real(conn, job_id)
            assert queue.entry(conn, job_id)["status"] == "todo"  # deferred, in this transaction
            raise RuntimeError("the submission fails after its defer")

        monkeypatch.setattr(queue, "enqueue", then_fail)
        with pytest.raises(RuntimeError):
            jobs.create(engine, settings, acct.id, "job_apart", body, body)
        with db.read(engine) as conn:
            assert queue.entry(conn, "job_apart") is None
            assert conn.execute(select(db.jobs.c.id).where(db.jobs.c.id == "job_apart")).first() is None
            assert conn.execute(select(db.credit_events.c.id).where(db.credit_events.c.job_id == "job_apart")
                                ).first() is None
        assert accounts.summary(engine, acct.id)["credits"]["balance"] == 4
    finally:
        engine.dispose()


def _stall(engine, job_id: str, attempts: int) -> None:  # type: ignore[no-untyped-def]
    """As if a worker elsewhere took the job and then its machine was lost."""
    with db.write(engine) as conn:
        worker = conn.execute(text("SELECT procrastinate_register_worker_v1()")).scalar()
        conn.execute(text("SELECT * FROM procrastinate_fetch_job_v2(ARRAY['afx']::varchar[], :w)"), {"w": worker})
        conn.execute(text("UPDATE procrastinate_workers SET last_heartbeat = NOW() - interval '1 hour'"))
        conn.execute(db.jobs.update().where(db.jobs.c.id == job_id).values(
            status="running", attempts=attempts, started=time.time(), worker="lost-machine:4242:1"))


def test_a_stalled_job_is_requeued_then_given_up_after_its_attempts_and_refunded_once(pg, tmp_path):
    from afx.server.pgworker import recover_stalled

    engine = db.connect(pg)
    try:
        settings = Settings(data_dir=tmp_path, database_url=pg, stalled=5)
        acct = accounts.create_account(engine, credits=5)
        body = {"entry": "compose", "topic": "Stalled"}
        jobs.create(engine, settings, acct.id, "job_stalled", body, body)
        _stall(engine, "job_stalled", attempts=1)
        assert recover_stalled(engine, settings) == 1
        with db.read(engine) as conn:
            assert conn.execute(select(db.jobs.c.status).where(db.jobs.c.id == "job_stalled")).scalar() == "queued"
            assert queue.entry(conn, "job_stalled")["status"] == "todo"  # delivered again
        _stall(engine, "job_stalled", attempts=settings.attempts)
        assert recover_stalled(engine, settings) == 1
        assert recover_stalled(engine, settings) == 0  # nothing left: once
        with db.read(engine) as conn:
            row = conn.execute(select(db.jobs).where(db.jobs.c.id == "job_stalled")).mappings().one()
            refunds = conn.execute(select(func.count()).where(db.credit_events.c.job_id == "job_stalled",
                                                              db.credit_events.c.kind == "refund")).scalar()
            states = [r[0] for r in conn.execute(text("SELECT status FROM procrastinate_jobs ORDER BY id"))]
        assert row["status"] == "failed" and "3 times" in row["error"], dict(row)
        assert refunds == 1 and accounts.summary(engine, acct.id)["credits"]["balance"] == 5
        assert states == ["failed", "failed"]
    finally:
        engine.dispose()


def test_afx_worker_without_a_database_says_so(tmp_path):
    import subprocess

    from tests.server.serverproc import AFX

    out = subprocess.run([AFX, "worker", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "AFX_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"})
    assert out.returncode == 4 and "cannot open the database" in out.stderr, out.stderr
