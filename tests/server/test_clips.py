"""Jobs with clips over the API (issue 14): a POST with `clips` and the clip jobs made of it,
over real HTTP against a real `afx serve` running the cheap pipeline (its moments stage
finds a moment every 100 s of an hour-long source: the media does not matter here)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.server.serverproc import Server, wait_for
from tests.server.test_server import COMPOSE, _alive, _wait_for_children, submit

VOD = {"entry": "fetch", "url": "https://example.com/vod.mp4", "topic": "Stream", "platforms": ["tiktok"]}


def vod(count: int = 3, **fields) -> dict:  # type: ignore[no-untyped-def]
    return {**VOD, "clips": {"count": count, "min": 15, "max": 30}, **fields}


def ids(parent: str, count: int) -> list[str]:
    return [f"{parent}-{rank:02d}" for rank in range(1, count + 1)]


def ledger(server: Server, api: httpx.Client) -> list[tuple[str, str, int]]:
    """The account's credit events other than its grant: (job, kind, amount), in order."""
    account = api.get("/account").json()["accountId"]
    db = sqlite3.connect(f"file:{server.data_dir / 'afx.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        return [tuple(r) for r in db.execute(  # type: ignore[misc]
            "SELECT job_id, kind, amount FROM credit_events WHERE account_id=? AND kind != 'grant' ORDER BY id",
            (account,))]
    finally:
        db.close()


def balance(api: httpx.Client) -> int:
    return int(api.get("/account").json()["credits"]["balance"])


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("clips") / "data", "--tick", "0.2") as server:
        yield server


@pytest.fixture
def api(srv):
    with srv.client(srv.key(credits=100)) as client:
        yield client


def test_a_job_with_clips_from_post_to_its_clip_jobs(api, srv):
    created = submit(api, vod(3))
    parent = created["jobId"]
    clip_ids = ids(parent, 3)
    assert created["creditCost"] == 3 and created["balance"] == 97  # 3 short clips, 1 credit each
    assert created["clips"] == [{"jobId": c, "rank": r, "status": "queued"} for r, c in enumerate(clip_ids, 1)]

    done = wait_for(api, parent, ("complete", "failed"))
    assert done["status"] == "complete" and done["clipCount"] == 3, done
    assert [(c["jobId"], c["rank"]) for c in done["clips"]] == list(zip(clip_ids, (1, 2, 3)))
    for c in done["clips"]:
        assert c["source"] == 0 and 15 <= c["end"] - c["start"] <= 30 and c["seconds"] == c["end"] - c["start"]
    assert "outputUrl" not in done or done["outputUrl"] is None
    for clip, listed in zip(clip_ids, done["clips"]):
        view = wait_for(api, clip, ("published", "failed"))
        assert view["status"] == "published", view
        assert view["parentId"] == parent and view["rank"] == listed["rank"] and "waitingFor" not in view
        assert (view["start"], view["end"]) == (listed["start"], listed["end"])
        assert view["outputUrl"].endswith(f"/v1/jobs/{clip}/files/video.mp4") and view["creditCost"] == 1
        assert view["topic"] == "Stream" and view["platforms"] == ["tiktok"]
        assert api.get(f"/jobs/{clip}/result").json()["publishResults"][0]["status"] == "published"

    # The parent's result is its clips.json: the clips taken, and every candidate.
    result = api.get(f"/jobs/{parent}/result")
    assert result.status_code == 200
    body = result.json()
    assert body["jobId"] == parent and body["status"] == "complete" and body["count"] == 3
    assert [c["jobId"] for c in body["clips"]] == clip_ids and {c["status"] for c in body["clips"]} == {"published"}
    assert all(c["resultUrl"].endswith(f"/v1/jobs/{c['jobId']}/result") and "score" in c for c in body["clips"])
    assert len(body["candidates"]) > 3 and body["completedAt"].endswith("Z")
    clips_json = api.get(body["afx"]["files"]["clips.json"])
    assert clips_json.status_code == 200 and [c["name"] for c in clips_json.json()["clips"]] == clip_ids

    # GET /jobs?parentId= lists the clip jobs in rank order, with status, limit and offset.
    listed = api.get("/jobs", params={"parentId": parent}).json()
    assert listed["total"] == 3 and [j["jobId"] for j in listed["jobs"]] == clip_ids
    page = api.get("/jobs", params={"parentId": parent, "limit": 1, "offset": 1}).json()
    assert page["total"] == 3 and [j["jobId"] for j in page["jobs"]] == clip_ids[1:2]
    assert api.get("/jobs", params={"parentId": parent, "status": "published"}).json()["total"] == 3
    assert api.get("/jobs", params={"parentId": parent, "status": "queued"}).json()["total"] == 0
    assert api.get("/jobs", params={"parentId": "job_nope"}).json()["total"] == 0
    everything = api.get("/jobs").json()
    assert everything["total"] == 4 and [j["jobId"] for j in everything["jobs"]][-1] == parent

    # Charged once per clip, to the clip jobs; the parent itself costs nothing.
    assert ledger(srv, api) == [(c, "debit", -1) for c in clip_ids]
    account = api.get("/account").json()
    assert account["credits"] == {"balance": 97, "included": 100, "used": 3} and account["concurrency"]["active"] == 0

    # A job with clips publishes nothing itself; complete with its clips made, it is not cancellable.
    for r in (api.post(f"/jobs/{parent}/approve-publish"),
              api.patch(f"/jobs/{parent}/schedule", json={"scheduledAt": None})):
        assert r.status_code == 409 and clip_ids[0] in r.json()["error"]["message"], r.text
    r = api.delete(f"/jobs/{parent}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_cancellable"


def test_each_clip_costs_a_single_clip_of_its_format(srv):
    with srv.client(srv.key(credits=5)) as api:
        r = api.post("/jobs", json=vod(3, format="long", durationMins=3))
        assert r.status_code == 402, r.text
        assert r.json()["error"] == {"code": "insufficient_credits", "creditCost": 6, "balance": 5,
                                     "message": "this job costs 6 credit(s); the balance is 5"}
        assert api.get("/jobs").json()["total"] == 0 and ledger(srv, api) == []
        created = submit(api, vod(2, format="long", durationMins=3))
        assert created["creditCost"] == 4 and created["balance"] == 1
        r = api.post("/jobs", json=vod(2))
        assert r.status_code == 402 and r.json()["error"]["creditCost"] == 2
        parent = created["jobId"]
        assert ledger(srv, api) == [(c, "debit", -2) for c in ids(parent, 2)]
        assert api.get(f"/jobs/{parent}").json()["creditCost"] == 4
        assert api.get(f"/jobs/{parent}-01").json()["creditCost"] == 2


def test_the_idempotency_key_replays_the_job_and_its_clips(api, srv):
    h = {"Idempotency-Key": "vod-once"}
    first = api.post("/jobs", json=vod(3), headers=h)
    again = api.post("/jobs", json=vod(3), headers=h)
    assert first.status_code == again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert first.json() == again.json() and len(first.json()["clips"]) == 3
    assert api.get("/jobs").json()["total"] == 4 and balance(api) == 97


def test_a_clip_job_is_not_run_before_its_parents_clips_are_known_and_cancel_takes_them_all(srv):
    with Server(srv.data_dir.parent / "slow-moments", "--workers", "2", "--tick", "0.2",
                env={"AFX_TEST_SLEEP": "moments:30"}) as slow, slow.client(slow.key(credits=10)) as api:
        parent = submit(api, vod(3))["jobId"]
        clip_ids = ids(parent, 3)
        wait_for(api, parent, ("running",))
        children = _wait_for_children(slow)
        time.sleep(1)  # a second worker is free: it must leave the waiting clips alone
        for rank, clip in enumerate(clip_ids, 1):
            view = api.get(f"/jobs/{clip}").json()
            assert view["status"] == "queued" and view["waitingFor"] == parent and view["parentId"] == parent
            assert view["rank"] == rank and view["start"] is None
        assert [j["jobId"] for j in api.get("/jobs", params={"status": "running"}).json()["jobs"]] == [parent]
        view = api.get(f"/jobs/{parent}").json()
        assert view["stage"] == "moments" and [c["status"] for c in view["clips"]] == ["queued"] * 3
        assert api.get(f"/jobs/{parent}/result").status_code == 202

        # A waiting clip may be cancelled on its own (refunded: it never ran) ...
        r = api.delete(f"/jobs/{clip_ids[1]}")
        assert r.json() == {"jobId": clip_ids[1], "status": "cancelled", "refunded": True}
        # ... and cancelling the parent cancels the others, refunded, and stops its process.
        r = api.delete(f"/jobs/{parent}")
        assert r.status_code == 200, r.text
        assert r.json() == {"jobId": parent, "status": "cancelled", "refunded": True,
                            "clips": [{"jobId": c, "status": "cancelled", "refunded": True}
                                      for c in (clip_ids[0], clip_ids[2])]}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.1)
        assert not any(_alive(p) for p in children)
        assert balance(api) == 10
        assert sorted(ledger(slow, api)) == sorted([(c, "debit", -1) for c in clip_ids] +
                                                   [(c, "refund", 1) for c in clip_ids])
        assert api.delete(f"/jobs/{parent}").status_code == 409
        assert {j["status"] for j in api.get("/jobs").json()["jobs"]} == {"cancelled"}


def test_fewer_clips_than_asked_for_are_cancelled_and_refunded(srv):
    with Server(srv.data_dir.parent / "few", "--tick", "0.2", env={"AFX_TEST_MOMENTS": "2"}) as few, \
            few.client(few.key(credits=10)) as api:
        parent = submit(api, vod(4))["jobId"]
        clip_ids = ids(parent, 4)
        assert wait_for(api, parent, ("complete", "failed"))["status"] == "complete"
        for clip in clip_ids[:2]:
            assert wait_for(api, clip, ("published", "failed"))["status"] == "published"
        for clip in clip_ids[2:]:
            view = api.get(f"/jobs/{clip}").json()
            assert view["status"] == "cancelled" and "the source gave 2 of the 4 clips" in view["error"], view
        assert [c["status"] for c in api.get(f"/jobs/{parent}").json()["clips"]] == ["published"] * 2 + \
            ["cancelled"] * 2
        assert len(api.get(f"/jobs/{parent}/result").json()["clips"]) == 2
        assert balance(api) == 8
        assert ledger(few, api) == [(c, "debit", -1) for c in clip_ids] + [(c, "refund", 1) for c in clip_ids[2:]]


def test_a_parent_that_fails_fails_its_clips_refunded(srv):
    with Server(srv.data_dir.parent / "failing", "--tick", "0.2", env={"AFX_TEST_FAIL": "moments"}) as failing, \
            failing.client(failing.key(credits=10)) as api:
        parent = submit(api, vod(3))["jobId"]
        view = wait_for(api, parent, ("complete", "failed"))
        assert view["status"] == "failed" and "moments" in view["error"]
        for clip in ids(parent, 3):
            clip_view = api.get(f"/jobs/{clip}").json()
            assert clip_view["status"] == "failed" and parent in clip_view["error"], clip_view
        assert balance(api) == 10
        assert api.get(f"/jobs/{parent}/result").status_code == 202
        assert api.delete(f"/jobs/{parent}").status_code == 409


def test_a_parent_and_its_clips_count_as_one_active_submission(srv):
    with Server(srv.data_dir.parent / "cap", "--workers", "1", "--max-active", "2", "--tick", "0.2",
                env={"AFX_TEST_SLEEP": "render:30"}) as busy, busy.client(busy.key(credits=20)) as api:
        parent = submit(api, vod(5))["jobId"]
        other = submit(api, COMPOSE)["jobId"]
        r = api.post("/jobs", json={**COMPOSE, "topic": "Third"})
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_active_jobs", r.text
        assert api.get("/account").json()["concurrency"] == {"limit": 2, "active": 2}
        # The parent's clips stage is done; its first clip renders (its clips were submitted
        # before the other job, so they go first).
        assert wait_for(api, parent, ("complete", "failed"))["status"] == "complete"
        clip_ids = ids(parent, 5)
        wait_for(api, clip_ids[0], ("running",))
        assert api.get("/account").json()["concurrency"]["active"] == 2  # still the one submission
        # Cancel the complete parent: its clips go (those that never started refunded); it stays complete.
        r = api.delete(f"/jobs/{parent}")
        assert r.status_code == 200, r.text
        assert r.json() == {"jobId": parent, "status": "complete", "refunded": True,
                            "clips": [{"jobId": c, "status": "cancelled", "refunded": c != clip_ids[0]}
                                      for c in clip_ids]}
        assert api.get(f"/jobs/{parent}").json()["status"] == "complete"
        assert balance(api) == 20 - 1 - 1  # the clip that ran and the other job
        assert api.get("/account").json()["concurrency"]["active"] == 1
        assert api.get(f"/jobs/{other}").json()["status"] in ("queued", "running")


def test_kill_9_mid_parent_and_mid_clip_then_restarts_lose_and_charge_nothing(tmp_path):
    data = tmp_path / "data"
    first = Server(data, "--tick", "0.2", env={"AFX_TEST_SLEEP": "moments:5"}).start()
    try:
        key = first.key(credits=10)
        with first.client(key) as api:
            parent = submit(api, vod(3))["jobId"]
            wait_for(api, parent, ("running",))
            assert _wait_for_children(first)
        first.kill9()
    finally:
        first.stop()
    clip_ids = ids(parent, 3)
    second = Server(data, "--tick", "0.2", "--workers", "1", env={"AFX_TEST_SLEEP": "render:5"}).start()
    try:
        with second.client(key) as api:
            assert wait_for(api, parent, ("complete", "failed"), timeout=30)["status"] == "complete"
            wait_for(api, clip_ids[0], ("running",), timeout=30)
            assert _wait_for_children(second)
        second.kill9()
    finally:
        second.stop()
    with Server(data, "--tick", "0.2") as third, third.client(key) as api:
        for clip in clip_ids:
            assert wait_for(api, clip, ("published", "failed"), timeout=30)["status"] == "published"
        assert api.get("/jobs").json()["total"] == 4
        assert balance(api) == 7
        assert ledger(third, api) == [(c, "debit", -1) for c in clip_ids]
        view = api.get(f"/jobs/{parent}").json()
        assert view["status"] == "complete" and [c["status"] for c in view["clips"]] == ["published"] * 3
    attempts = _attempts(data)
    assert attempts[parent] == 2 and attempts[clip_ids[0]] == 2 and attempts[clip_ids[1]] == 1


def test_a_parent_that_keeps_killing_its_server_fails_its_clips_refunded_once(tmp_path):
    data = tmp_path / "data"
    first = Server(data, "--attempts", "1", env={"AFX_TEST_SLEEP": "moments:30"}).start()
    try:
        key = first.key(credits=5)
        with first.client(key) as api:
            parent = submit(api, vod(3))["jobId"]
            wait_for(api, parent, ("running",))
        first.kill9()
    finally:
        first.stop()
    with Server(data, "--attempts", "1") as second, second.client(key) as api:
        view = api.get(f"/jobs/{parent}").json()
        assert view["status"] == "failed" and "server stopped" in view["error"], view
        assert [c["status"] for c in view["clips"]] == ["failed"] * 3
        assert balance(api) == 5
        account = api.get("/account").json()["accountId"]
    from sqlalchemy import select

    from afx.server import accounts, db

    engine = db.connect(f"sqlite:///{data / 'afx.sqlite'}")
    try:
        with db.read(engine) as conn:
            kinds = conn.execute(select(db.credit_events.c.job_id, db.credit_events.c.kind).where(
                db.credit_events.c.account_id == account, db.credit_events.c.kind != "grant")).all()
        assert sorted(kinds) == sorted([(c, k) for c in ids(parent, 3) for k in ("debit", "refund")])
        with db.write(engine) as conn:
            assert not any(accounts.refund(conn, account, c, "again") for c in ids(parent, 3))
        assert accounts.check_ledger(engine, account)
    finally:
        engine.dispose()


def _attempts(data: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{data / 'afx.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        return dict(db.execute("SELECT id, attempts FROM jobs").fetchall())
    finally:
        db.close()


def test_the_openapi_document_shows_clips(srv):
    spec = httpx.get(srv.url + "/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "clips" in schemas["JobSpec"]["properties"]
    assert "clips" in schemas["JobCreated"]["properties"]
    assert {"parentId", "rank", "clips", "clipCount", "waitingFor"} <= set(schemas["JobStatus"]["properties"])
    assert "clips" in schemas["ClipsResult"]["properties"] and "clips" in schemas["Cancelled"]["properties"]
    params = {p["name"] for p in spec["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert "parentId" in params
    result = json.dumps(spec["paths"]["/v1/jobs/{job_id}/result"]["get"]["responses"]["200"])
    assert "ClipsResult" in result and "JobResult" in result
