"""The make-like engine, through `afx run/plan/status` with the cheap test pipeline."""

from __future__ import annotations

import json
import os

import pytest

STAGES = ["ingest", "analyze", "edit", "script", "render", "package", "publish"]


def locked(repo):
    return json.loads((repo.root / "afx.lock").read_text())["jobs"]


def plan(repo, *args):
    r = repo.afx("plan", "--json", *args)
    assert r.code == 0, r.text
    data = json.loads(r.out)
    return {(j["job"], s["stage"]): (s["status"], s["reason"]) for j in data["jobs"] for s in j["stages"]}


def test_first_run_runs_everything_then_nothing(erepo):
    r = erepo.afx("run")
    assert r.code == 0, r.text
    assert erepo.runs() == {(j, s): 1 for j in "ab" for s in STAGES}
    lock = (erepo.root / "afx.lock").read_bytes()
    mtimes = {p: p.stat().st_mtime_ns for p in (erepo.root / "out").rglob("*")}
    r = erepo.afx("run")
    assert r.code == 0 and erepo.runs() == {}
    assert "ran 0 stages, reused 14" in r.err
    assert (erepo.root / "afx.lock").read_bytes() == lock
    assert {p: p.stat().st_mtime_ns for p in (erepo.root / "out").rglob("*")} == mtimes


def test_out_folder_and_result_json(erepo):
    erepo.afx("run")
    out = erepo.root / "out" / "a"
    assert sorted(p.name for p in out.iterdir()) == [".afx-files", "publish.json", "result.json", "script.txt",
                                                   "thumb.jpg", "video.mp4"]
    result = json.loads((out / "result.json").read_text())
    assert set(result) == {"jobId", "status", "videoUrl", "thumbnailUrl", "publishCopy", "completedAt",
                           "publishResults", "afx"}
    assert result["jobId"] == "a" and result["status"] == "complete"
    assert result["videoUrl"] == "video.mp4" and (out / result["videoUrl"]).is_file()
    assert result["publishCopy"]["title"] == "Alpha plays"
    assert result["completedAt"].endswith("Z")
    assert not (out / "video.mp4").stat().st_mode & 0o222, "out/ files are read-only links into the store"


def test_new_job_reason_and_plan_does_not_run(erepo):
    p = plan(erepo)
    assert p[("a", "ingest")] == ("will run", "new job")
    assert erepo.runs() == {}
    assert not (erepo.root / "out").exists() and not (erepo.root / "afx.lock").exists()


def test_field_change_reruns_from_the_first_stage_that_reads_it(erepo):
    erepo.afx("run")
    erepo.runs()
    erepo.write("a.yaml", "fromTemplateId: base\nentry: compose\ntopic: Alpha plays\nscript: Mine.\n")
    p = plan(erepo, "a")
    assert p[("a", "ingest")] == ("up to date", "")
    assert p[("a", "script")] == ("will run", "field `script` added")
    assert p[("a", "render")] == ("will run", "upstream stage `script` will run")
    erepo.afx("run")
    assert erepo.ran() == {("a", s) for s in STAGES[3:]}


def test_template_change_reaches_every_job_using_it(erepo):
    erepo.afx("run")
    erepo.runs()
    erepo.write("templates/base.yaml", "tone: hype\nplatforms: [tiktok, youtube]\n")
    p = plan(erepo)
    assert p[("a", "render")] == ("will run", "field `platforms` changed")
    assert p[("b", "script")] == ("up to date", "")
    erepo.afx("run")
    assert erepo.ran() == {(j, s) for j in "ab" for s in ("render", "package", "publish")}


def test_input_file_change(erepo):
    erepo.afx("run")
    erepo.runs()
    erepo.write("media/b.mp4", b"\x00\x00\x00\x18ftypisom" + b"\x02" * 64)
    assert plan(erepo, "b")[("b", "ingest")] == ("will run", "input file `file` changed")
    erepo.afx("run")
    assert ("b", "ingest") in erepo.ran()


def test_unchanged_output_cuts_off_downstream_reruns(erepo):
    erepo.afx("run")
    erepo.runs()
    # A file touched but identical: ingest's key is the same, nothing reruns.
    os.utime(erepo.root / "media" / "b.mp4", ns=(1, 1))
    assert erepo.afx("run").code == 0 and erepo.runs() == {}


def test_stage_version_change(erepo, monkeypatch):
    erepo.afx("run")
    erepo.runs()
    from afx.stages.render import RenderStage

    old, new = RenderStage.version, str(int(RenderStage.version) + 1)
    monkeypatch.setenv("AFX_TEST_VERSION", f"render:{new}")
    assert plan(erepo, "a")[("a", "render")] == ("will run", f"stage version changed ({old} -> {new})")
    erepo.afx("run", "a")
    assert erepo.ran() == {("a", "render")}  # the new render made identical output: no further reruns


def test_forced_stage_reruns_and_downstream_follows_only_if_output_changed(erepo):
    erepo.afx("run")
    erepo.runs()
    assert plan(erepo, "--force", "script", "a")[("a", "script")] == ("will run", "forced")
    r = erepo.afx("run", "--force", "script", "a")
    assert r.code == 0, r.text
    assert erepo.ran() == {("a", "script")}
    erepo.afx("run", "--force", "a")  # bare --force, then a target: every stage of a
    assert erepo.ran() == {("a", s) for s in STAGES}


def test_missing_output_is_named_and_rebuilt(erepo):
    erepo.afx("run")
    erepo.runs()
    digest = locked(erepo)["a"]["stages"]["render"]["outputs"]["video.mp4"]
    obj = erepo.root / ".afx" / "objects" / digest[:2] / digest[2:]
    for out in (erepo.root / "out").glob("*/video.mp4"):
        out.unlink()
    obj.unlink()
    status, reason = plan(erepo, "a")[("a", "render")]
    assert status == "will run" and reason.startswith("output missing: video.mp4")
    r = erepo.afx("run")
    assert r.code == 0 and ("a", "render") in erepo.ran()
    assert obj.exists() and (erepo.root / "out" / "a" / "video.mp4").exists()


def test_corrupt_output_is_detected_and_rebuilt(erepo):
    erepo.afx("run")
    erepo.runs()
    digest = locked(erepo)["a"]["stages"]["script"]["outputs"]["script.txt"]
    obj = erepo.root / ".afx" / "objects" / digest[:2] / digest[2:]
    os.chmod(obj, 0o644)
    text = obj.read_text()
    obj.write_text(text.replace("A", "B", 1))  # same size, new content
    r = erepo.afx("run")
    assert r.code == 0, r.text
    assert "output corrupt: script.txt" in r.err
    assert ("a", "script") in erepo.ran()
    assert (erepo.root / "out" / "a" / "script.txt").read_text() == text


def test_until_stops_early_and_leaves_the_lock(erepo):
    r = erepo.afx("run", "--until", "render", "a")
    assert r.code == 0, r.text
    assert erepo.ran() == {("a", s) for s in STAGES[:5]}
    out = erepo.root / "out" / "a"
    assert (out / "video.mp4").exists() and not (out / "result.json").exists()
    assert not (erepo.root / "afx.lock").exists() or "a" not in locked(erepo)


def test_dry_run_runs_nothing(erepo):
    r = erepo.afx("run", "-n")
    assert r.code == 0 and "will run" in r.out and erepo.runs() == {}


def test_failure_stops_the_run_and_keep_going_continues(erepo, monkeypatch):
    monkeypatch.setenv("AFX_TEST_FAIL", "render:a")
    r = erepo.afx("run")
    assert r.code == 3
    assert "a: render: FAILED: render failed on purpose" in r.err
    assert "b: skipped" in r.err
    assert ("b", "ingest") not in erepo.ran()
    r = erepo.afx("run", "-k")
    assert r.code == 3
    assert ("b", "publish") in erepo.ran()
    assert set(locked(erepo)) == {"b"}  # only complete jobs are locked
    monkeypatch.delenv("AFX_TEST_FAIL")
    assert erepo.afx("run").code == 0
    assert erepo.ran() == {("a", s) for s in STAGES[4:]}  # a's earlier stages were kept


def test_parallel_run_matches_serial_run(erepo, tmp_path):
    for i in range(6):
        erepo.write(f"p{i}.yaml", f"entry: compose\ntopic: Parallel {i}\nplatforms: [youtube]\n")
    r = erepo.run_process("run", "-j", "3")
    assert r.returncode == 0, r.stderr
    parallel_lock = (erepo.root / "afx.lock").read_text()
    # p0..p5 share their ingest (same fields): content addressing may run it once or, when
    # two workers get there together, more than once; every other stage runs once per job.
    runs = erepo.runs()
    assert {j for j, _ in runs} == {"a", "b", *(f"p{i}" for i in range(6))}
    assert all(n == 1 for (j, s), n in runs.items() if s != "ingest")
    import shutil

    shutil.rmtree(erepo.root / ".afx")
    shutil.rmtree(erepo.root / "out")
    (erepo.root / "afx.lock").unlink()
    assert erepo.run_process("run", "-j", "1").returncode == 0
    assert (erepo.root / "afx.lock").read_text() == parallel_lock


def test_parallel_failure_with_json_events(erepo):
    r = erepo.run_process("run", "-j", "2", "-k", "--json", AFX_TEST_FAIL="package:b")
    assert r.returncode == 3
    events = [json.loads(line) for line in r.stdout.splitlines()]
    failed = [e for e in events if e["event"] == "stage" and e.get("status") == "failed"]
    assert len(failed) == 1 and failed[0]["job"] == "b" and failed[0]["stage"] == "package"
    assert events[-1]["event"] == "done" and events[-1]["failed"] == ["b"]
    assert {e["job"] for e in events if e["event"] == "job" and e["status"] == "complete"} == {"a"}


def test_status_check_for_ci(erepo):
    assert erepo.afx("status", "--check").code == 1
    erepo.afx("run")
    r = erepo.afx("status", "--check")
    assert r.code == 0 and "up to date" in r.out
    erepo.write("a.yaml", "fromTemplateId: base\nentry: compose\ntopic: Alpha plays!\n")
    r = erepo.afx("status", "--check")
    assert r.code == 1 and "script: field `topic` changed" in r.out


def test_status_notices_a_deleted_out_folder(erepo):
    erepo.afx("run")
    erepo.runs()
    import shutil

    shutil.rmtree(erepo.root / "out" / "a")
    r = erepo.afx("status", "--check")
    assert r.code == 1 and "out/ needs updating" in r.out
    erepo.afx("run")
    assert erepo.runs() == {} and (erepo.root / "out" / "a" / "video.mp4").exists()


def test_lock_is_deterministic_and_one_job_change_touches_one_block(erepo):
    erepo.afx("run")
    before = (erepo.root / "afx.lock").read_text().splitlines()
    erepo.write("b.yaml", "fromTemplateId: base\nentry: upload\nfile: media/b.mp4\ntopic: Beta plays!\n")
    erepo.afx("run")
    after = (erepo.root / "afx.lock").read_text().splitlines()
    changed = [i for i, (x, y) in enumerate(zip(before, after)) if x != y]
    assert len(before) == len(after) and changed
    b_start = before.index('    "b": {')
    assert all(i > b_start for i in changed), "lines of job a did not change"
    assert len(changed) <= 12, "a one-field change is a small diff"
    assert json.loads("\n".join(after))["version"] == 1


def test_deleted_jobs_leave_the_lock_on_a_full_run(erepo):
    erepo.afx("run")
    (erepo.root / "b.yaml").unlink()
    erepo.afx("run", "a")
    assert "b" in locked(erepo)
    erepo.afx("run")
    assert "b" not in locked(erepo)


def test_verify_checks_out_against_the_lock(erepo):
    assert erepo.afx("verify").code == 1  # never run
    erepo.afx("run")
    r = erepo.afx("verify", "--json")
    assert r.code == 0 and json.loads(r.out)["checked"] == 8
    target = erepo.root / "out" / "a" / "thumb.jpg"
    target.unlink()
    target.write_text("edited by hand")
    r = erepo.afx("verify")
    assert r.code == 1 and "out/a/thumb.jpg: content differs from afx.lock" in r.out


def test_stale_exports_are_removed_but_user_files_kept(erepo):
    erepo.afx("run")
    (erepo.root / "out" / "a" / "notes.txt").write_text("mine")
    listing = erepo.root / "out" / "a" / ".afx-files"
    assert "video.mp4" in listing.read_text()
    erepo.write("a.yaml", "fromTemplateId: base\nentry: compose\ntopic: Alpha plays\nplatforms: []\n")
    erepo.afx("run")
    assert (erepo.root / "out" / "a" / "notes.txt").read_text() == "mine"


def test_cache_info_and_gc(erepo):
    erepo.afx("run")
    info = json.loads(erepo.afx("cache", "info", "--json").out)
    assert info["objects"] > 0 and info["stage_entries"] == 14
    erepo.write("a.yaml", "fromTemplateId: base\nentry: compose\ntopic: Something else\n")
    erepo.afx("run")
    before = json.loads(erepo.afx("cache", "info", "--json").out)
    r = erepo.afx("cache", "gc", "--json")
    dropped = json.loads(r.out)
    assert dropped["entries"] >= 3 and dropped["objects"] >= 1
    after = json.loads(erepo.afx("cache", "info", "--json").out)
    assert after["stage_entries"] == before["stage_entries"] - dropped["entries"]
    erepo.runs()
    assert erepo.afx("run").code == 0 and erepo.runs() == {}, "gc kept everything the lock needs"
    assert erepo.afx("verify").code == 0


def test_cache_dir_override(erepo, tmp_path, monkeypatch):
    monkeypatch.setenv("AFX_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert erepo.afx("run").code == 0
    assert (tmp_path / "elsewhere" / "objects").is_dir() and not (erepo.root / ".afx").exists()


@pytest.mark.parametrize("args", [["--force", "nosuch"], ["--until", "nosuch"]])
def test_unknown_stage_names(erepo, args):
    r = erepo.afx("run", *args)
    assert r.code == 2 and ("no stage named" in r.err or "no job or spec file named 'nosuch'" in r.err)


def test_invalid_spec_runs_nothing(erepo):
    erepo.write("c.yaml", "entry: compose\ntopic: x\ndurationMins: 500\n")
    r = erepo.afx("run")
    assert r.code == 2 and "c.yaml:3:15: durationMins" in r.err
    assert erepo.runs() == {} and not (erepo.root / "out").exists()


def test_live_display_on_a_terminal(erepo):
    r = erepo.afx("run", tty=True, environ={"TERM": "xterm"})
    assert r.code == 0, r.text
    assert "a" in r.err and "render" in r.err and "\x1b[" in r.err  # rich drew on the terminal
    assert "2 jobs done" in r.err


def test_plain_lines_when_not_a_terminal(erepo):
    r = erepo.afx("run")
    assert "a: render: running (new job)" in r.err and "\x1b[" not in r.err
    erepo.write("a.yaml", "fromTemplateId: base\nentry: compose\ntopic: Alpha plays\ntone: calm\n")
    r = erepo.afx("run", "-v")
    assert "a: ingest: up to date" in r.err and "a: script: running (field `tone` changed)" in r.err


def test_a_copy_only_change_reruns_only_package_and_publish(erepo):
    erepo.afx("run")
    erepo.runs()
    erepo.write("a.yaml", "fromTemplateId: base\nentry: compose\ntopic: Alpha plays\ncopy: {title: Mine}\n")
    p = plan(erepo, "a")
    assert [s for s in STAGES if p[("a", s)][0] == "will run"] == ["package", "publish"]
    assert p[("a", "package")][1] == "field `copy` added"
    erepo.afx("run")
    assert erepo.ran() == {("a", "package"), ("a", "publish")}


def test_a_media_error_is_the_inputs_fault_in_any_stage_without_the_stage_mapping_it(tmp_path):
    # issue 13: stages used to repeat `except MediaError: raise StageError`; one that forgot
    # turned a bad input into a server error (and, on afx serve, a refund)
    from afx.engine.runner import fault, process_job
    from afx.engine.store import Store
    from afx.media.ffmpeg import MediaError
    from afx.spec.api import job_from_fields
    from afx.stages.base import Pipeline

    class Careless:
        name, version, after = "careless", "1", ()

        def fields(self, job):
            return {}

        def files(self, job):
            return {}

        def run(self, ctx):
            raise MediaError("media/clip.mp4: not a video ffmpeg can read", "Invalid data found")

    job = job_from_fields({"entry": "compose", "topic": "x"}, name="a", root=tmp_path)
    store = Store(tmp_path / ".afx")
    try:
        report = process_job(job, Pipeline((Careless(),)), store, tmp_path / "out", execute=True)
    finally:
        store.close()
    assert report.status == "failed" and report.error_kind == "job"
    assert report.error == "careless: media/clip.mp4: not a video ffmpeg can read: Invalid data found"
    assert fault(RuntimeError("a bug")) == "server"
