"""The publish ledger shared by machines (issue 15): claims across hosts, owners kept apart,
two processes as two hosts racing to publish one job, and two `afx serve` on one PostgreSQL.

The claim tests run on both backends; what needs two machines runs on PostgreSQL (skipped
where it cannot be had: tests/conftest.py's postgres_url).
"""

from __future__ import annotations

import http.server
import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from afx import procs
from afx.publish.ledger import Ledger
from afx.publish.location import Location, database_url, locate
from afx.testing.services import new_database


@pytest.fixture(params=["sqlite", "postgres"])
def place(request, tmp_path) -> Location:
    if request.param == "sqlite":
        return Location(tmp_path)
    return Location(tmp_path, request.getfixturevalue("ledger_database"), f"path:{tmp_path}")


def test_a_claim_is_one_process_at_a_time_and_another_hosts_until_its_lease(place, monkeypatch):
    with Ledger(place) as ledger:
        mine = ledger.claim("a", "tiktok", "webhook", "d1", "c1")
        assert mine is not None and mine["claimed_by"] == procs.name() and mine["attempts"] == 0
        assert ledger.claim("a", "tiktok", "webhook", "d1", "c1")["attempts"] == 1  # mine again
        monkeypatch.setattr(procs, "HOST", "machine-b")
        assert ledger.claim("a", "tiktok", "webhook", "d1", "c1") is None  # another machine's: trusted
        monkeypatch.setattr(Ledger, "LEASE", 0.0)
        theirs = ledger.claim("a", "tiktok", "webhook", "d1", "c1")  # the lease ran out: taken over
        assert theirs is not None and theirs["claimed_by"].startswith("machine-b:")
        ledger.save("a", "tiktok", state="published", remote_id="r1", url="https://x/r1", event="published")
        monkeypatch.setattr(procs, "HOST", "machine-c")
        done = ledger.claim("a", "tiktok", "webhook", "d2", "c2")  # published: never claimed again
        assert done["state"] == "published" and done["remote_id"] == "r1" and done["video_digest"] == "d1"
        assert [e["kind"] for e in ledger.events("a")] == ["claim", "claim", "claim", "published"]


def test_a_dead_local_claim_is_taken_over(place):
    from sqlalchemy import update

    from afx.publish.ledgerdb import publishes

    with Ledger(place) as ledger:
        ledger.claim("a", "youtube", "api", "d1")
        with ledger.db.begin():  # a process of this machine that runs no more held it
            ledger.db.execute(update(publishes).values(claimed_by=f"{procs.HOST}:999999999:1"))
        assert ledger.claim("a", "youtube", "api", "d1")["claimed_by"] == procs.name()


def test_owners_never_share_rows(ledger_database, tmp_path):
    one, two = (Location(tmp_path, ledger_database, name) for name in ("account:one", "account:two"))
    with Ledger(one) as a, Ledger(two) as b:
        a.claim("job_1", "tiktok", "outbox", "d")
        a.save("job_1", "tiktok", state="published", remote_id="r", event="published")
        a.approve("job_1")
        assert b.row("job_1", "tiktok") is None and b.rows() == [] and b.all_controls() == {}
        assert b.claim("job_1", "tiktok", "outbox", "d")["state"] == "pending"
        assert b.retire(set()) == [] and a.row("job_1", "tiktok")["state"] == "published"
        assert set(a.all_controls()) == {"job_1"}


def test_where_the_ledger_is(tmp_path, monkeypatch):
    monkeypatch.delenv("AFX_LEDGER_URL", raising=False)
    assert locate(tmp_path, {}) == Location(tmp_path)
    config = {"publish": {"ledger": "postgresql://ci@db/afx", "ledgerName": "team/videos"}}
    assert locate(tmp_path, config) == Location(tmp_path, "postgresql+psycopg://ci@db/afx", "team/videos")
    monkeypatch.setenv("AFX_LEDGER_URL", "postgres://u:secret@other/afx")
    assert locate(tmp_path, config).url == "postgresql+psycopg://u:secret@other/afx"
    assert locate(tmp_path, {}).owner == f"path:{tmp_path.resolve()}"  # not a git repo: its path
    os.system(f"git init -q {tmp_path} && git -C {tmp_path} remote add origin https://tok@github.com/Org/v.git")
    assert locate(tmp_path, {}).owner == "git:github.com/Org/v"
    with pytest.raises(Exception, match="not a PostgreSQL URL") as err:
        database_url("mysql://u:hunter2@db/afx")
    assert "hunter2" not in str(err.value)


# -- two hosts racing through the PublishService --------------------------------------------
class Hook(http.server.BaseHTTPRequestHandler):
    received: list = []
    delay = 0.2  # an upload takes a while: the other host's attempt comes meanwhile

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(body["job"])
        time.sleep(type(self).delay)
        data = json.dumps({"id": f"hook-{body['job']}"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def hook():
    handler = type("H", (Hook,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def _host(name: str, root: str, config: dict, go, out) -> None:  # noqa: ANN001 - multiprocessing objects
    """One machine: its own clone of the repo, the shared ledger; publishes every job at once."""
    os.environ["AFX_WEBHOOK_SECRET"] = "s"
    procs.HOST = name
    from afx.publish.base import Item
    from afx.publish.service import PublishService
    from afx.spec.resolve import resolve

    jobs = resolve([], cwd=Path(root)).jobs
    video = Path(root) / "video.mp4"
    service = PublishService.for_repo(Path(root), config)

    def item_of(job: str):  # noqa: ANN202
        return lambda platform, path, digest: Item(job=job, platform=platform, video=path, thumbnail=None, copy={},
                                                   digest=digest, seconds=1.0, format="short", root=Path(root),
                                                   config=config)

    go.wait(30)
    for job in jobs:
        results: list = []
        service.publish(job, lambda p: (video, "ab" * 32), item_of(job.name), {"jobs": {}}, config,
                        lambda *a: None, results)
        out.put((name, job.name, results[0]["status"], results[0].get("remoteId")))


def test_two_hosts_publish_each_job_once(ledger_database, hook, tmp_path):
    url, handler = hook
    config = {"publish": {"tiktok": "webhook", "webhook": {"url": url, "attempts": 1, "timeout": 10},
                          "ledger": ledger_database, "ledgerName": "git:example.com/team/videos"}}
    names = [f"clip{i}" for i in range(6)]
    for clone in ("a", "b"):  # two checkouts of one repo, at different paths
        root = tmp_path / clone
        root.mkdir()
        (root / "video.mp4").write_bytes(b"not really a video")
        for n in names:
            (root / f"{n}.yaml").write_text(f"entry: compose\ntopic: {n}\nplatforms: [tiktok]\n")
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    hosts = [ctx.Process(target=_host, args=(f"machine-{c}", str(tmp_path / c), config, go, out)) for c in "ab"]
    for p in hosts:
        p.start()
    time.sleep(1.0)  # both started and waiting (spawn imports afx)
    go.set()
    seen = [out.get(timeout=60) for _ in range(2 * len(names))]
    for p in hosts:
        p.join(30)
    assert [p.exitcode for p in hosts] == [0, 0]
    assert sorted(handler.received) == names, "each job is posted exactly once"
    for n in names:
        statuses = sorted(status for _, job, status, _ in seen if job == n)
        assert statuses in (["in progress", "published"], ["published", "published"]), (n, statuses)
    assert any(status == "in progress" for *_, status, _ in seen), "the hosts never raced"
    with Ledger(Location(tmp_path / "a", ledger_database, "git:example.com/team/videos")) as ledger:
        rows = {r["job"]: r for r in ledger.rows()}
        assert {n: rows[n]["state"] for n in names} == dict.fromkeys(names, "published")
        assert {rows[n]["remote_id"] for n in names} == {f"hook-{n}" for n in names}
    # the host that found one in progress sees it published now, and posts nothing
    q, done = ctx.Queue(), ctx.Event()
    done.set()
    again = ctx.Process(target=_host, args=("machine-b", str(tmp_path / "b"), config, done, q))
    again.start()
    after = [q.get(timeout=60) for _ in names]
    again.join(30)
    assert {status for _, _, status, _ in after} == {"published"} and sorted(handler.received) == names


# -- two afx serve on one PostgreSQL ---------------------------------------------------------
def test_two_servers_on_one_database_publish_a_requeued_job_once(postgres_url, hook, tmp_path):
    """A job's publish is run by both servers at once (a stalled job retried elsewhere while
    its first run still uploads): the account's ledger, in the servers' database, lets one
    post. The servers' data folders differ, as two machines' do."""
    from sqlalchemy import create_engine, text

    from tests.server.serverproc import Server, wait_for

    url, handler = hook
    database = new_database(postgres_url, "afx_shared_ledger_servers")
    env = {"AFX_DATABASE_URL": database, "AFX_WEBHOOK_SECRET": "s"}
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "afx.yaml").write_text(
            f"version: 1\npublish: {{tiktok: webhook, webhook: {{url: '{url}', attempts: 1, timeout: 20}}}}\n")
    handler.delay = 3.0
    engine = create_engine(database)
    fast = ("--workers", "1", "--rate-limit", "100000")  # (this test polls more than 60 times a minute)
    with Server(tmp_path / "one", *fast, env=env) as one, \
            Server(tmp_path / "two", *fast, env=env), one.client(one.key(credits=10)) as api:
        job = api.post("/jobs", json={"entry": "compose", "topic": "Shared", "platforms": ["tiktok"],
                                      "staging": True}).json()["jobId"]
        assert wait_for(api, job, ("complete", "failed"))["status"] == "complete"
        assert api.post(f"/jobs/{job}/approve-publish").status_code == 200
        deadline = time.monotonic() + 30
        while not handler.received:  # the first run is uploading
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with engine.begin() as conn:  # ... and the job is queued again, as a stalled job is: the other server takes it
            from afx.server import queue

            queue.finish(conn, conn.execute(text("SELECT queue_id FROM jobs WHERE id=:id"), {"id": job}).scalar())
            conn.execute(text("UPDATE jobs SET status='queued', worker=NULL WHERE id=:id"), {"id": job})
            queue.enqueue(conn, job)
        deadline = time.monotonic() + 60
        with engine.connect() as conn:  # (the API shows a publish run as complete: read the row)
            while conn.execute(text("SELECT status FROM jobs WHERE id=:id"), {"id": job}).scalar() \
                    in ("queued", "running"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
                conn.rollback()
        second = api.get(f"/jobs/{job}").json()
        results = {r["status"] for r in second["publishResults"]}
        assert results <= {"in progress", "published"}, second  # "in progress": the other run is posting
        deadline = time.monotonic() + 30
        with engine.connect() as conn:
            while conn.execute(text("SELECT state FROM afx_ledger.publishes WHERE job=:id"),
                               {"id": job}).scalar() != "published":
                assert time.monotonic() < deadline
                time.sleep(0.05)
                conn.rollback()
        assert handler.received == [job], "one post, though both servers ran its publish"
        # once more (approve): the job shows it published, and nothing more is posted
        handler.delay = 0.0
        deadline = time.monotonic() + 30
        with engine.connect() as conn:  # both runs over (the one taken back ends when it hears so)
            while conn.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE lock=:id AND status IN "
                                    "('todo', 'doing')"), {"id": job}).scalar():
                assert time.monotonic() < deadline
                time.sleep(0.05)
                conn.rollback()
        assert api.post(f"/jobs/{job}/approve-publish").status_code == 200
        assert wait_for(api, job, ("published",))["publishResults"][0]["remoteId"] == f"hook-{job}"
        assert handler.received == [job]
    with engine.connect() as conn:
        kinds = [r[0] for r in conn.execute(text("SELECT kind FROM afx_ledger.events WHERE job=:id AND "
                                                 "owner LIKE 'account:%' ORDER BY id"), {"id": job})]
    engine.dispose()
    assert kinds.count("published") == 1 and kinds.count("claim") == 1, kinds
    assert not list(tmp_path.rglob("ledger.sqlite")), "the accounts' ledger is the database's, on every server"
