"""afx push and afx remote against a real `afx serve`; afx.client's retries against a mock."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import httpx
import pytest

import afx.client
from afx import times
from afx.cli.commands.push import push
from afx.cli.env import Environment
from afx.client import ApiError, Client, api_root
from afx.errors import UsageError
from afx.remote.push import Polling
from tests.conftest import Result
from tests.mediafix import plain_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return plain_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1, size="160x120", audio=False)


def two_jobs(repo, clip: Path) -> None:
    repo.write("promo.yaml", "entry: compose\ntopic: Launch day\ntone: hype\nplatforms: [tiktok]\n")
    repo.write("media/clip.mp4", clip.read_bytes())
    repo.write("weekly.yaml", "entry: upload\nfile: media/clip.mp4\ntopic: Clip of the week\nplatforms: [youtube]\n")


def lock(repo) -> dict:
    return json.loads((repo.root / "afx.lock").read_text())


def total_jobs(api_server, key: str) -> int:
    with api_server.client(key) as api:
        return api.get("/jobs").json()["total"]


def push_with(repo, environ: dict[str, str], *, json_out: bool = False, clock: times.Clock = times.SYSTEM,
              polling: Polling = Polling()) -> Result:
    """`afx push [--json]` in the repo, with the clock and polling given to the pusher."""
    out, err = io.StringIO(), io.StringIO()
    env = Environment(stdout=out, stderr=err, stdout_isatty=False, stderr_isatty=False, json=json_out,
                      environ=environ)
    old = os.getcwd()
    os.chdir(repo.root)
    try:
        code = push(env, (), clock=clock, polling=polling)
    finally:
        os.chdir(old)
    return Result(code, out.getvalue(), err.getvalue())


def stored_uploads(api_server) -> int:
    folder = api_server.data_dir / "uploads"
    return len([p for p in folder.iterdir() if not p.name.startswith(".")]) if folder.is_dir() else 0


# -- afx push ----------------------------------------------------------------------------
def test_push_uploads_submits_waits_and_downloads(api_server, repo, clip):
    two_jobs(repo, clip)
    key = api_server.new_key()
    env = api_server.env(key)
    uploads_before = stored_uploads(api_server)

    r = repo.afx("push", "--json", environ=env)
    assert r.code == 0, r.text
    data = json.loads(r.out)
    assert data["ok"] is True and data["api"] == api_server.url
    jobs = {j["job"]: j for j in data["jobs"]}
    assert set(jobs) == {"promo", "weekly"}
    for name, job in jobs.items():
        assert job["jobId"].startswith("job_") and job["status"] == "published" and job["new"] is True
        folder = repo.root / "out" / name
        assert (folder / "video.mp4").read_bytes().startswith(b"VIDEO short")
        assert (folder / "thumb.jpg").read_bytes().startswith(b"THUMB")
        result = json.loads((folder / "result.json").read_text())
        assert result["jobId"] == job["jobId"] and result["status"] == "published"
        assert not [p for p in folder.iterdir() if p.name.endswith(".part")]
    assert "promo: submitted as job_" in r.err and "weekly: uploading media/clip.mp4" in r.err

    # afx.lock: the remote job per API, and the upload by content.
    data_lock = lock(repo)
    for name, job in jobs.items():
        block = data_lock["jobs"][name]["remote"][api_server.url]
        assert block["jobId"] == job["jobId"] and block["status"] == "published"
        assert block["spec"] == job["spec"] and block["submitted"].endswith("Z")
    sha = hashlib.sha256(clip.read_bytes()).hexdigest()
    file_id = data_lock["remote"][api_server.url]["uploads"][sha]
    assert file_id.startswith("file_")
    assert stored_uploads(api_server) == uploads_before + 1
    assert total_jobs(api_server, key) == 2

    # Again: nothing is uploaded or created; out/ is already current.
    again = repo.afx("push", "--json", environ=env)
    assert again.code == 0, again.text
    assert {j["job"]: j["jobId"] for j in json.loads(again.out)["jobs"]} == {n: j["jobId"] for n, j in jobs.items()}
    assert all(j["new"] is False for j in json.loads(again.out)["jobs"])
    assert "uploading" not in again.err and "is up to date" in again.err
    assert total_jobs(api_server, key) == 2 and stored_uploads(api_server) == uploads_before + 1

    # Even without afx.lock, the Idempotency-Keys make the same upload and the same jobs.
    (repo.root / "afx.lock").unlink()
    third = repo.afx("push", "--json", environ=env)
    assert third.code == 0, third.text
    assert {j["job"]: j["jobId"] for j in json.loads(third.out)["jobs"]} == {n: j["jobId"] for n, j in jobs.items()}
    assert "the server had it already" in third.err and "already submitted as" in third.err
    assert total_jobs(api_server, key) == 2 and stored_uploads(api_server) == uploads_before + 1
    assert lock(repo)["remote"][api_server.url]["uploads"][sha] == file_id

    # A changed spec is a new job; the other one is left alone.
    repo.write("promo.yaml", "entry: compose\ntopic: Launch day\ntone: calm\nplatforms: [tiktok]\n")
    fourth = repo.afx("push", "promo", environ=env)
    assert fourth.code == 0, fourth.text
    assert total_jobs(api_server, key) == 3
    assert lock(repo)["jobs"]["promo"]["remote"][api_server.url]["jobId"] != jobs["promo"]["jobId"]


def test_verify_checks_what_a_push_downloaded(api_server, repo, clip):
    two_jobs(repo, clip)
    assert repo.afx("verify").code == 1  # nothing built or pushed yet
    assert repo.afx("push", environ=api_server.env(api_server.new_key())).code == 0
    files = lock(repo)["jobs"]["promo"]["remote"][api_server.url]["files"]
    assert set(files) == {"video.mp4", "thumb.jpg", "result.json"}
    assert files["video.mp4"] == hashlib.sha256((repo.root / "out" / "promo" / "video.mp4").read_bytes()).hexdigest()
    r = repo.afx("verify", "--json")
    assert r.code == 0, r.text
    assert json.loads(r.out) == {"ok": True, "checked": 6, "problems": []}
    (repo.root / "out" / "promo" / "thumb.jpg").write_bytes(b"not the thumbnail")
    repo.write("weekly.yaml", "entry: upload\nfile: media/clip.mp4\ntopic: Clip of the month\nplatforms: [youtube]\n")
    r = repo.afx("verify")
    assert r.code == 1
    assert "out/promo/thumb.jpg: content differs from afx.lock" in r.out
    assert "weekly: spec changed since the last push" in r.out


def test_push_makes_a_recording_the_api_does_not_take_into_one_it_does(api_server, repo, tmp_path):
    # The API's upload takes MP4/MOV (afx serve's too): an OBS MKV is remuxed first (issue 12).
    from tests.mediafix import ff

    plain = plain_clip(tmp_path / "p.mp4", seconds=1, size="160x120", audio=False)
    ff("-i", str(plain), "-c", "copy", str(repo.root / "obs.mkv"))
    (repo.root / "media").mkdir(exist_ok=True)
    (repo.root / "obs.mkv").rename(repo.root / "media" / "obs.mkv")
    repo.write("vod.yaml", "entry: upload\nfile: media/obs.mkv\ntopic: From OBS\nplatforms: [youtube]\n")
    r = repo.afx("push", environ=api_server.env(api_server.new_key()))
    assert r.code == 0, r.text
    assert "media/obs.mkv: remuxed into MP4" in r.text
    assert (repo.root / "out" / "vod" / "video.mp4").is_file()
    assert (repo.root / "media" / "obs.mkv").read_bytes()[:4] == b"\x1aE\xdf\xa3", "the original is untouched"


def test_afx_run_and_verify_keep_the_remote_blocks(api_server, repo, clip, monkeypatch):
    two_jobs(repo, clip)
    assert repo.afx("push", environ=api_server.env(api_server.new_key())).code == 0
    pushed = lock(repo)
    assert pushed["remote"][api_server.url]["uploads"]
    monkeypatch.setenv("AFX_PIPELINE", "afx.testing.pipeline:PIPELINE")
    monkeypatch.setenv("AFX_CACHE_DIR", str(repo.root.parent / "cache"))
    r = repo.afx("run")
    assert r.code == 0, r.text
    after = lock(repo)
    assert after["jobs"]["promo"]["remote"] == pushed["jobs"]["promo"]["remote"]
    assert after["remote"] == pushed["remote"]
    assert set(after["jobs"]["promo"]) == set(after["jobs"]["weekly"]) == {"spec", "stages", "files", "remote"}
    assert repo.afx("verify").code == 0
    assert repo.afx("run").code == 0 and lock(repo) == after  # a no-op run writes nothing


def test_push_sends_a_job_with_clips_to_afx_serve_as_it_is_and_brings_its_clips_home(api_server, repo):
    repo.write("vod.yaml", "entry: fetch\nurl: https://example.com/vod.mp4\ntopic: Stream\nplatforms: [tiktok]\n"
                           "clips: {count: 3, min: 15, max: 30}\n")
    key = api_server.new_key(credits=10)
    env = api_server.env(key)
    r = repo.afx("push", "--json", environ=env)
    assert r.code == 0, r.text
    jobs = {j["job"]: j for j in json.loads(r.out)["jobs"]}
    assert list(jobs) == ["vod", "vod-01", "vod-02", "vod-03"]
    parent = jobs["vod"]["jobId"]
    assert [jobs[f"vod-0{n}"]["jobId"] for n in (1, 2, 3)] == [f"{parent}-0{n}" for n in (1, 2, 3)]
    assert jobs["vod"]["status"] == "complete" and {jobs[f"vod-0{n}"]["status"] for n in (1, 2, 3)} == {"published"}
    assert "vod: submitted as" in r.err and "(3 credits, balance 7)" in r.err and "its clip jobs:" in r.err
    assert not (repo.root / ".afx" / "push" / "clips").exists(), "the server made the clips, not push"
    result = json.loads((repo.root / "out" / "vod" / "result.json").read_text())
    assert [c["jobId"] for c in result["clips"]] == [jobs[f"vod-0{n}"]["jobId"] for n in (1, 2, 3)]
    for n in (1, 2, 3):
        folder = repo.root / "out" / f"vod-0{n}"
        assert (folder / "video.mp4").read_bytes().startswith(b"VIDEO short")
        assert json.loads((folder / "result.json").read_text())["jobId"] == f"{parent}-0{n}"
    block = lock(repo)["jobs"]["vod-02"]["remote"][api_server.url]
    assert block["jobId"] == f"{parent}-02" and set(block["files"]) == {"video.mp4", "thumb.jpg", "result.json"}
    assert total_jobs(api_server, key) == 4

    again = repo.afx("push", "--json", environ=env)
    assert again.code == 0, again.text
    assert [(j["job"], j["jobId"], j["new"]) for j in json.loads(again.out)["jobs"]] == [
        (name, job["jobId"], False) for name, job in jobs.items()]
    # (the job's own result lists its clips' statuses: the first push fetched it before they were done)
    assert all(f"out/vod-0{n}/ is up to date" in again.err for n in (1, 2, 3)) and total_jobs(api_server, key) == 4
    third = repo.afx("push", environ=env)
    assert third.code == 0 and third.err.count("is up to date") == 4, third.text

    shown = repo.afx("remote", "show", "vod", environ=env)
    assert shown.code == 0, shown.text
    assert re.search(rf"clip 2 +{parent}-02  published  \d+(\.\d+)?-\d+(\.\d+)? s", shown.out), shown.out
    shown = repo.afx("remote", "show", "vod-02", environ=env)
    assert re.search(rf"clip of +{parent} \(rank 2\)", shown.out) and re.search(r"cut +\d", shown.out), shown.out
    with api_server.client(key) as api:
        assert api.get("/account").json()["credits"]["balance"] == 7


def test_no_wait_then_wait(api_server, repo):
    repo.write("promo.yaml", "entry: compose\ntopic: Later\nplatforms: [tiktok]\n")
    env = api_server.env(api_server.new_key())
    r = repo.afx("push", "--no-wait", "--json", environ=env)
    assert r.code == 0, r.text
    job = json.loads(r.out)["jobs"][0]
    assert job["jobId"].startswith("job_") and job["new"] is True and "files" not in job
    assert not (repo.root / "out").exists()
    assert lock(repo)["jobs"]["promo"]["remote"][api_server.url]["jobId"] == job["jobId"]
    r = repo.afx("push", environ=env)
    assert r.code == 0, r.text
    assert f"promo: {job['jobId']}:" in r.err
    assert json.loads((repo.root / "out" / "promo" / "result.json").read_text())["jobId"] == job["jobId"]


def test_api_and_usage_errors(api_server, repo, monkeypatch):
    repo.write("promo.yaml", "entry: compose\ntopic: Errors\nplatforms: [tiktok]\n")
    bad = repo.afx("push", environ={"AFX_API_URL": api_server.url, "AFX_API_KEY": "af_live_nope"})
    assert bad.code == 4 and "/v1/account: 401 unauthorized: missing or invalid API key" in bad.err
    assert "af_live_nope" not in bad.text

    broke = api_server.new_key(credits=0)
    r = repo.afx("push", "--json", environ=api_server.env(broke))
    assert r.code == 4
    job = json.loads(r.out)["jobs"][0]
    assert job["status"] == "error" and "402 insufficient_credits: this job costs 1 credit(s); the balance is 0" \
        in job["error"]
    assert not (repo.root / "afx.lock").exists()  # nothing to remember

    assert repo.afx("push", environ={"AFX_API_KEY": "k"}).code == 2  # no URL
    assert "no API key" in repo.afx("push", environ={"AFX_API_URL": api_server.url}).err
    assert repo.afx("push", environ={"AFX_API_URL": "ftp://x", "AFX_API_KEY": "k"}).code == 2
    assert repo.afx("push", "nope", environ=api_server.env()).code == 2
    repo.write("broken.yaml", "entry: compose\ndurationMins: 500\n")
    assert repo.afx("push", environ=api_server.env()).code == 2

    # Nothing listening: a clear message naming the URL (retries without the waiting).
    monkeypatch.setattr(afx.client, "pause", lambda s: None)
    from tests.server.serverproc import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    r = repo.afx("remote", "account", environ={"AFX_API_URL": dead, "AFX_API_KEY": "k"})
    assert r.code == 4 and f"GET /v1/account: cannot connect to {dead}: connection refused" in r.err


def test_client_errors_carry_the_servers_fields(api_server):
    with Client(api_server.origin, api_server.key) as client:
        with pytest.raises(ApiError) as caught:
            client.submit_job({"entry": "compose", "topic": "x", "durationMins": 200})
        err = caught.value
        assert str(err) == "POST /v1/jobs: 422 invalid_request: durationMins: 200 is greater than the maximum of 120"
        assert err.status == 422 and err.code == "invalid_request" and err.exit_status == 4
        assert err.field("durationMins")["message"] == "200 is greater than the maximum of 120"
        with pytest.raises(ApiError, match=r"GET /v1/jobs/job_nope: 404 not_found"):
            client.get_job("job_nope")
        with pytest.raises(ApiError, match="415 unsupported_media_type"):
            client.upload(Path(__file__))
        assert client.list_templates() == {"templates": []}
        tpl = client.create_template({"name": "Weekly", "tone": "hype"})
        assert client.delete_template(tpl["id"]) == {"id": tpl["id"], "deleted": True}
        assert api_server.key not in repr(client)


def test_remote_commands(api_server, repo):
    repo.write("promo.yaml", "entry: compose\ntopic: Launch day\nplatforms: [tiktok]\n")
    repo.write("review.yaml", "entry: compose\ntopic: Needs review\nplatforms: [tiktok]\nstaging: true\n")
    env = api_server.env(api_server.new_key(credits=10))
    pushed = json.loads(repo.afx("push", "--json", environ=env).out)
    ids = {j["job"]: j["jobId"] for j in pushed["jobs"]}
    assert {j["job"]: j["status"] for j in pushed["jobs"]} == {"promo": "published", "review": "complete"}

    r = repo.afx("remote", "jobs", environ=env)
    assert r.code == 0 and "2 of 2 jobs" in r.err
    lines = {line.split()[0]: line for line in r.out.splitlines()}
    assert "published" in lines[ids["promo"]] and "promo" in lines[ids["promo"]]
    assert json.loads(repo.afx("remote", "jobs", "--status", "complete", "--json", environ=env).out)["total"] == 1

    r = repo.afx("remote", "show", "promo", environ=env)
    assert r.code == 0 and re.search(rf"^job +{ids['promo']} \(promo\)$", r.out, re.M)
    assert re.search(r"^status +published$", r.out, re.M) and re.search(r"^publish tiktok +published", r.out, re.M)
    assert json.loads(repo.afx("remote", "show", ids["review"], "--json", environ=env).out)["staging"] is True

    r = repo.afx("remote", "account", environ=env)
    assert r.code == 0 and "credits  8 left (10 included, 2 used)" in r.out
    assert json.loads(repo.afx("remote", "account", "--json", environ=env).out)["credits"]["balance"] == 8
    r = repo.afx("remote", "account", "--api-url", api_server.origin + "/", environ={"AFX_API_KEY": env["AFX_API_KEY"]})
    assert r.code == 0 and f"on {api_server.url}" in r.out

    r = repo.afx("remote", "schedule", "review", "--at", "2030-01-02T03:04:05+01:00", environ=env)
    assert r.code == 0 and r.out.strip() == f"{ids['review']} (review): publishes at 2030-01-02T02:04:05Z"
    assert "unscheduled" in repo.afx("remote", "schedule", "review", "--clear", environ=env).out
    assert repo.afx("remote", "schedule", "review", environ=env).code == 2
    assert repo.afx("remote", "schedule", "review", "--at", "tomorrow", environ=env).code == 2

    r = repo.afx("remote", "cancel", "promo", environ=env)
    assert r.code == 4 and f"DELETE /v1/jobs/{ids['promo']}: 409 not_cancellable" in r.err
    assert repo.afx("remote", "show", "job_missing", environ=env).code == 4

    r = repo.afx("remote", "approve", "review", environ=env)
    assert r.code == 0 and "approved for publishing" in r.out
    again = repo.afx("push", "review", "--json", environ=env)  # waits for the publish it released
    assert again.code == 0, again.text
    job = json.loads(again.out)["jobs"][0]
    assert (job["jobId"], job["status"], job["new"]) == (ids["review"], "published", False)


def test_a_full_server_gets_the_jobs_in_turn_and_failures_exit_3(api_servers, repo, monkeypatch):
    # One active job at a time, and every render fails (after a second): b waits for a's slot.
    server = api_servers("--max-active", "1", env={"AFX_TEST_FAIL": "render", "AFX_TEST_SLEEP": "render:1"})
    repo.write("a.yaml", "entry: compose\ntopic: First\n")
    repo.write("b.yaml", "entry: compose\ntopic: Second\n")
    listings = []
    monkeypatch.setattr(Client, "list_jobs", lambda self, *a, **kw: listings.append(1) or
                        Client._json(self, "GET", "/jobs", params={"limit": 100}))
    # poll with GET /jobs, as a big push does
    r = push_with(repo, server.env(), json_out=True, polling=Polling(list_at=1))
    assert r.code == 3, r.text
    assert listings
    jobs = json.loads(r.out)["jobs"]
    assert [j["status"] for j in jobs] == ["failed", "failed"]
    # b's POST got 429 too_many_active_jobs with Retry-After, and went through once a's slot was free
    with server.client() as api:
        views = {j["jobId"]: j for j in api.get("/jobs").json()["jobs"]}
    assert views[jobs[1]["jobId"]]["createdAt"] >= views[jobs[0]["jobId"]]["updatedAt"]
    assert "a: failed: render: render failed on purpose" in r.err
    assert total_jobs(server, server.key) == 2
    # Without afx.lock: each job's key replays the job it made.
    (repo.root / "afx.lock").unlink()
    r = repo.afx("push", "--no-wait", "--json", environ=server.env())
    assert r.code == 0, r.text
    assert [j["jobId"] for j in json.loads(r.out)["jobs"]] == [j["jobId"] for j in jobs]
    assert total_jobs(server, server.key) == 2


def test_timeout_interrupt_and_cancel(api_servers, repo):
    slow = api_servers("--workers", "1", env={"AFX_TEST_SLEEP": "render:30"})
    env = slow.env()
    repo.write("long.yaml", "entry: compose\ntopic: Takes a while\n")
    r = repo.afx("push", "--timeout", "0.5", environ=env)
    assert r.code == 4 and "timed out after 0.5s waiting for long" in r.err
    job_id = lock(repo)["jobs"]["long"]["remote"][slow.url]["jobId"]

    class Interrupted(times.SystemClock):  # Ctrl-C while the push waits between polls
        def sleep(self, seconds: float) -> None:
            raise KeyboardInterrupt

    r = push_with(repo, env, clock=Interrupted())
    assert r.code == 130 and "1 job(s) keep running" in r.err
    assert lock(repo)["jobs"]["long"]["remote"][slow.url]["jobId"] == job_id

    r = repo.afx("remote", "cancel", "long", environ=env)
    assert r.code == 0 and r.out.startswith(f"{job_id} (long): cancelled")
    assert "cancelled" in repo.afx("remote", "show", "long", environ=env).out
    # Pushed again, a cancelled job is submitted anew.
    r = repo.afx("push", "--no-wait", "--json", environ=env)
    new = json.loads(r.out)["jobs"][0]
    assert r.code == 0 and new["jobId"] != job_id and new["new"] is True
    assert repo.afx("remote", "cancel", new["jobId"], environ=env).code == 0


# -- afx.client alone (a mock transport) ---------------------------------------------------
def mock(handler) -> Client:  # type: ignore[no-untyped-def]
    return Client("https://api.example.com/v1/", "af_live_secret", transport=httpx.MockTransport(handler),
                  sleep=lambda s: waits.append(s))


waits: list[float] = []


def test_base_url_is_normalised():
    for url in ("https://h.io", "https://h.io/", "https://h.io/v1", "https://h.io/v1/", "HTTPS://H.io/v1"):
        assert api_root(url) == "https://h.io/v1"
    assert api_root("http://127.0.0.1:8000/api/v1") == "http://127.0.0.1:8000/api/v1"
    assert api_root("http://[::1]:8000") == "http://[::1]:8000/v1" and api_root("https://h.io:443") == "https://h.io/v1"
    for bad in ("ftp://h.io", "h.io", "https://user:pw@h.io", "https://h.io/?x=1", ""):
        with pytest.raises(UsageError):
            api_root(bad)


def test_retries_only_what_is_safe_to_repeat():
    calls: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.headers.get("idempotency-key")))
        assert request.headers["authorization"] == "Bearer af_live_secret"
        if len(calls) % 2:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "busy"}})
        return httpx.Response(200, json={"ok": True})

    waits.clear()
    with mock(handler) as client:
        assert client.get_job("job_1") == {"ok": True}
        assert len(calls) == 2 and len(waits) == 1
        calls.clear()
        with pytest.raises(ApiError, match="POST /v1/jobs: 503 unavailable: busy"):
            client.submit_job({"entry": "compose"})  # no key: it might have been made
        assert len(calls) == 1
        calls.clear()
        assert client.submit_job({"entry": "compose"}, idempotency_key="k1") == {"ok": True}
        assert calls == [("POST", "k1"), ("POST", "k1")]


def test_429_waits_as_told_capped_and_gives_up():
    answers = [httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"code": "rate_limited",
                                                                                 "message": "slow down"}}),
               httpx.Response(429, headers={"Retry-After": "5000"}, json={"error": {"code": "rate_limited",
                                                                                    "message": "slow down"}}),
               httpx.Response(201, json={"jobId": "job_1"})]
    waits.clear()
    with mock(lambda request: answers.pop(0)) as client:
        assert client.submit_job({"entry": "compose"}) == {"jobId": "job_1"}
    assert waits == [7.0, 60.0]
    waits.clear()
    with mock(lambda request: httpx.Response(429, json={"error": {"code": "too_many_active_jobs",
                                                                  "message": "10 jobs"}})) as client:
        with pytest.raises(ApiError) as caught:
            client.submit_job({"entry": "compose"}, idempotency_key="k")
    assert caught.value.code == "too_many_active_jobs" and waits == []  # no Retry-After: not retried


def test_download_is_atomic_and_keeps_the_key_at_home(tmp_path):
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("authorization")
        if request.url.path.endswith("/broken"):
            return httpx.Response(200, headers={"content-length": "100"}, content=b"short")
        return httpx.Response(200, content=b"DATA" * 1000)

    with mock(handler) as client:
        assert client.download("https://api.example.com/v1/jobs/j/files/video.mp4", tmp_path / "v.mp4").read_bytes() \
            == b"DATA" * 1000
        client.download("https://cdn.example.net/v.mp4", tmp_path / "cdn.mp4")
        (tmp_path / "keep.mp4").write_bytes(b"old")
        with pytest.raises(ApiError, match="GET /broken"):
            client.download("/broken", tmp_path / "keep.mp4")
    assert seen == {"api.example.com": "Bearer af_live_secret", "cdn.example.net": None}
    assert (tmp_path / "keep.mp4").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdn.mp4", "keep.mp4", "v.mp4"]
