"""The no-op fast path (afx/engine/fastpath.py): up-to-date jobs found by record and stat,
and everything that must rerun still found by the ordinary path, with its reason."""

from __future__ import annotations

import json
import os
import pickle
import struct

import pytest

from afx.engine import fastpath

STAGES = ["ingest", "analyze", "edit", "script", "render", "package", "publish"]


@pytest.fixture(autouse=True)
def no_racy_window(monkeypatch):
    monkeypatch.setattr(fastpath, "RACY_NS", 0)  # what the test just wrote may be recorded


def records(repo) -> dict:
    raw = (repo.root / ".afx" / fastpath.FILE).read_bytes()
    return pickle.loads(raw[32:])[1]


def plan(repo) -> dict:
    r = repo.afx("plan", "--json")
    data = json.loads(r.out)
    return {(j["job"], s["stage"]): (s["status"], s["reason"]) for j in data["jobs"] for s in j["stages"]}


def warm(repo) -> None:
    assert repo.afx("run").code == 0
    repo.afx("run")  # records what the first run built
    assert set(records(repo)) == {"a", "b"}
    repo.runs()


def test_a_recorded_noop_runs_nothing_and_writes_nothing(erepo):
    warm(erepo)
    lock = erepo.root / "afx.lock"
    before = lock.stat().st_mtime_ns, lock.read_bytes()
    r = erepo.afx("run", "--json")
    assert r.code == 0 and erepo.runs() == {}
    events = [json.loads(line) for line in r.out.splitlines()]
    assert sum(e.get("status") == "cached" for e in events if e["event"] == "stage") == 14
    assert [e["status"] for e in events if e["event"] == "job"] == ["complete", "complete"]
    assert (lock.stat().st_mtime_ns, lock.read_bytes()) == before
    status = erepo.afx("status", "--check")
    assert status.code == 0 and "0 of 2 jobs stale" in status.err


def test_touching_a_media_file_reruns_its_job(erepo):
    warm(erepo)
    media = erepo.root / "media" / "b.mp4"
    media.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x02" * 64)
    st = media.stat()
    os.utime(media, ns=(st.st_atime_ns, st.st_mtime_ns + 3_000_000_000))
    assert erepo.afx("status", "--check").code == 1
    assert plan(erepo)[("b", "ingest")] == ("will run", "input file `file` changed")
    assert erepo.afx("run").code == 0
    ran = erepo.ran()
    assert ("b", "ingest") in ran and not any(job == "a" for job, _ in ran)


def test_a_spec_edit_reruns_with_its_reason(erepo):
    warm(erepo)
    erepo.write("a.yaml", "fromTemplateId: base\nentry: compose\ntopic: Alpha plays\ncopy: {title: New}\n")
    assert plan(erepo)[("a", "package")] == ("will run", "field `copy` added")
    assert erepo.afx("run").code == 0
    assert erepo.ran() == {("a", "package"), ("a", "publish")}


def test_a_corrupted_object_is_still_found(erepo):
    warm(erepo)
    manifest = json.loads((erepo.root / "afx.lock").read_text())["jobs"]["a"]["stages"]["script"]["outputs"]
    digest = next(iter(manifest.values()))
    obj = erepo.root / ".afx" / "objects" / digest[:2] / digest[2:]
    os.chmod(obj, 0o644)
    obj.write_bytes(obj.read_bytes() + b"tampered")
    r = erepo.afx("run")
    assert r.code == 0 and ("a", "script") in erepo.ran()
    assert "output corrupt" in r.err


def test_a_hand_edited_out_file_is_put_back(erepo):
    warm(erepo)
    result = erepo.root / "out" / "a" / "result.json"
    good = result.read_bytes()
    result.write_text("{}")
    assert erepo.afx("status", "--check").code == 1
    assert erepo.afx("run").code == 0 and erepo.runs() == {}
    assert result.read_bytes() == good


def test_force_and_a_removed_job_take_the_ordinary_path(erepo):
    warm(erepo)
    assert erepo.afx("run", "--force", "script").code == 0
    assert {s for _, s in erepo.ran()} == {"script"}
    (erepo.root / "b.yaml").unlink()
    assert erepo.afx("run").code == 0
    assert set(json.loads((erepo.root / "afx.lock").read_text())["jobs"]) == {"a"}


def test_a_corrupt_record_file_is_ignored(erepo):
    warm(erepo)
    path = erepo.root / ".afx" / fastpath.FILE
    path.write_bytes(path.read_bytes()[:50])
    assert erepo.afx("run").code == 0 and erepo.runs() == {}
    assert set(records(erepo)) == {"a", "b"}
    (erepo.root / "out" / "b" / "result.json").unlink()
    path.write_bytes(b"\x00" * 40)
    assert erepo.afx("status", "--check").code == 1


def exported_object(repo, job: str = "a", name: str = "script.txt"):
    """An object of the store that out/<job>/<name> is a hard link of."""
    out = repo.root / "out" / job / name
    digest = json.loads((repo.root / "afx.lock").read_text())["jobs"][job]["files"][name]
    obj = repo.root / ".afx" / "objects" / digest[:2] / digest[2:]
    assert os.path.samefile(out, obj)  # (the fast path lets such a link vouch for the object)
    return obj


def test_an_exported_object_deleted_from_the_store_is_still_found(erepo):
    warm(erepo)
    exported_object(erepo).unlink()  # out/a/script.txt keeps the inode, size and mtime
    r = erepo.afx("run")
    assert r.code == 0 and ("a", "script") in erepo.ran()
    assert "output missing" in r.err


def test_an_objects_folder_moved_away_is_still_found(erepo):
    warm(erepo)
    folder = exported_object(erepo).parent
    folder.rename(folder.with_name(folder.name + ".moved"))  # no inode in it is touched
    folder.mkdir()
    assert erepo.afx("status", "--check").code == 1
    assert erepo.afx("run").code == 0 and ("a", "script") in erepo.ran()


def test_a_link_made_to_an_exported_object_costs_a_stat_not_a_rerun(erepo):
    warm(erepo)
    obj = exported_object(erepo)
    os.link(obj, erepo.root / "extra-link")  # the inode's ctime moves: the object is stat'ed
    r = erepo.afx("run", "--json")
    assert r.code == 0 and erepo.runs() == {}
    assert sum(json.loads(line).get("status") == "cached" for line in r.out.splitlines()) == 14
    os.unlink(erepo.root / "extra-link")


def test_a_quiet_display_says_the_up_to_date_jobs_in_one_line(erepo, monkeypatch):
    from afx.engine import session

    warm(erepo)

    def walked(*args, **kwargs):
        raise AssertionError("a recorded job was walked")

    monkeypatch.setattr(session, "process_job", walked)  # (the fast path must answer alone)
    r = erepo.afx("run")
    assert r.code == 0 and erepo.runs() == {}
    assert "2 jobs done, 0 failed: ran 0 stages, reused 14" in r.err
    status = erepo.afx("status")
    assert status.code == 0 and [line.split() for line in status.out.splitlines()] == [
        ["a", "up", "to", "date"], ["b", "up", "to", "date"]]


def test_a_held_publish_stage_reads_the_ledger_once_and_again_after(erepo):
    from afx.publish.service import PublishService
    from afx.spec.resolve import resolve
    from afx.stages.publish import PublishStage

    erepo.write("a.yaml", "fromTemplateId: base\nentry: compose\ntopic: Alpha plays\nstaging: true\n")
    job = next(j for j in resolve([], cwd=erepo.root).jobs if j.name == "a")
    stage = PublishStage()
    PublishService(erepo.root).approve(["b"])  # (makes the ledger)
    assert stage.state(job)["decision"] == "staged"
    with stage.hold():
        assert stage.state(job)["decision"] == "staged"
        PublishService(erepo.root).approve(["a"])  # (no afx run writes it in a hold: another process)
        assert stage.state(job)["decision"] == "staged"  # read once for the whole pass
    assert stage.state(job)["decision"] == "publish"


def test_a_staged_job_approved_in_the_ledger_reruns_its_publish_despite_the_records(erepo):
    from afx.publish.service import PublishService

    erepo.write("a.yaml", "fromTemplateId: base\nentry: compose\ntopic: Alpha plays\nstaging: true\n")
    warm(erepo)
    assert erepo.afx("status", "--check").code == 0
    PublishService(erepo.root).approve(["a"])  # the ledger only (`afx approve` would publish at once)
    assert erepo.afx("status", "--check").code == 1
    assert erepo.afx("run").code == 0 and erepo.ran() == {("a", "publish")}


def test_a_stage_of_a_new_version_reruns_despite_the_records(erepo, monkeypatch):
    warm(erepo)
    monkeypatch.setenv("AFX_TEST_VERSION", "render:99")  # (the records' header holds every stage's)
    assert erepo.afx("status", "--check").code == 1
    r = erepo.afx("run")
    assert r.code == 0, r.err
    assert ("a", "render") in erepo.ran(), r.err


def test_an_out_file_whose_ctime_moved_is_taken_again_once_its_object_checks_out(erepo, monkeypatch):
    from afx.engine import session

    warm(erepo)
    obj = exported_object(erepo)
    os.chmod(obj, 0o444)  # the same mode: only the inode's ctime moves
    ctime = os.stat(erepo.root / "out" / "a" / "script.txt").st_ctime_ns
    assert erepo.afx("run").code == 0 and erepo.runs() == {}  # the object was stat'ed, and was fine
    raw = (erepo.root / ".afx" / fastpath.FILE).read_bytes()
    record = pickle.loads(raw[32:])[1]["a"]
    assert ctime in struct.unpack(f"{len(record[2]) // 8}q", record[2])  # it vouches again

    def walked(*args, **kwargs):
        raise AssertionError("a recorded job was walked")

    monkeypatch.setattr(session, "process_job", walked)
    assert erepo.afx("run").code == 0
