"""afx serve over real HTTP: every endpoint, its status codes, credits, limits, idempotency."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.server.serverproc import Server, wait_for

MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("srv") / "data", "--rate-limit", "100000", "--tick", "0.2") as server:
        yield server


@pytest.fixture
def api(srv):
    with srv.client(srv.key(credits=100)) as client:
        yield client


COMPOSE = {"entry": "compose", "topic": "Patch notes", "tone": "calm", "platforms": ["tiktok"]}


def submit(api: httpx.Client, body: dict, **kw) -> dict:  # type: ignore[no-untyped-def]
    r = api.post("/jobs", json=body, **kw)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_job_from_post_to_result(api, srv):
    created = submit(api, {"entry": "fetch", "url": "https://clips.twitch.tv/clip", "topic": "Best plays",
                           "format": "short", "platforms": ["tiktok"]})
    assert created["status"] == "queued" and created["creditCost"] == 1 and created["balance"] == 99
    assert created["jobId"].startswith("job_")
    done = wait_for(api, created["jobId"], ("published", "failed"))
    assert done["status"] == "published", done
    assert done["outputUrl"].endswith(f"/v1/jobs/{created['jobId']}/files/video.mp4")
    assert done["platforms"] == ["tiktok"] and done["createdAt"].endswith("Z") and isinstance(done["score"], int)
    result = api.get(f"/jobs/{created['jobId']}/result")
    assert result.status_code == 200
    body = result.json()
    assert set(body) >= {"jobId", "status", "videoUrl", "thumbnailUrl", "publishCopy", "completedAt", "publishResults"}
    assert body["publishCopy"]["title"] == "Best plays"
    assert body["publishResults"][0]["platform"] == "tiktok" and body["publishResults"][0]["status"] == "published"
    video = api.get(body["videoUrl"])
    assert video.status_code == 200 and video.content.startswith(b"VIDEO short")
    assert api.get(f"/jobs/{created['jobId']}/files/..%2Fresult.json").status_code == 404
    assert api.get(f"/jobs/{created['jobId']}/files/.afx-files").status_code == 404


def test_result_is_202_until_complete(srv):
    with Server(srv.data_dir.parent / "slow", env={"AFX_TEST_SLEEP": "render:5"}) as slow, \
            slow.client(slow.key()) as api:
        job = submit(api, COMPOSE)["jobId"]
        early = api.get(f"/jobs/{job}/result")
        assert early.status_code == 202 and early.json()["status"] in ("queued", "running")
        running = wait_for(api, job, ("running",))
        assert running["status"] == "running"
        wait_for(api, job, ("published",), timeout=30)
        assert api.get(f"/jobs/{job}/result").status_code == 200


def test_auth(srv, api):
    anon = httpx.get(srv.url + "/v1/account")
    assert anon.status_code == 401 and anon.headers["www-authenticate"] == "Bearer"
    assert anon.json()["error"]["code"] == "unauthorized"
    bad = httpx.get(srv.url + "/v1/account", headers={"Authorization": "Bearer af_live_aaaaaaaaaaaa_" + "x" * 40})
    assert bad.status_code == 401
    mine = submit(api, COMPOSE)["jobId"]
    with srv.client(srv.key()) as other:
        assert other.get(f"/jobs/{mine}").status_code == 404
        assert other.get(f"/jobs/{mine}/result").status_code == 404
        assert other.delete(f"/jobs/{mine}").status_code == 404
        assert other.post(f"/jobs/{mine}/approve-publish").status_code == 404
        assert other.get(f"/jobs/{mine}/files/video.mp4").status_code == 404
        assert other.get("/jobs").json()["total"] == 0


def test_keys_are_stored_hashed(srv):
    key = srv.key()
    raw = (srv.data_dir / "afx.sqlite").read_bytes()
    for wal in srv.data_dir.glob("afx.sqlite-wal"):
        raw += wal.read_bytes()
    secret = key.split("_", 3)[3]  # af_live_<id>_<secret>; the secret may itself hold "_"
    assert len(secret) >= 32
    assert key.encode() not in raw and secret.encode() not in raw


@pytest.mark.parametrize("body,field,message", [
    ({"entry": "fetch", "url": "https://x.test/a.mp4", "durationMins": 200}, "durationMins", "maximum of 120"),
    ({"entry": "compose", "topic": "x", "tpoic": "y"}, "tpoic", 'did you mean "topic"'),
    ({"entry": "fetch"}, "url", ""),
    ({"entry": "upload", "file": "../../etc/passwd"}, "file", "local file"),
    ({"entry": "compose", "topic": "x", "matrix": {"a": [1, 2]}}, "matrix", "one job"),
    ({"entry": "compose", "topic": "{{ ''.__class__.__mro__ }}"}, "topic", "not allowed"),
    ({"entry": "upload", "fileId": "file_nope"}, "fileId", "no upload"),
    ({"entry": "compose", "topic": "x", "fromTemplateId": "tpl_nope"}, "fromTemplateId", "not found"),
])
def test_bad_bodies_name_the_field(api, body, field, message):
    before = api.get("/account").json()["credits"]["balance"]
    r = api.post("/jobs", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert any(f["field"] == field and message in f["message"] + f.get("hint", "") for f in err["fields"]), err
    assert api.get("/account").json()["credits"]["balance"] == before


def test_malformed_and_huge_bodies(api):
    assert api.post("/jobs", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 422
    assert api.post("/jobs", content=b'{"a":1,"a":2}', headers={"Content-Type": "application/json"}
                    ).status_code == 422
    assert api.post("/jobs", content=b"[1]", headers={"Content-Type": "application/json"}).status_code == 422
    assert api.post("/jobs", content=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
                    ).status_code == 415
    big = json.dumps({"entry": "compose", "topic": "x", "script": "a" * (10 * 1024 * 1024)}).encode()
    r = api.post("/jobs", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunks():  # no Content-Length: the limit holds on the bytes themselves
        yield b'{"entry":"compose","topic":"x","script":"'
        for _ in range(50):
            yield b"a" * 100_000
        yield b'"}'
    r = api.post("/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert api.get("/jobs").json()["total"] == 0


def test_credits_and_402(srv):
    with srv.client(srv.key(credits=2)) as api:
        r = api.post("/jobs", json={"entry": "generate", "topic": "Space facts"})
        assert r.status_code == 402
        assert r.json()["error"] == {"code": "insufficient_credits", "creditCost": 3, "balance": 2,
                                     "message": "this job costs 3 credit(s); the balance is 2"}
        assert api.get("/jobs").json()["total"] == 0
        long = submit(api, {"entry": "compose", "topic": "x", "format": "long", "durationMins": 3})
        assert long["creditCost"] == 2 and long["balance"] == 0
        account = api.get("/account").json()
        assert account["credits"] == {"balance": 0, "included": 2, "used": 2}
        assert account["planTier"] == "operate" and account["accountId"].startswith("acct_")
        assert account["rateLimit"]["limit"] == 100000 and account["concurrency"]["limit"] == 10


def test_costs():
    from afx.server.accounts import credit_cost

    assert credit_cost({"entry": "fetch", "url": "a"}) == 1
    assert credit_cost({"entry": "fetch", "url": "a", "urls": ["a"]}) == 1
    assert credit_cost({"entry": "fetch", "url": "a", "urls": ["b"]}) == 2
    assert credit_cost({"entry": "compose", "format": "long"}) == 2
    assert credit_cost({"entry": "generate", "format": "long"}) == 3


def test_list_paginates_and_filters(api):
    ids = [submit(api, {**COMPOSE, "topic": f"Tip {i}"})["jobId"] for i in range(5)]
    for job in ids:
        wait_for(api, job, ("published",))
    page = api.get("/jobs", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [j["jobId"] for j in page["jobs"]] == list(reversed(ids))[1:3]
    assert api.get("/jobs", params={"status": "published"}).json()["total"] == 5
    assert api.get("/jobs", params={"status": "failed"}).json()["total"] == 0
    assert api.get("/jobs", params={"status": "bogus"}).status_code == 422
    assert api.get("/jobs", params={"limit": 0}).status_code == 422
    assert api.get("/jobs", params={"limit": 101}).status_code == 422


def test_cancel(srv):
    with Server(srv.data_dir.parent / "cancel", "--workers", "1", env={"AFX_TEST_SLEEP": "render:30"}) as slow, \
            slow.client(slow.key(credits=10)) as api:
        running = submit(api, COMPOSE)["jobId"]
        queued = submit(api, {**COMPOSE, "topic": "Second"})["jobId"]
        wait_for(api, running, ("running",))
        children = _wait_for_children(slow)
        assert children, "the job runs in a child process"
        r = api.delete(f"/jobs/{queued}")
        assert r.status_code == 200 and r.json() == {"jobId": queued, "status": "cancelled", "refunded": True}
        r = api.delete(f"/jobs/{running}")
        assert r.status_code == 200 and r.json()["refunded"] is False
        assert api.get(f"/jobs/{running}").json()["status"] == "cancelled"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in children), "cancel kills the job's process"
        assert api.delete(f"/jobs/{running}").status_code == 409
        assert api.get("/account").json()["credits"]["balance"] == 9  # one refund, once
        assert api.delete("/jobs/job_000000000000").status_code == 404


def _wait_for_children(server: Server, timeout: float = 15) -> list[int]:
    """The server's job processes, once it has started one (a job is `running` from its claim)."""
    deadline = time.monotonic() + timeout
    while not (children := _children(server)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return children


def _children(server: Server) -> list[int]:
    import subprocess

    out = subprocess.run(["pgrep", "-f", "--", "--multiprocessing-fork"], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if _ancestor(int(p), server.proc.pid)]


def _ancestor(pid: int, parent: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return False
    return ppid == parent


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_staging_waits_for_approval(api):
    job = submit(api, {**COMPOSE, "staging": True})["jobId"]
    built = wait_for(api, job, ("complete", "published", "failed"))
    assert built["status"] == "complete" and built["publishResults"][0]["status"] == "staged"
    time.sleep(0.6)  # scheduler ticks change nothing
    assert api.get(f"/jobs/{job}").json()["status"] == "complete"
    r = api.post(f"/jobs/{job}/approve-publish")
    assert r.status_code == 200 and r.json()["approved"] is True
    done = wait_for(api, job, ("published",))
    assert done["publishResults"][0]["status"] == "published"
    assert api.post(f"/jobs/{job}/approve-publish").status_code == 409  # published already
    plain = submit(api, COMPOSE)["jobId"]
    wait_for(api, plain, ("published",))
    r = api.post(f"/jobs/{plain}/approve-publish")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_approvable"


def test_schedule(api):
    body = {**COMPOSE, "publishMode": "scheduled", "scheduledAt": "2099-01-01T00:00:00Z"}
    job = submit(api, body)["jobId"]
    built = wait_for(api, job, ("complete", "published"))
    assert built["publishResults"][0]["status"] == "scheduled"
    assert built["scheduledAt"] == "2099-01-01T00:00:00Z"
    r = api.patch(f"/jobs/{job}/schedule", json={"scheduledAt": None})
    assert r.status_code == 200 and r.json() == {"jobId": job, "scheduledAt": None}
    assert api.patch(f"/jobs/{job}/schedule", json={"scheduledAt": "tomorrow"}).status_code == 422
    assert api.patch(f"/jobs/{job}/schedule", json={"scheduledAt": "2026-05-26T09:00:00"}).status_code == 422
    assert api.patch(f"/jobs/{job}/schedule", json={}).status_code == 422
    r = api.patch(f"/jobs/{job}/schedule", json={"scheduledAt": "2020-05-26T11:00:00+02:00"})
    assert r.json()["scheduledAt"] == "2020-05-26T09:00:00Z"
    done = wait_for(api, job, ("published",), timeout=20)  # the time has come: the scheduler publishes it
    assert done["publishResults"][0]["status"] == "published"
    assert api.patch(f"/jobs/{job}/schedule", json={"scheduledAt": None}).status_code == 409


def test_manual_publishes_on_approve(api):
    job = submit(api, {**COMPOSE, "publishMode": "manual"})["jobId"]
    built = wait_for(api, job, ("complete", "published"))
    assert built["publishResults"][0]["status"] == "manual"
    assert api.post(f"/jobs/{job}/approve-publish").status_code == 200
    wait_for(api, job, ("published",))


def test_templates(api):
    r = api.post("/templates", json={"name": "Weekly highlights", "format": "short", "platforms": ["tiktok"],
                                     "tone": "hype", "topic": "Best {{ game }} plays"})
    assert r.status_code == 201, r.text
    tpl = r.json()
    assert tpl["id"].startswith("tpl_") and tpl["name"] == "Weekly highlights" and tpl["tone"] == "hype"
    assert [t["id"] for t in api.get("/templates").json()["templates"]] == [tpl["id"]]
    job = submit(api, {"fromTemplateId": tpl["id"], "entry": "compose", "vars": {"game": "CS2"},
                       "platforms": ["youtube"]})["jobId"]
    status = api.get(f"/jobs/{job}").json()
    assert status["topic"] == "Best CS2 plays" and status["platforms"] == ["youtube"]
    bad = api.post("/templates", json={"name": "x", "durationMins": 0, "colour": "red"})
    assert bad.status_code == 422
    assert {f["field"] for f in bad.json()["error"]["fields"]} == {"durationMins", "colour"}
    assert api.post("/templates", json={"id": "mine", "name": "x"}).status_code == 422
    assert api.delete(f"/templates/{tpl['id']}").json() == {"id": tpl["id"], "deleted": True}
    assert api.delete(f"/templates/{tpl['id']}").status_code == 404
    assert api.get("/templates").json() == {"templates": []}
    assert wait_for(api, job, ("published",))["topic"] == "Best CS2 plays"  # unaffected by the delete


def test_idempotency_key(api):
    h = {"Idempotency-Key": "push-1"}
    first = api.post("/jobs", json=COMPOSE, headers=h)
    again = api.post("/jobs", json=COMPOSE, headers=h)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    assert api.get("/jobs").json()["total"] == 1
    other = api.post("/jobs", json={**COMPOSE, "topic": "Other"}, headers=h)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_mismatch"
    assert api.get("/account").json()["credits"]["balance"] == 99  # charged once
    bad = api.post("/jobs", json={"entry": "nope"}, headers={"Idempotency-Key": "k2"})
    assert bad.status_code == 422
    assert api.post("/jobs", json={"entry": "nope"}, headers={"Idempotency-Key": "k2"}).json() == bad.json()


def slow_upload(started: threading.Event, chunks: int, pause: float, *, end: bool,
                hold: threading.Event | None = None):
    """A multipart upload body that trickles in (`started` is set after its first part; with
    `hold`, it goes on trickling until that is set)."""
    def body():
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\n" + MP4_HEAD
        started.set()
        for _ in range(chunks):
            time.sleep(pause)
            yield b"\0" * 1000
        while hold is not None and not hold.wait(pause):
            yield b"\0" * 1000
        if end:
            yield b"\r\n--b--\r\n"
    return body


def _idempotency_row(srv: Server, key: str, timeout: float = 10) -> bool:
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db = sqlite3.connect(f"file:{srv.data_dir / 'afx.sqlite'}?mode=ro", uri=True, timeout=10)
        try:
            if db.execute("SELECT 1 FROM idempotency WHERE key=?", (key,)).fetchone():
                return True
        finally:
            db.close()
        time.sleep(0.05)
    return False


def test_idempotency_key_in_flight_is_409(api, srv):
    started, release = threading.Event(), threading.Event()

    slow_body = slow_upload(started, 0, 0.1, end=True, hold=release)

    answers = {}

    def upload():
        answers["first"] = api.post("/upload", content=slow_body(), headers={
            "Idempotency-Key": "up-1", "Content-Type": "multipart/form-data; boundary=b"})

    t = threading.Thread(target=upload)
    t.start()
    started.wait(5)
    assert _idempotency_row(srv, "up-1"), "the first upload's key is held"
    second = api.post("/upload", files={"file": ("a.mp4", MP4_HEAD)}, headers={"Idempotency-Key": "up-1"})
    release.set()
    t.join()
    assert second.status_code == 409 and second.json()["error"]["code"] == "idempotency_in_flight"
    assert answers["first"].status_code == 201


def test_upload_and_an_upload_job(api, srv):
    data = MP4_HEAD + b"\0" * 5000
    r = api.post("/upload", files={"file": ("../../etc/clip.mp4", data, "video/mp4")})
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["fileId"].startswith("file_") and up["size"] == len(data) and up["filename"] == "clip.mp4"
    stored = list((srv.data_dir / "uploads").iterdir())
    assert any(p.name.startswith(up["fileId"]) for p in stored) and not any("clip" in p.name for p in stored)
    job = submit(api, {"entry": "upload", "fileId": up["fileId"], "topic": "My clip"})["jobId"]
    assert wait_for(api, job, ("complete", "failed"))["status"] == "complete"  # no platforms: nothing to publish
    video = api.get(api.get(f"/jobs/{job}").json()["outputUrl"]).content
    assert data.hex()[:64].encode() in video  # the cheap pipeline's "video" carries its input file's bytes
    same = api.post("/upload", files={"file": ("b.mp4", data)}, headers={"Idempotency-Key": "u"}).json()
    again = api.post("/upload", files={"file": ("b.mp4", data)}, headers={"Idempotency-Key": "u"})
    assert again.json()["fileId"] == same["fileId"]
    assert api.post("/upload", files={"file": ("c.mp4", data + b"x")}, headers={"Idempotency-Key": "u"}
                    ).status_code == 422


@pytest.mark.parametrize("content,ctype,status", [
    (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--b--\r\n",
     "multipart/form-data; boundary=b", 415),
    (b"--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhello\r\n--b--\r\n",
     "multipart/form-data; boundary=b", 400),
    (b"garbage", "multipart/form-data; boundary=b", 400),
    (b"x", "multipart/form-data", 400),
    (b"x", "multipart/form-data; boundary=" + "a" * 200, 400),
    (b"x", "application/json", 415),
    (b"--b\r\n" + b"X-Junk: 1\r\n" * 100 + b"\r\n\r\n--b--\r\n", "multipart/form-data; boundary=b", 400),
    (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\n" + MP4_HEAD + b"cut off",
     "multipart/form-data; boundary=b", 400),  # no closing boundary: truncated
])
def test_bad_uploads(api, srv, content, ctype, status):
    r = api.post("/upload", content=content, headers={"Content-Type": ctype})
    assert r.status_code == status, r.text
    assert not [p for p in (srv.data_dir / "uploads").glob(".part-*")]


def test_upload_limit_is_enforced_while_streaming(srv):
    with Server(srv.data_dir.parent / "small", "--max-upload", "100000") as small, \
            small.client(small.key()) as api:
        def body():
            yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n\r\n" + MP4_HEAD
            for _ in range(40):
                yield b"\0" * 10_000
            yield b"\r\n--b--\r\n"
        r = api.post("/upload", content=body(), headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        r = api.post("/upload", files={"file": ("big.mp4", MP4_HEAD + b"\0" * 200_000)})
        assert r.status_code == 413
        uploads = small.data_dir / "uploads"
        assert not uploads.exists() or not list(uploads.iterdir())


def test_rate_limit(srv):
    with Server(srv.data_dir.parent / "rate", "--rate-limit", "5") as limited, \
            limited.client(limited.key()) as api:
        answers = [api.get("/account") for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert answers[0].headers["ratelimit-limit"] == "5" and answers[0].headers["ratelimit-remaining"] == "4"
        last = answers[-1]
        assert int(last.headers["retry-after"]) >= 1 and last.headers["ratelimit-remaining"] == "0"
        assert last.json()["error"]["code"] == "rate_limited"
        with limited.client(limited.key()) as other:  # per key
            assert other.get("/account").status_code == 200


def test_concurrent_submissions_are_capped_atomically(srv):
    with Server(srv.data_dir.parent / "busy", "--max-active", "3", "--workers", "1",
                env={"AFX_TEST_SLEEP": "render:30"}) as busy, busy.client(busy.key(credits=50)) as api:
        answers: list[httpx.Response] = []
        lock = threading.Lock()

        def go(i: int) -> None:
            with busy.client(api.headers["authorization"].split()[1]) as c:
                r = c.post("/jobs", json={**COMPOSE, "topic": f"T{i}"})
            with lock:
                answers.append(r)
        threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(a.status_code for a in answers)
        assert codes == [201] * 3 + [429] * 5, codes
        assert {a.json()["error"]["code"] for a in answers if a.status_code == 429} == {"too_many_active_jobs"}
        assert api.get("/account").json()["credits"]["balance"] == 47


def test_openapi_and_docs(srv):
    spec = httpx.get(srv.url + "/openapi.json").json()
    paths = spec["paths"]
    for path, method in [("/v1/jobs", "post"), ("/v1/jobs", "get"), ("/v1/jobs/{job_id}", "get"),
                         ("/v1/jobs/{job_id}", "delete"), ("/v1/jobs/{job_id}/result", "get"),
                         ("/v1/jobs/{job_id}/approve-publish", "post"), ("/v1/jobs/{job_id}/schedule", "patch"),
                         ("/v1/upload", "post"), ("/v1/templates", "get"), ("/v1/templates", "post"),
                         ("/v1/templates/{template_id}", "delete"), ("/v1/account", "get")]:
        assert method in paths[path], (path, method)
    job_schema = spec["components"]["schemas"]["JobSpec"]
    assert job_schema["properties"]["durationMins"]["maximum"] == 120
    refs = json.dumps(spec)
    assert "#/$defs/" not in refs
    assert "swagger-ui" in httpx.get(srv.url + "/docs").text.lower()


def test_unknown_routes_use_the_error_shape(srv, api):
    r = api.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.put("/jobs")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_kill_9_mid_job_then_restart_requeues_it(tmp_path):
    data = tmp_path / "data"
    first = Server(data, "--tick", "0.2", env={"AFX_TEST_SLEEP": "render:3"}).start()
    try:
        key = first.key(credits=5)
        with first.client(key) as api:
            job = submit(api, COMPOSE)["jobId"]
            wait_for(api, job, ("running",))
            children = _wait_for_children(first)
            assert children
        first.kill9()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.1)
        assert not any(_alive(p) for p in children), "a job's process dies with its server"
    finally:
        first.stop()
    with Server(data, "--tick", "0.2", env={"AFX_TEST_SLEEP": "render:1"}) as second, second.client(key) as api:
        done = wait_for(api, job, ("published", "failed"), timeout=30)
        assert done["status"] == "published", done
        assert api.get("/account").json()["credits"]["balance"] == 4  # charged once, not refunded
        assert api.get("/jobs").json()["total"] == 1


def test_a_job_that_keeps_killing_its_server_is_failed_and_refunded(tmp_path):
    data = tmp_path / "data"
    first = Server(data, "--attempts", "1", env={"AFX_TEST_SLEEP": "render:30"}).start()
    try:
        key = first.key(credits=5)
        with first.client(key) as api:
            job = submit(api, COMPOSE)["jobId"]
            wait_for(api, job, ("running",))
        first.kill9()
    finally:
        first.stop()
    with Server(data, "--attempts", "1") as second, second.client(key) as api:
        status = api.get(f"/jobs/{job}").json()
        assert status["status"] == "failed" and "server stopped" in status["error"]
        assert api.get("/account").json()["credits"] == {"balance": 5, "included": 5, "used": 0}
        again = api.get(f"/jobs/{job}").json()  # nothing runs it again
        assert again["status"] == "failed"
    from sqlalchemy import select

    from afx.server import accounts, db

    engine = db.connect(f"sqlite:///{data / 'afx.sqlite'}")
    try:
        with db.read(engine) as conn:
            account_id = conn.execute(select(db.jobs.c.account_id).where(db.jobs.c.id == job)).scalar()
        with db.write(engine) as conn:
            assert accounts.refund(conn, account_id, job, "again") is False  # never twice
        assert accounts.check_ledger(engine, account_id)
    finally:
        engine.dispose()


def test_busy_and_broke_answers_are_not_replayed(srv):
    with Server(srv.data_dir.parent / "one", "--max-active", "1", "--workers", "1",
                env={"AFX_TEST_SLEEP": "render:30"}) as busy, busy.client(busy.key(credits=10)) as api:
        first = submit(api, COMPOSE)["jobId"]
        h = {"Idempotency-Key": "later"}
        r = api.post("/jobs", json={**COMPOSE, "topic": "Later"}, headers=h)
        assert r.status_code == 429 and r.headers["retry-after"] == "5"
        assert r.json()["error"]["code"] == "too_many_active_jobs"
        api.delete(f"/jobs/{first}")
        r = api.post("/jobs", json={**COMPOSE, "topic": "Later"}, headers=h)
        assert r.status_code == 201 and "idempotent-replayed" not in r.headers
        assert api.post("/jobs", json={**COMPOSE, "topic": "Later"}, headers=h).json() == r.json()


def test_scheduled_without_a_time_waits_for_patch(api):
    job = submit(api, {**COMPOSE, "publishMode": "scheduled"})["jobId"]
    built = wait_for(api, job, ("complete", "published"))
    assert built["publishResults"][0]["status"] == "unscheduled" and built["scheduledAt"] is None
    api.patch(f"/jobs/{job}/schedule", json={"scheduledAt": "2020-01-01T00:00:00Z"})
    assert wait_for(api, job, ("published",), timeout=20)["publishResults"][0]["status"] == "published"


def test_answers_say_they_come_from_afx(api):
    from afx import __version__

    assert api.get("/account").headers["x-afx-version"] == __version__


def test_a_template_cannot_smuggle_another_accounts_upload(srv):
    with srv.client(srv.key()) as victim, srv.client(srv.key()) as thief:
        file_id = victim.post("/upload", files={"file": ("secret.mp4", MP4_HEAD + b"secret")}).json()["fileId"]
        tpl = thief.post("/templates", json={"name": "t", "entry": "upload", "fileId": file_id}).json()["id"]
        r = thief.post("/jobs", json={"fromTemplateId": tpl, "topic": "x"})
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "fileId"
        assert thief.get("/jobs").json()["total"] == 0


def test_strict_text_sizes_and_schemes(srv, api):
    r = api.post("/jobs", content=b'{"entry":"compose","topic":"bad \\ud800"}',
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "surrogate" in r.json()["error"]["message"]
    job = submit(api, COMPOSE)["jobId"]
    big = b"x" * (300 * 1024)
    assert api.post(f"/jobs/{job}/approve-publish", content=big).status_code == 413
    r = api.patch(f"/jobs/{job}/schedule", content=b'{"scheduledAt":"' + big + b'"}',
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    for when in ("0999-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        r = api.patch(f"/jobs/{job}/schedule", json={"scheduledAt": when})
        assert r.status_code == 422, (when, r.text)
    r = api.patch(f"/jobs/{job}/schedule", json={"scheduledAt": "2030-01-01T00:00:00Z", "extra": 1})
    assert r.status_code == 422
    key = api.headers["authorization"].split()[1]
    assert httpx.get(srv.url + "/v1/account", headers={"Authorization": f"bearer {key}"}).status_code == 200


def test_a_cancel_right_after_the_claim_still_stops_the_job(srv):
    with Server(srv.data_dir.parent / "race", "--workers", "2", "--rate-limit", "100000",
                env={"AFX_TEST_SLEEP": "ingest:1"}) as s, s.client(s.key(credits=50)) as api:
        jobs = []
        for i in range(6):
            job = submit(api, {**COMPOSE, "topic": f"Race {i}"})["jobId"]
            wait_for(api, job, ("running",))
            assert api.delete(f"/jobs/{job}").status_code == 200
            jobs.append(job)
        time.sleep(2.5)
        for job in jobs:
            assert api.get(f"/jobs/{job}").json()["status"] == "cancelled"
            assert not list(s.data_dir.glob(f"accounts/*/out/{job}/result.json"))
            assert not list(s.data_dir.glob(f"accounts/*/outbox/tiktok/{job}*"))


def test_a_publish_run_is_not_cancellable_and_its_failure_keeps_the_job_built(tmp_path):
    data = tmp_path / "data"
    with Server(data, "--rate-limit", "100000") as first:
        key = first.key()
        with first.client(key) as api:
            job = submit(api, {**COMPOSE, "staging": True})["jobId"]
            wait_for(api, job, ("complete",))
    # The render stage changed since (a new version), and now fails: the publish run rebuilds
    # it, fails, and the job is still the complete job it was.
    with Server(data, "--rate-limit", "100000", "--workers", "1",
                env={"AFX_TEST_VERSION": "render:99", "AFX_TEST_FAIL": "render", "AFX_TEST_SLEEP": "render:2"}
                ) as second, second.client(key) as api:
        approved = api.post(f"/jobs/{job}/approve-publish")
        assert approved.status_code == 200 and approved.json()["status"] == "complete"
        r = api.delete(f"/jobs/{job}")
        assert r.status_code == 409 and r.json()["error"]["code"] == "not_cancellable"
        # While it publishes the job is still complete (its video is there): the publish run
        # shows as `publishing`, the result stays readable, and lists count it as complete.
        view = api.get(f"/jobs/{job}").json()
        assert view["status"] == "complete" and view["publishing"] in ("queued", "running"), view
        assert api.get(f"/jobs/{job}/result").status_code == 200
        listed = {s: [j["jobId"] for j in api.get("/jobs", params={"status": s}).json()["jobs"]]
                  for s in ("complete", "queued", "running")}
        assert listed == {"complete": [job], "queued": [], "running": []}, listed
        done = wait_for(api, job, ("complete", "failed", "published"), timeout=30)
        deadline = time.monotonic() + 20
        while done["status"] == "complete" and not done.get("error") and time.monotonic() < deadline:
            time.sleep(0.2)
            done = api.get(f"/jobs/{job}").json()
        assert done["status"] == "complete" and "render" in done["error"], done
        assert api.get(f"/jobs/{job}/result").status_code == 200
        assert api.get("/account").json()["credits"]["balance"] == 99


def test_a_second_server_on_the_same_database_leaves_running_jobs_alone(tmp_path):
    data = tmp_path / "data"
    with Server(data, env={"AFX_TEST_SLEEP": "render:15"}) as first:
        key = first.key()
        with first.client(key) as api:
            job = submit(api, COMPOSE)["jobId"]
            wait_for(api, job, ("running",))
            with Server(data):
                time.sleep(1)
                assert api.get(f"/jobs/{job}").json()["status"] == "running"
            assert wait_for(api, job, ("published", "failed"), timeout=30)["status"] == "published"
        from sqlalchemy import select

        from afx.server import db

        engine = db.connect(f"sqlite:///{data / 'afx.sqlite'}")
        with db.read(engine) as conn:
            assert conn.execute(select(db.jobs.c.attempts).where(db.jobs.c.id == job)).scalar() == 1
        engine.dispose()


def test_an_idempotency_key_held_by_a_killed_server_is_freed(tmp_path):
    data = tmp_path / "data"
    first = Server(data).start()
    key = first.key()
    started = threading.Event()

    slow_body = slow_upload(started, 100, 0.05, end=False)

    def upload():
        try:
            with first.client(key) as c:
                c.post("/upload", content=slow_body(), headers={
                    "Idempotency-Key": "held", "Content-Type": "multipart/form-data; boundary=b"})
        except httpx.HTTPError:
            pass
    t = threading.Thread(target=upload)
    t.start()
    started.wait(5)
    time.sleep(0.5)
    first.kill9()
    t.join()
    with Server(data) as second, second.client(key) as api:
        r = api.post("/upload", files={"file": ("a.mp4", MP4_HEAD)}, headers={"Idempotency-Key": "held"})
        assert r.status_code == 201, r.text
