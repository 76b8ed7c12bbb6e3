"""The same server on PostgreSQL (AFX_DATABASE_URL): a throwaway cluster (afx/testing/services.py).

Skipped where PostgreSQL's server binaries (initdb, pg_ctl) or psycopg are missing.
"""

from __future__ import annotations

import threading

import pytest

from tests.server.serverproc import Server, wait_for


@pytest.fixture(scope="module")
def postgres_url(postgres_url):
    """A fresh database of the session's cluster (tests/conftest.py) for this module."""
    from afx.testing.services import new_database

    return new_database(postgres_url, "afx_server_tests")


def test_migrations_are_the_same_and_idempotent(postgres_url):
    from sqlalchemy import inspect, select

    from afx.server import db

    engine = db.connect(postgres_url)
    try:
        assert db.migrate(engine) == len(db.MIGRATIONS)  # a second run applies nothing new
        with db.read(engine) as conn:
            versions = [r[0] for r in conn.execute(select(db.schema_migrations.c.version))]
        assert versions == list(range(1, len(db.MIGRATIONS) + 1))
        tables = set(inspect(engine).get_table_names())
        assert tables >= {t.name for t in db.metadata.sorted_tables}
        # A version 3 database (before clips) gets the clip columns and index from version 4.
        from sqlalchemy import text

        with engine.begin() as conn:
            conn.execute(text("DROP INDEX jobs_parent"))
            for column in ("parent_id", "clip_rank", "waiting_for", "clip_count", "clip"):
                conn.execute(text(f"ALTER TABLE jobs DROP COLUMN {column}"))
            conn.execute(text("DELETE FROM schema_migrations WHERE version = 4"))
        assert db.migrate(engine) == 5
        assert {"parent_id", "clip_rank", "waiting_for", "clip_count", "clip"} <= {
            c["name"] for c in inspect(engine).get_columns("jobs")}
        assert "jobs_parent" in {i["name"] for i in inspect(engine).get_indexes("jobs")}
    finally:
        engine.dispose()


def test_a_job_with_clips_on_postgres(postgres_url, tmp_path):
    env = {"AFX_DATABASE_URL": postgres_url}
    with Server(tmp_path / "data", "--max-active", "1", "--rate-limit", "100000", env=env) as srv, \
            srv.client(srv.key(credits=20)) as api:
        created = api.post("/jobs", json={"entry": "fetch", "url": "https://example.com/vod.mp4", "topic": "Vod",
                                          "clips": {"count": 2, "min": 15, "max": 30}})
        assert created.status_code == 201, created.text
        parent = created.json()["jobId"]
        r = api.post("/jobs", json={"entry": "compose", "topic": "Busy"})
        assert r.status_code == 429  # the job and its clips are the one active submission
        assert wait_for(api, parent, ("complete", "failed"))["status"] == "complete"
        for clip in (f"{parent}-01", f"{parent}-02"):
            assert wait_for(api, clip, ("complete", "failed"))["status"] == "complete"
        listed = api.get("/jobs", params={"parentId": parent, "status": "complete"}).json()
        assert [j["jobId"] for j in listed["jobs"]] == [f"{parent}-01", f"{parent}-02"]
        assert api.get("/account").json()["credits"]["balance"] == 18


def test_a_job_and_the_active_cap_on_postgres(postgres_url, tmp_path):
    env = {"AFX_DATABASE_URL": postgres_url}
    with Server(tmp_path / "data", "--max-active", "2", "--rate-limit", "100000", env=env) as srv:
        key = srv.key(credits=20)
        with srv.client(key) as api:
            job = api.post("/jobs", json={"entry": "compose", "topic": "On Postgres", "platforms": ["tiktok"]}
                           ).json()["jobId"]
            assert wait_for(api, job, ("published", "failed"))["status"] == "published"
            assert api.get("/account").json()["credits"]["balance"] == 19
    # A slow worker: submissions race for the cap of 2 active jobs; exactly 2 win.
    with Server(tmp_path / "data2", "--max-active", "2", "--workers", "1",
                env={**env, "AFX_TEST_SLEEP": "render:30"}) as srv:
        key = srv.key(credits=20)
        codes: list[int] = []

        def go() -> None:
            with srv.client(key) as c:
                codes.append(c.post("/jobs", json={"entry": "compose", "topic": "Race"}).status_code)
        threads = [threading.Thread(target=go) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with srv.client(key) as api:
            # the first server's job counts against its own account only
            assert sorted(codes).count(201) == 2, codes
            assert api.get("/account").json()["credits"]["balance"] == 18


def test_the_shared_rate_limit_holds_under_concurrency_on_postgres(postgres_url):
    from concurrent.futures import ThreadPoolExecutor

    from afx.server import db
    from afx.server.limits import SharedRateLimiter

    engines = [db.connect(postgres_url) for _ in range(3)]  # three servers
    try:
        limiters = [SharedRateLimiter(e, 20, clock=lambda: 7200.5) for e in engines]
        with ThreadPoolExecutor(12) as pool:
            verdicts = list(pool.map(lambda i: limiters[i % 3].hit("key_pg"), range(60)))
        with db.read(engines[0]) as conn:
            stored = conn.execute(db.rate_counts.select()).all()
        assert sum(v.allowed for v in verdicts) == 20, (verdicts, stored)
        assert sorted(v.remaining for v in verdicts if v.allowed) == list(range(20))
    finally:
        for e in engines:
            e.dispose()


def test_servers_sharing_postgres_share_the_rate_limit(postgres_url, tmp_path):
    env = {"AFX_DATABASE_URL": postgres_url}
    with Server(tmp_path / "one", "--rate-limit", "6", env=env) as one, \
            Server(tmp_path / "two", "--rate-limit", "6", env=env) as two:
        key = one.key()
        with one.client(key) as a, two.client(key) as b:
            codes = [(a if i % 2 else b).get("/account").status_code for i in range(8)]
            assert codes == [200] * 6 + [429] * 2, codes
            assert int(a.get("/account").headers["retry-after"]) >= 1


def test_approve_and_schedule_requeue_a_publish_through_procrastinate(postgres_url, tmp_path):
    """A staged job's approve-publish, and a scheduled job's time coming, each defer a publish
    run to procrastinate (afx.server.queue) that an `afx worker` runs once."""
    import time

    from sqlalchemy import create_engine, text

    from afx import times
    from afx.testing.services import new_database
    from tests.server.serverproc import WorkerProc

    url = new_database(postgres_url, "afx_publish_runs")
    env = {"AFX_DATABASE_URL": url}
    with Server(tmp_path / "data", "--no-workers", "--tick", "0.2", env=env) as front, \
            WorkerProc(tmp_path / "data", "-j", "1", "--tick", "0.2", env=env):
        with front.client(front.key(credits=20)) as api:
            staged = api.post("/jobs", json={"entry": "compose", "topic": "Staged", "staging": True,
                                             "platforms": ["tiktok"]}).json()["jobId"]
            r = api.post("/jobs", json={"entry": "compose", "topic": "Later", "platforms": ["tiktok"],
                                        "publishMode": "scheduled", "scheduledAt": times.iso(time.time() + 86400)})
            assert r.status_code == 201, r.text
            soon = r.json()["jobId"]
            assert wait_for(api, staged, ("complete", "failed"))["status"] == "complete"
            r = api.post(f"/jobs/{staged}/approve-publish")
            assert r.status_code == 200, r.text
            assert wait_for(api, staged, ("published", "failed"), timeout=60)["status"] == "published"
            assert wait_for(api, soon, ("complete", "failed"))["status"] == "complete"  # built, waiting for its time
            r = api.patch(f"/jobs/{soon}/schedule", json={"scheduledAt": times.iso(time.time() + 1)})
            assert r.status_code == 200, r.text
            assert wait_for(api, soon, ("published", "failed"), timeout=60)["status"] == "published"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            runs = dict(conn.execute(text("SELECT lock, count(*) FROM procrastinate_jobs "
                                          "WHERE status = 'succeeded' GROUP BY lock")).all())
    finally:
        engine.dispose()
    assert runs.get(staged) == 2 and runs.get(soon) == 2, runs  # the build, then the publish run
