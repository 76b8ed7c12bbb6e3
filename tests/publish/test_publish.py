"""Publishing: modes, the ledger, outbox, webhook, and the platform APIs (against local stand-ins)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from afx.publish.ledger import Ledger
from afx.publish.location import locate
from afx.testing.platforms import Platforms
from tests.conftest import SpecRepo

AFX = str(Path(sys.executable).parent / "afx")
PIPELINE = "afx.testing.pipeline:PUBLISHING"


class PubRepo(SpecRepo):
    def job(self, name: str, body: str) -> None:
        self.write(f"{name}.yaml", f"entry: compose\ntopic: {name.title()} highlights\n{body}")

    def ledger(self) -> Ledger:
        return Ledger(locate(self.root))  # the file, or AFX_LEDGER_URL's database (see conftest.py)

    def ledger_rows(self, name: str) -> dict[str, dict]:
        with self.ledger() as ledger:
            return {r["platform"]: r for r in ledger.rows(name)}

    def published_events(self, name: str) -> int:
        with self.ledger() as ledger:
            return sum(1 for e in ledger.events(name) if e["kind"] == "published")

    def result(self, name: str) -> dict:
        return json.loads((self.root / "out" / name / "result.json").read_text())

    def process(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen([AFX, *args], cwd=self.root, env={**os.environ, "AFX_PIPELINE": PIPELINE,
                                                                   "NO_COLOR": "1", **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.fixture
def prepo(tmp_path, monkeypatch, ledger_backend) -> PubRepo:
    monkeypatch.setenv("AFX_PIPELINE", PIPELINE)
    monkeypatch.setenv("AFX_PUBLISH_POLL", "0.05")
    return PubRepo(tmp_path / "repo")


def iso(offset: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_immediate_jobs_go_to_the_outbox_once(prepo):
    prepo.job("a", "platforms: [tiktok, youtube]\n")
    r = prepo.afx("run")
    assert r.code == 0, r.text
    folder = prepo.root / "outbox" / "tiktok" / "a"
    assert sorted(p.name for p in folder.iterdir()) == ["MANIFEST.json", "caption.txt", "copy.json", "thumb.jpg",
                                                       "title.txt", "video.mp4"]
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert manifest["platform"] == "tiktok" and manifest["limits"]["caption"] == 2200
    results = {x["platform"]: x for x in prepo.result("a")["publishResults"]}
    assert results["youtube"]["status"] == "published" and results["youtube"]["remoteId"] == "outbox/youtube/a"
    # a rerun (even a forced one) never publishes again
    stamp = (folder / "MANIFEST.json").stat().st_mtime_ns
    assert prepo.afx("run", "--force", "publish").code == 0
    assert (folder / "MANIFEST.json").stat().st_mtime_ns == stamp
    assert prepo.published_events("a") == 2  # one per platform


def test_afx_lock_remembers_publishes_for_a_clone_without_the_ledger(prepo, tmp_path):
    prepo.job("a", "platforms: [tiktok, youtube]\n")
    prepo.job("b", "platforms: [tiktok]\npublishMode: manual\n")
    assert prepo.afx("run").code == 0
    lock = json.loads((prepo.root / "afx.lock").read_text())
    published = lock["jobs"]["a"]["published"]
    assert set(published) == {"tiktok", "youtube"} and published["tiktok"]["remoteId"] == "outbox/tiktok/a"
    assert "published" not in lock["jobs"]["b"]  # manual: not published yet
    # A CI runner or a new machine: the repo from git (specs and afx.lock), no .afx/, no outbox.
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("afx.yaml", "a.yaml", "b.yaml", "afx.lock"):
        (clone / name).write_bytes((prepo.root / name).read_bytes())
    again = PubRepo(clone)
    r = again.afx("run")
    assert r.code == 0, r.text
    assert not (clone / "outbox" / "tiktok" / "a").exists() and not (clone / "outbox" / "youtube").exists()
    results = {x["platform"]: x for x in again.result("a")["publishResults"]}
    assert results["tiktok"]["status"] == "published" and results["tiktok"]["remoteId"] == "outbox/tiktok/a"
    assert again.published_events("a") == 0
    with again.ledger() as ledger:
        assert [e["kind"] for e in ledger.events("a")].count("adopted") == 2
    assert json.loads((clone / "afx.lock").read_text())["jobs"]["a"]["published"] == published
    # what was never published still publishes when asked
    assert again.afx("publish", "b").code == 0
    assert (clone / "outbox" / "tiktok" / "b" / "video.mp4").exists()
    assert "tiktok" in json.loads((clone / "afx.lock").read_text())["jobs"]["b"]["published"]


def clone_of(repo: PubRepo, to: Path, *names: str) -> PubRepo:
    """The repo as git has it: its files, without .afx/ (ledger, cache) and without out/."""
    to.mkdir()
    for name in ("afx.yaml", "afx.lock", *names):
        if (repo.root / name).exists():
            (to / name).write_bytes((repo.root / name).read_bytes())
    return PubRepo(to)


def test_a_publish_is_in_afx_lock_even_when_another_platform_fails(prepo, tmp_path, monkeypatch):
    monkeypatch.setenv("AFX_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setattr("afx.publish.publishers.webhook.BACKOFF", 0.01)
    prepo.write("afx.yaml", "version: 1\npublish: {youtube: webhook, webhook: {url: 'http://127.0.0.1:9/hook', "
                            "attempts: 1, timeout: 0.5}}\n")
    prepo.job("a", "platforms: [tiktok, youtube]\n")
    r = prepo.afx("run")
    assert r.code == 3 and "youtube" in r.err
    lock = json.loads((prepo.root / "afx.lock").read_text())
    assert set(lock["jobs"]["a"]["published"]) == {"tiktok"}  # at once, though the job failed
    # The platform is dropped from the spec, then put back: the record stays.
    prepo.job("a", "platforms: [youtube]\n")
    prepo.write("afx.yaml", "version: 1\n")
    assert prepo.afx("run").code == 0
    prepo.job("a", "platforms: [tiktok, youtube]\n")
    assert set(json.loads((prepo.root / "afx.lock").read_text())["jobs"]["a"]["published"]) == {"tiktok", "youtube"}
    again = clone_of(prepo, tmp_path / "clone", "a.yaml")
    assert again.afx("run").code == 0
    assert not (again.root / "outbox").exists() and again.published_events("a") == 0


def test_an_unreadable_afx_lock_stops_publishing(prepo, tmp_path):
    prepo.job("a", "platforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    good = (prepo.root / "afx.lock").read_text()
    again = clone_of(prepo, tmp_path / "clone", "a.yaml")
    (again.root / "afx.lock").write_text("<<<<<<< HEAD\n" + good + "=======\n{}\n>>>>>>> theirs\n")
    r = again.afx("run")
    assert r.code != 0 and "afx.lock" in r.err
    assert not (again.root / "outbox").exists() and again.published_events("a") == 0


def test_hand_edited_publish_records_are_cleaned_before_the_ledger_takes_them(prepo, tmp_path):
    prepo.job("a", "platforms: [tiktok, youtube]\n")
    assert prepo.afx("run").code == 0
    lock = json.loads((prepo.root / "afx.lock").read_text())
    lock["jobs"]["a"]["published"]["tiktok"].update(publishedAt="0001-01-01T00:00:00+14:00", url="javascript:x()")
    lock["jobs"]["a"]["published"]["youtube"] = {"remoteId": 7, "url": None}  # no usable record: publishes
    again = clone_of(prepo, tmp_path / "clone", "a.yaml")
    (again.root / "afx.lock").write_text(json.dumps(lock))
    r = again.afx("run")
    assert r.code == 0, r.text
    tiktok = again.ledger_rows("a")["tiktok"]
    assert tiktok["state"] == "published" and tiktok["url"] is None and tiktok["remote_id"] == "outbox/tiktok/a"
    assert 946684800 < tiktok["published_at"] <= time.time() + 1
    assert again.published_events("a") == 1 and (again.root / "outbox" / "youtube" / "a").exists()
    # and later runs keep working with what is now in afx.lock
    assert again.afx("run", "--force", "publish").code == 0


def test_jobs_with_equal_inputs_each_publish(prepo):
    # Every other stage is shared by content; a publish belongs to its job.
    prepo.write("a.yaml", "entry: compose\ntopic: Same\nplatforms: [tiktok]\n")
    prepo.write("b.yaml", "entry: compose\ntopic: Same\nplatforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    for name in ("a", "b"):
        assert (prepo.root / "outbox" / "tiktok" / name / "video.mp4").exists()
        assert prepo.result(name)["publishResults"][0]["remoteId"] == f"outbox/tiktok/{name}"
        assert prepo.published_events(name) == 1


def lock_of(repo: PubRepo) -> dict:
    return json.loads((repo.root / "afx.lock").read_text())


def test_a_renamed_job_does_not_publish_again(prepo, tmp_path):
    prepo.job("a", "platforms: [tiktok, youtube]\n")
    assert prepo.afx("run").code == 0
    record = lock_of(prepo)["jobs"]["a"]["published"]["tiktok"]
    assert record["video"] == lock_of(prepo)["jobs"]["a"]["files"]["video.mp4"]  # the sha256 of what went out
    assert re.fullmatch(r"[0-9a-f]{64}", record["content"])  # and what it was made from
    (prepo.root / "a.yaml").rename(prepo.root / "b.yaml")
    r = prepo.afx("run")
    assert r.code == 0, r.text
    assert "b: tiktok: this was already published as job 'a' (outbox/tiktok/a), since renamed or removed" in r.err
    assert sorted(p.name for p in (prepo.root / "outbox" / "tiktok").iterdir()) == ["a"]
    assert prepo.published_events("b") == 0
    results = {x["platform"]: x for x in prepo.result("b")["publishResults"]}
    assert results["tiktok"]["status"] == "published" and results["tiktok"]["remoteId"] == "outbox/tiktok/a"
    lock = lock_of(prepo)
    # the old name left `jobs`; where it was published is in `retired`
    assert set(lock["jobs"]) == {"b"} and lock["jobs"]["b"]["published"]["youtube"]["content"] == record["content"]
    assert {(e["job"], e["platform"]) for e in lock["retired"]} == {("a", "tiktok"), ("a", "youtube")}
    assert not prepo.ledger_rows("a")  # retired in the ledger too: the name is free
    # A clone (no ledger, and a re-render that is not bit-for-bit the same) where the job was
    # renamed once more: afx.lock alone knows.
    again = clone_of(prepo, tmp_path / "clone")
    (again.root / "c.yaml").write_bytes((prepo.root / "b.yaml").read_bytes())
    r = again.afx("run", environ={"AFX_TEST_VARY": "1"})
    assert r.code == 0, r.text
    assert not (again.root / "outbox").exists()
    assert again.result("c")["publishResults"][0]["remoteId"] == "outbox/tiktok/a"
    # A job renamed and changed is another video: that one publishes.
    (again.root / "c.yaml").unlink()
    again.write("d.yaml", (prepo.root / "b.yaml").read_text().replace("highlights", "recap"))
    assert again.afx("run").code == 0
    assert (again.root / "outbox" / "tiktok" / "d" / "video.mp4").exists()


def test_a_new_job_with_a_removed_jobs_name_publishes(prepo, tmp_path):
    prepo.job("a", "platforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    (prepo.root / "a.yaml").unlink()
    assert prepo.afx("run").code == 0  # a full run: `a` is retired
    prepo.write("a.yaml", "entry: compose\ntopic: Something else entirely\nplatforms: [tiktok]\n")
    clone = clone_of(prepo, tmp_path / "clone", "a.yaml")
    for repo, posts in ((prepo, 2), (clone, 1)):  # (the ledger's events keep the old job's post)
        r = repo.afx("run")
        assert r.code == 0 and "already published" not in r.err, r.text
        assert repo.published_events("a") == posts and repo.ledger_rows("a")["tiktok"]["state"] == "published"
        manifest = json.loads((repo.root / "outbox" / "tiktok" / "a" / "MANIFEST.json").read_text())
        assert manifest["video_sha256"] == lock_of(repo)["jobs"]["a"]["files"]["video.mp4"]


def test_a_rename_and_the_old_name_reused_in_one_change(prepo, tmp_path):
    """b takes a's post, and the new a is posted once: at once when its run comes first, or
    as a's new version (`afx publish a --again`) when b took the post first. Nothing twice."""
    prepo.job("a", "platforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    (prepo.root / "a.yaml").rename(prepo.root / "b.yaml")
    prepo.write("a.yaml", "entry: compose\ntopic: A new story\nplatforms: [tiktok]\n")
    clone = clone_of(prepo, tmp_path / "clone", "a.yaml", "b.yaml")
    for repo in (prepo, clone):
        r = repo.afx("run", "-j", "2", environ={"AFX_TEST_VARY": "1"})
        assert r.code == 0, r.text
        assert repo.result("b")["publishResults"][0]["remoteId"] == "outbox/tiktok/a"
        assert repo.afx("publish", "a", "--again").code == 0
        assert json.loads(repo.afx("jobs", "--json").out)["jobs"][0]["olderPosts"] == []
        assert repo.ledger_rows("a")["tiktok"]["content"] == lock_of(repo)["jobs"]["a"]["published"]["tiktok"][
            "content"] != lock_of(repo)["jobs"]["b"]["published"]["tiktok"]["content"]
    assert prepo.published_events("a") == 2 and prepo.published_events("b") == 0
    assert clone.published_events("a") == 1 and clone.published_events("b") == 0


def test_a_clone_that_missed_a_removal_publishes_the_new_job_of_that_name(prepo, tmp_path):
    prepo.job("a", "platforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    stale = clone_of(prepo, tmp_path / "stale", "a.yaml")
    assert stale.afx("run").code == 0  # it knows a as published (adopted from afx.lock)
    (prepo.root / "a.yaml").unlink()
    assert prepo.afx("run").code == 0  # removed: retired
    prepo.write("a.yaml", "entry: compose\ntopic: A new story\nplatforms: [tiktok]\n")
    for name in ("a.yaml", "afx.lock"):  # the stale clone pulls
        (stale.root / name).write_bytes((prepo.root / name).read_bytes())
    r = stale.afx("run")
    assert r.code == 0, r.text
    assert (stale.root / "outbox" / "tiktok" / "a" / "video.mp4").exists()
    assert lock_of(stale)["jobs"]["a"]["published"]["tiktok"]["remoteId"] == "outbox/tiktok/a"
    assert lock_of(stale)["jobs"]["a"]["published"]["tiktok"]["content"] != lock_of(stale)["retired"][0]["content"]


def test_edits_after_a_copy_or_a_reused_name_do_not_post_again(prepo):
    prepo.job("a", "platforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    prepo.write("b.yaml", (prepo.root / "a.yaml").read_text())  # a copy: both publish
    assert prepo.afx("run").code == 0 and prepo.published_events("b") == 1
    prepo.write("b.yaml", (prepo.root / "a.yaml").read_text() + "tone: calm\n")
    prepo.write("a.yaml", (prepo.root / "a.yaml").read_text() + "tone: hype\n")
    assert prepo.afx("run").code == 0 and prepo.afx("run", "--force", "publish").code == 0
    assert prepo.published_events("a") == prepo.published_events("b") == 1  # edits wait for --again
    # a removed, a new a, then edited: one post for it, until --again
    (prepo.root / "a.yaml").unlink()
    assert prepo.afx("run").code == 0
    prepo.write("a.yaml", "entry: compose\ntopic: Fresh\nplatforms: [tiktok]\n")
    assert prepo.afx("run").code == 0 and prepo.published_events("a") == 2
    prepo.write("a.yaml", "entry: compose\ntopic: Fresh, edited\nplatforms: [tiktok]\n")
    assert prepo.afx("run").code == 0 and prepo.afx("run", "--force", "publish").code == 0
    assert prepo.published_events("a") == 2


def test_two_jobs_swapping_names_post_nothing(prepo, tmp_path):
    prepo.job("a", "platforms: [tiktok]\n")
    prepo.job("b", "platforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    a, b = (prepo.root / "a.yaml").read_bytes(), (prepo.root / "b.yaml").read_bytes()
    (prepo.root / "a.yaml").write_bytes(b)
    (prepo.root / "b.yaml").write_bytes(a)
    clone = clone_of(prepo, tmp_path / "clone", "a.yaml", "b.yaml")
    for repo in (prepo, clone):
        assert repo.afx("run", environ={"AFX_TEST_VARY": "1"}).code == 0
        assert {x: repo.result(x)["publishResults"][0]["remoteId"] for x in ("a", "b")} == {
            "a": "outbox/tiktok/b", "b": "outbox/tiktok/a"}
    assert prepo.published_events("a") == prepo.published_events("b") == 1
    assert not (clone.root / "outbox").exists()


def test_moving_a_spec_into_a_folder_is_not_a_new_post(prepo):
    prepo.write("media/clip.mp4", b"\0\0\0\x18ftypisom" + b"\0" * 512)
    prepo.write("u.yaml", "entry: upload\nfile: media/clip.mp4\ntopic: Clip\nplatforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    (prepo.root / "u.yaml").unlink()
    prepo.write("weekly/u.yaml", "entry: upload\nfile: ../media/clip.mp4\ntopic: Clip\nplatforms: [tiktok]\n")
    r = prepo.afx("run")
    assert r.code == 0, r.text
    names = sorted(p.name for p in (prepo.root / "outbox" / "tiktok").iterdir())
    assert len(names) == 1, (names, r.err)
    # but another file at the same path is another video
    prepo.write("media/clip.mp4", b"\0\0\0\x18ftypisom" + b"\1" * 512)
    (prepo.root / "weekly" / "u.yaml").rename(prepo.root / "weekly" / "v.yaml")
    assert prepo.afx("run").code == 0
    assert len(list((prepo.root / "outbox" / "tiktok").iterdir())) == 2


def test_a_new_job_of_a_removed_jobs_name_is_not_approved(prepo):
    prepo.job("a", "platforms: [tiktok]\nstaging: true\n")
    assert prepo.afx("run").code == 0 and prepo.afx("approve", "a").code == 0
    (prepo.root / "a.yaml").unlink()
    assert prepo.afx("run").code == 0
    prepo.write("a.yaml", "entry: compose\ntopic: Other\nplatforms: [tiktok]\nstaging: true\n")
    assert prepo.afx("run").code == 0
    assert prepo.result("a")["publishResults"][0]["status"] == "staged"


def test_renaming_one_of_two_jobs_with_the_same_content(prepo):
    prepo.write("x.yaml", "entry: compose\ntopic: Same\nplatforms: [tiktok]\n")
    prepo.write("y.yaml", "entry: compose\ntopic: Same\nplatforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    (prepo.root / "y.yaml").rename(prepo.root / "z.yaml")
    r = prepo.afx("run")
    assert r.code == 0 and "since renamed or removed" in r.err, r.text
    assert sorted(p.name for p in (prepo.root / "outbox" / "tiktok").iterdir()) == ["x", "y"]
    assert prepo.result("z")["publishResults"][0]["remoteId"] == "outbox/tiktok/y"


def test_a_parallel_run_shows_its_workers_warnings(prepo):
    prepo.job("a", "platforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    (prepo.root / "a.yaml").rename(prepo.root / "b.yaml")
    prepo.job("c", "platforms: [tiktok]\n")
    r = prepo.afx("run", "-j", "2")
    assert r.code == 0, r.text
    warnings = [line for line in r.err.splitlines() if "already published" in line]
    assert warnings == ["warning: afx.publish: b: tiktok: this was already published as job 'a' "
                        "(outbox/tiktok/a), since renamed or removed; recorded as published, not posted again"], r.err
    assert sorted(p.name for p in (prepo.root / "outbox" / "tiktok").iterdir()) == ["a", "c"]


def test_publish_again_posts_a_changed_job_once(prepo, tmp_path, ledger_backend):
    prepo.job("a", "platforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    manifest = prepo.root / "outbox" / "tiktok" / "a" / "MANIFEST.json"
    first = json.loads(manifest.read_text())["video_sha256"]
    # --again, the job unchanged: nothing to post
    r = prepo.afx("publish", "a", "--again")
    assert r.code == 0 and prepo.published_events("a") == 1 and "new version" not in r.err
    # the job changes: a run renders it, but a published job stays published
    prepo.job("a", "platforms: [tiktok]\ntone: hype\n")
    assert prepo.afx("run").code == 0 and prepo.published_events("a") == 1
    assert json.loads(manifest.read_text())["video_sha256"] == first
    jobs = prepo.afx("jobs")
    assert "tiktok: published (an older version)" in jobs.out
    assert "to post the current one: afx publish a --again" in jobs.err
    assert json.loads(prepo.afx("jobs", "--json").out)["jobs"][0]["olderPosts"] == ["tiktok"]
    stale = tmp_path / "stale-ledger.sqlite"
    if ledger_backend == "sqlite":
        stale.write_bytes((prepo.root / ".afx" / "ledger.sqlite").read_bytes())
    # --again: the new version goes out, once
    r = prepo.afx("publish", "a", "--again")
    assert r.code == 0, r.text
    assert "a: tiktok: the outbox folder gets the new version" in r.err
    second = json.loads(manifest.read_text())["video_sha256"]
    assert second != first and second == lock_of(prepo)["jobs"]["a"]["published"]["tiktok"]["video"]
    assert prepo.published_events("a") == 2
    with prepo.ledger() as ledger:
        (old,) = [json.loads(e["detail"]) for e in ledger.events("a") if e["kind"] == "superseded"]
        assert old["video"] == first
    assert prepo.afx("publish", "a", "--again").code == 0 and prepo.published_events("a") == 2
    assert prepo.afx("run").code == 0 and prepo.published_events("a") == 2
    jobs = prepo.afx("jobs")
    assert "tiktok: published" in jobs.out and "older version" not in jobs.text
    # Another machine, whose ledger still has the first post, pulls afx.lock: its --again
    # finds this version already out, and posts nothing. (A shared ledger has no stale copy.)
    if ledger_backend != "sqlite":
        return
    other = clone_of(prepo, tmp_path / "other", "a.yaml")
    (other.root / ".afx").mkdir()
    (other.root / ".afx" / "ledger.sqlite").write_bytes(stale.read_bytes())
    r = other.afx("publish", "a", "--again", environ={"AFX_TEST_VARY": "1"})
    assert r.code == 0, r.text
    assert not (other.root / "outbox").exists() and other.published_events("a") == 1
    assert other.ledger_rows("a")["tiktok"]["video_digest"] == second


def test_a_failed_publish_again_is_retried_with_the_new_version(prepo, platforms, monkeypatch):
    prepo.job("a", "platforms: [youtube]\n")
    assert prepo.afx("run").code == 0
    first = prepo.ledger_rows("a")["youtube"]["remote_id"]
    prepo.job("a", "platforms: [youtube]\ntone: calm\n")
    monkeypatch.setenv("AFX_YOUTUBE_TOKEN", "expired")
    assert prepo.afx("publish", "a", "--again").code == 3
    assert not lock_of(prepo)["jobs"]["a"]["published"]  # afx.lock cannot bring the old post back
    monkeypatch.setenv("AFX_YOUTUBE_TOKEN", "good")
    r = prepo.afx("run")
    assert r.code == 0, r.text
    row = prepo.ledger_rows("a")["youtube"]
    assert row["state"] == "published" and row["remote_id"] != first and len(platforms.state.yt_videos) == 2
    assert "older version" not in prepo.afx("jobs").text


def test_publish_again_makes_a_new_post_on_a_platform(prepo, platforms):
    prepo.job("a", "platforms: [youtube]\n")
    assert prepo.afx("run").code == 0
    before = prepo.ledger_rows("a")["youtube"]["remote_id"]
    prepo.job("a", "platforms: [youtube]\ntone: calm\n")
    r = prepo.afx("publish", "a", "--again")
    assert r.code == 0, r.text
    assert f"the earlier post (https://youtube.com/shorts/{before}) stays up" in r.err
    after = prepo.ledger_rows("a")["youtube"]["remote_id"]
    assert after != before and len(platforms.state.yt_videos) == 2
    assert prepo.result("a")["publishResults"][0]["remoteId"] == after
    assert prepo.afx("publish", "--again").code == 2  # names the jobs: it makes new posts


def test_hand_edited_content_digests_are_ignored(prepo, tmp_path):
    prepo.job("a", "platforms: [tiktok]\n")
    assert prepo.afx("run").code == 0
    lock = lock_of(prepo)
    content = lock["jobs"]["a"]["published"]["tiktok"]["content"]
    lock["jobs"]["a"]["published"]["tiktok"]["content"] = content.upper()  # not afx's: cleaned away
    (prepo.root / "afx.lock").write_text(json.dumps(lock))
    again = clone_of(prepo, tmp_path / "clone")
    (again.root / "b.yaml").write_bytes((prepo.root / "a.yaml").read_bytes())
    assert again.afx("run").code == 0
    assert (again.root / "outbox" / "tiktok" / "b" / "video.mp4").exists()  # no usable record: published


def test_an_older_ledger_gets_the_new_columns(tmp_path):
    import sqlite3

    (tmp_path / ".afx").mkdir()
    db = sqlite3.connect(tmp_path / ".afx" / "ledger.sqlite")
    db.executescript("""
        CREATE TABLE publishes (job TEXT NOT NULL, platform TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
            publisher TEXT, remote_id TEXT, url TEXT, session TEXT, video_digest TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, error TEXT, claimed_by TEXT, claimed_at REAL, updated REAL,
            published_at REAL, PRIMARY KEY (job, platform));
        CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, platform TEXT,
            time REAL NOT NULL, kind TEXT NOT NULL, detail TEXT);
        CREATE TABLE controls (job TEXT PRIMARY KEY, approved_at REAL, requested_at REAL, schedule TEXT,
            schedule_set INTEGER DEFAULT 0);
        INSERT INTO publishes (job, platform, state, remote_id) VALUES ('a', 'tiktok', 'published', 'r1');""")
    db.commit()
    db.close()
    with Ledger(tmp_path) as ledger, Ledger(tmp_path) as again:
        assert ledger.row("a", "tiktok")["content"] is None and again.row("a", "tiktok")["remote_id"] == "r1"
        ledger.republish("a")
        assert again.controls("a")["republish_at"]


def test_staging_waits_for_approve(prepo):
    prepo.job("a", "platforms: [tiktok]\nstaging: true\n")
    assert prepo.afx("run").code == 0
    assert prepo.result("a")["publishResults"][0]["status"] == "staged"
    assert not (prepo.root / "outbox").exists()
    assert prepo.afx("status", "--check").code == 0, "a staged job is up to date until approved"
    r = prepo.afx("approve", "a")
    assert r.code == 0, r.text
    assert prepo.result("a")["publishResults"][0]["status"] == "published"


def test_manual_jobs_publish_only_when_asked(prepo):
    prepo.job("a", "platforms: [instagram]\npublishMode: manual\n")
    assert prepo.afx("run").code == 0
    assert prepo.ledger_rows("a") == {}
    assert prepo.afx("publish", "--due").code == 0 and prepo.ledger_rows("a") == {}
    assert prepo.afx("publish", "a").code == 0
    assert prepo.ledger_rows("a")["instagram"]["state"] == "published"


def test_scheduled_jobs_publish_when_due_and_schedule_overrides(prepo):
    prepo.job("a", f"platforms: [youtube]\npublishMode: scheduled\nscheduledAt: '{iso(3600)}'\n")
    assert prepo.afx("run").code == 0
    assert prepo.result("a")["publishResults"][0]["status"] == "scheduled"
    r = prepo.afx("publish", "--due")
    assert r.code == 0 and "nothing is due" in r.err
    assert prepo.afx("schedule", "a", "--at", iso(-5)).code == 0
    assert prepo.afx("status", "--check").code == 1, "the schedule change makes the publish stage stale"
    assert prepo.afx("publish", "--due").code == 0
    assert prepo.ledger_rows("a")["youtube"]["state"] == "published"
    assert prepo.afx("publish", "--due").code == 0 and prepo.published_events("a") == 1


def test_schedule_clear_and_bad_times(prepo):
    prepo.job("a", f"platforms: [youtube]\npublishMode: scheduled\nscheduledAt: '{iso(-60)}'\n")
    assert prepo.afx("schedule", "a", "--clear").code == 0
    assert prepo.afx("run").code == 0
    assert prepo.result("a")["publishResults"][0]["status"] == "unscheduled"
    r = prepo.afx("schedule", "a", "--at", "tomorrow")
    assert r.code == 2 and "RFC 3339" in r.err
    assert prepo.afx("schedule", "a", "--at", "2026-12-01T09:00:00").code == 2  # no offset


def test_due_run_twice_at_once_publishes_once(prepo):
    for n in "abc":
        prepo.job(n, f"platforms: [tiktok, youtube]\npublishMode: scheduled\nscheduledAt: '{iso(-1)}'\n")
    procs = [prepo.process("publish", "--due") for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    for n in "abc":
        assert prepo.published_events(n) == 2
        assert {r["state"] for r in prepo.ledger_rows(n).values()} == {"published"}


class Hook(http.server.BaseHTTPRequestHandler):
    plan: list = []
    received: list = []

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        action = self.plan.pop(0) if self.plan else "ok"
        if action == "slow":
            time.sleep(1.5)
            return
        code = 500 if action == "500" else 200
        data = json.dumps({"id": "hook-1"}).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def hook():
    handler = type("H", (Hook,), {"plan": [], "received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def test_webhook_is_signed_and_retried_then_fails_clearly(prepo, hook, monkeypatch):
    url, handler = hook
    monkeypatch.setenv("AFX_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setattr("afx.publish.publishers.webhook.BACKOFF", 0.05)
    prepo.write("afx.yaml", f"version: 1\npublish: {{tiktok: webhook, webhook: {{url: '{url}', attempts: 2, "
                            "timeout: 0.5}}\n")
    prepo.job("a", "platforms: [tiktok]\n")
    handler.plan[:] = ["500", "slow"]
    r = prepo.afx("run")
    assert r.code == 3 and "failed 2 times" in r.err and "stays publishable" in r.err, r.err
    assert prepo.ledger_rows("a")["tiktok"]["state"] == "failed"
    headers, body = handler.received[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Afx-Signature"] == expected
    assert json.loads(body)["job"] == "a" and headers["X-Afx-Delivery"].startswith("a:tiktok:")
    handler.plan[:] = []
    assert prepo.afx("run").code == 0
    assert prepo.ledger_rows("a")["tiktok"]["state"] == "published"
    assert prepo.ledger_rows("a")["tiktok"]["remote_id"] == "hook-1"


@pytest.fixture
def platforms(prepo, monkeypatch):
    p = Platforms()
    prepo.write("afx.yaml", f"version: 1\npublish: {{tiktok: api, youtube: api, instagram: api, "
                            f"api: {{youtube: '{p.url}', tiktok: '{p.url}', instagram: '{p.url}'}}}}\n")
    for name in ("AFX_YOUTUBE_TOKEN", "AFX_TIKTOK_TOKEN", "AFX_INSTAGRAM_TOKEN"):
        monkeypatch.setenv(name, "good")
    monkeypatch.setenv("AFX_INSTAGRAM_USER_ID", "17841400000")
    monkeypatch.setenv("AFX_UPLOAD_CHUNK", str(256 * 1024))
    monkeypatch.setenv("AFX_TEST_VIDEO_BYTES", str(1_100_000))
    yield p
    p.close()


def test_the_three_platform_apis(prepo, platforms):
    prepo.job("a", "platforms: [youtube, tiktok, instagram]\n")
    r = prepo.afx("run")
    assert r.code == 0, r.text
    video = (prepo.root / "out" / "a" / "video.mp4").read_bytes()
    s = platforms.state
    assert [v["data"] for v in s.yt_videos.values()] == [video]
    assert next(iter(s.yt_videos.values()))["meta"]["snippet"]["title"] == "A highlights"
    assert len(s.yt_thumbnails) == 1
    (post,) = [p for p in s.tt_publishes.values() if p["post"]]
    assert b"".join(post["data"][k] for k in sorted(post["data"])) == video and post["count"] == 4
    (container,) = s.ig_containers.values()
    assert container["data"] == video and container["status"] == "PUBLISHED" and len(s.ig_media) == 1
    rows = prepo.ledger_rows("a")
    assert {p: r["state"] for p, r in rows.items()} == {"youtube": "published", "tiktok": "published",
                                                        "instagram": "published"}
    assert rows["youtube"]["url"].startswith("https://youtube.com/shorts/")
    assert prepo.afx("run", "--force", "publish").code == 0
    assert len(s.yt_videos) == 1 and len(s.ig_media) == 1 and len([p for p in s.tt_publishes.values()
                                                                    if p["post"]]) == 1


@pytest.mark.parametrize("platform,message", [
    ("youtube", "refused the credentials (HTTP 401): Invalid Credentials"),
    ("tiktok", "refused the credentials (HTTP 401): The access token is invalid"),
    ("instagram", "refused the credentials (HTTP 400): Error validating access token"),
])
def test_expired_credentials_are_clear_and_the_job_stays_publishable(prepo, platforms, monkeypatch, platform,
                                                                      message):
    monkeypatch.setenv(f"AFX_{platform.upper()}_TOKEN", "expired")
    prepo.job("a", f"platforms: [{platform}]\n")
    r = prepo.afx("run")
    assert r.code == 3 and message in r.err, r.err
    assert prepo.ledger_rows("a")[platform]["state"] == "failed"
    monkeypatch.setenv(f"AFX_{platform.upper()}_TOKEN", "good")
    assert prepo.afx("run").code == 0
    assert prepo.ledger_rows("a")[platform]["state"] == "published"


def test_missing_credentials_say_which_variable(prepo, platforms, monkeypatch):
    monkeypatch.delenv("AFX_TIKTOK_TOKEN")
    prepo.job("a", "platforms: [tiktok]\n")
    r = prepo.afx("run")
    assert r.code == 3 and "set AFX_TIKTOK_TOKEN" in r.err


def test_a_platform_rejecting_the_duration_names_the_limit(prepo, platforms, monkeypatch):
    platforms.state.tiktok_max_seconds = 15
    prepo.job("a", "platforms: [tiktok]\n")
    r = prepo.afx("run")
    assert r.code == 3 and "at most 15 s (max_video_post_duration_sec)" in r.err, r.err


def test_tiktok_rate_limit_is_reported(prepo, platforms):
    platforms.state.tt_inits[:] = [time.time()] * 6
    prepo.job("a", "platforms: [tiktok]\n")
    r = prepo.afx("run")
    assert r.code == 3 and "rate limited" in r.err


@pytest.mark.parametrize("platform,when", [
    ("youtube", "session"), ("youtube", "chunk"), ("youtube", "final"),
    ("tiktok", "chunk"), ("tiktok", "final"),
    ("instagram", "upload"), ("instagram", "final"),
])
def test_publish_exactly_once_under_kill_9(prepo, platforms, platform, when):
    """Kill afx at each step of an upload; the rerun resumes, and the platform gets one video."""
    prepo.job("a", f"platforms: [{platform}]\n")
    assert prepo.afx("run", "--until", "package").code == 0
    s = platforms.state
    s.delay = 0.4 if when in ("chunk", "upload") else 0.0
    s.final_delay = 3.0 if when == "final" else 0.0
    env = {"AFX_YOUTUBE_TOKEN": "good", "AFX_TIKTOK_TOKEN": "good", "AFX_INSTAGRAM_TOKEN": "good",
           "AFX_INSTAGRAM_USER_ID": "17841400000", "AFX_UPLOAD_CHUNK": str(256 * 1024),
           "AFX_TEST_VIDEO_BYTES": "1100000", "AFX_PUBLISH_POLL": "0.05"}
    proc = prepo.process("run", **env)

    def reached() -> bool:
        if when == "session":
            return bool(s.yt_sessions) or bool(s.tt_publishes) or bool(s.ig_containers)
        if when in ("chunk", "upload"):
            paths = [p for m, p in s.requests if m in ("PUT", "POST") and ("upload" in p)]
            return len(paths) >= 1
        return bool(s.yt_videos) or any(p["post"] for p in s.tt_publishes.values()) or bool(s.ig_media)

    deadline = time.monotonic() + 30
    while not reached():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    s.delay = s.final_delay = 0.0
    r = prepo.afx("run")
    assert r.code == 0, r.text
    assert prepo.ledger_rows("a")[platform]["state"] == "published"
    video = (prepo.root / "out" / "a" / "video.mp4").read_bytes()
    if platform == "youtube":
        assert [v["data"] for v in s.yt_videos.values()] == [video]
    elif platform == "tiktok":
        done = [p for p in s.tt_publishes.values() if p["post"]]
        assert len(done) == 1 and b"".join(done[0]["data"][k] for k in sorted(done[0]["data"])) == video
    else:
        assert len(s.ig_media) == 1
    assert prepo.published_events("a") == 1


def test_jobs_lists_state(prepo):
    prepo.job("a", "platforms: [tiktok]\n")
    prepo.job("b", "platforms: [youtube]\npublishMode: manual\n")
    prepo.afx("run")
    r = prepo.afx("jobs", "--json")
    rows = {j["job"]: j for j in json.loads(r.out)["jobs"]}
    assert rows["a"]["platforms"] == {"tiktok": "published"} and rows["a"]["built"]
    assert rows["b"]["platforms"] == {"youtube": "manual"}


def _open_ledger(root: str) -> None:
    with Ledger(Path(root)) as ledger:
        ledger.controls("x")


def test_processes_opening_a_new_ledger_at_once(tmp_path):
    """afx serve's jobs of a new account open its ledger together: the switch to WAL once
    failed 'database is locked' (about one opening in 40 rounds of 6)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for n in range(40):
        procs = [ctx.Process(target=_open_ledger, args=(str(tmp_path / str(n)),)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert [p.exitcode for p in procs] == [0] * 6, n
