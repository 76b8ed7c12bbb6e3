"""afx/engine/executor.py: the one way jobs' stages run (afx run, -j, afx serve)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from afx.engine.executor import Setup, Workers, run_jobs
from afx.engine.lockfile import read_lock
from afx.engine.runner import store_dir
from afx.spec.resolve import resolve
from tests.conftest import SpecRepo

CHEAP = "afx.testing.pipeline:PIPELINE"
PUBLISHING = "afx.testing.pipeline:PUBLISHING"


def _repo(root: Path, *names: str, platforms: str = "[tiktok]") -> list:
    repo = SpecRepo(root)
    for name in names:
        repo.write(f"jobs/{name}.yaml", f"entry: compose\ntopic: {name} topic\nscript: Hello {name}.\n"
                                        f"platforms: {platforms}\n")
    found = resolve([], cwd=root)
    assert found.ok, found.diagnostics
    return sorted(found.jobs, key=lambda j: j.name)


def _setup(root: Path, pipeline: str = CHEAP, **config: object) -> Setup:
    return Setup(pipeline, str(store_dir(root)), str(root / "out"), dict(config))


def test_jobs_run_in_workers_with_one_event_stream_and_a_result(tmp_path):
    jobs = _repo(tmp_path, "a", "b")
    events: list[dict] = []
    reports = run_jobs(_setup(tmp_path), jobs, parallel=2, keep_going=False, emit=events.append)
    assert [(r.job, r.status) for r in reports] == [("a", "complete"), ("b", "complete")]
    for report in reports:
        assert report.result is not None and report.result["jobId"] == report.job
        assert report.result == json.loads((tmp_path / "out" / report.job / "result.json").read_text())
    kinds = {(e["event"], e.get("status")) for e in events}
    assert {("stage", "running"), ("stage", "done"), ("job", "complete")} <= kinds
    assert {e["job"] for e in events if e["event"] == "stage"} == {"a", "b"}
    assert all(e["stage"] for e in events if e["event"] == "progress")


def test_a_worker_that_dies_fails_its_job_only_and_leaves_no_work_folder(tmp_path, monkeypatch):
    jobs = _repo(tmp_path, "a", "b")
    monkeypatch.setenv("AFX_TEST_CRASH", "render:a")  # SIGKILL mid-stage, as an OOM kill
    reports = run_jobs(_setup(tmp_path), jobs, parallel=1, keep_going=True, emit=lambda e: None)
    by = {r.job: r for r in reports}
    assert by["a"].status == "failed" and by["a"].crashed and by["a"].error_kind == "server"
    assert "died" in by["a"].error
    assert by["b"].status == "complete"
    assert not list((store_dir(tmp_path) / "tmp").glob("*")), "the dead worker's work folder is gone"


def test_killing_a_worker_cancels_its_job_and_its_process_group_at_once(tmp_path, monkeypatch):
    jobs = _repo(tmp_path, "a")
    monkeypatch.setenv("AFX_TEST_FFMPEG", "render:30")  # a real ffmpeg, in the worker's group
    pool = Workers(_setup(tmp_path), fresh=True)
    worker = pool.give(jobs[0])
    deadline = time.monotonic() + 60
    while not list((store_dir(tmp_path) / "tmp").glob("*.render.*/video.mp4")):
        assert time.monotonic() < deadline, "the render started"
        pool.messages(timeout=0.1)
    started = time.monotonic()
    pool.kill(worker)
    (kind, report), = [m for m in pool.messages(timeout=10) if m[0] == "report"]
    assert report.status == "failed" and report.crashed
    assert time.monotonic() - started < 5
    pool.stop(grace=0)
    deadline = time.monotonic() + 5
    while _group_alive(worker.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _group_alive(worker.pid), "the worker's ffmpeg died with it"
    assert not list((store_dir(tmp_path) / "tmp").glob("*")), "its work folder is gone"


def test_a_publish_that_fails_after_the_build_still_gives_a_result_and_remembers_what_went_out(tmp_path):
    jobs = _repo(tmp_path, "a", platforms="[tiktok, youtube]")
    setup = _setup(tmp_path, PUBLISHING, publish={"youtube": "api"})  # no YouTube credentials here
    report, = run_jobs(setup, jobs, parallel=1, keep_going=False, emit=lambda e: None)
    assert report.status == "failed" and report.failed_stage == "publish" and report.error_kind == "job"
    states = {r["platform"]: r["status"] for r in report.result["publishResults"]}
    assert states == {"tiktok": "published", "youtube": "failed"}
    out = tmp_path / "out" / "a"
    assert json.loads((out / "result.json").read_text()) == report.result
    assert (out / "video.mp4").is_file()
    # the stage wrote nothing outside its work folder; the engine recorded the publish
    published = read_lock(tmp_path)["jobs"]["a"]["published"]
    assert set(published) == {"tiktok"} and published["tiktok"]["publisher"] == "outbox"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


@pytest.fixture(autouse=True)
def _pipeline_env(monkeypatch):
    monkeypatch.delenv("AFX_PIPELINE", raising=False)
