"""Every process a job starts dies with the job, on every path (issue 11, hole 3).

Each test kills, with SIGKILL, the process that runs a job while its ffmpeg (a real one,
encoding in real time: AFX_TEST_FFMPEG) is mid-render, and requires that within 2 s no
process of that attempt is alive: before the fix ffmpeg lived on under init, rendering
beside the retry.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.server.serverproc import Server, wait_for

AFX = str(Path(sys.executable).parent / "afx")
PIPELINE = "afx.testing.pipeline:PIPELINE"


def table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        out[int(entry.name)] = (int(fields[1]), fields[0].decode(), cmd)
    return out


def descendants(pid: int) -> set[int]:
    procs = table()
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, _) in procs.items():
            if ppid == parent and child not in found:
                found.add(child)
                todo.append(child)
    return found


def living(pids: set[int]) -> set[int]:
    procs = table()
    return {p for p in pids if p in procs and procs[p][1] not in ("Z", "X")}


def ffmpegs_under(pid: int) -> dict[int, int]:
    """ffmpeg pid -> its parent's pid, for each rendering ffmpeg below `pid` (the test's; not
    the short `ffmpeg -version` imageio-ffmpeg runs to check its binary)."""
    procs = table()
    return {p: procs[p][0] for p in descendants(pid)
            if p in procs and "ffmpeg" in procs[p][2].split(" ")[0] and "testsrc2" in procs[p][2]}


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out: {what}")


def kill_and_check(victim: int, attempt: set[int]) -> float:
    """kill -9 `victim`; every process of `attempt` must be gone within 2 s. Returns seconds."""
    started = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    try:
        wait_until(lambda: not living(attempt - {victim}), 2.0, "the attempt's processes to die")
    except AssertionError:
        left = {p: table().get(p) for p in living(attempt - {victim})}
        for p in left:
            os.kill(p, signal.SIGKILL)
        raise AssertionError(f"alive 2 s after the kill: {left}") from None
    return time.monotonic() - started


def test_a_server_jobs_child_killed_mid_render_leaves_nothing_running_or_on_disk(tmp_path):
    with Server(tmp_path / "data", env={"AFX_TEST_FFMPEG": "render:8"}) as srv, srv.client(srv.key()) as api:
        job = api.post("/jobs", json={"entry": "compose", "topic": "x", "platforms": ["tiktok"]}).json()["jobId"]
        ffmpeg = wait_until(lambda: ffmpegs_under(srv.proc.pid), 60, "the job's ffmpeg")
        (ff_pid, child), = ffmpeg.items()
        attempt = {child, *descendants(child)}
        tmp = srv.data_dir / "cache" / "tmp"
        wait_until(lambda: [f for f in tmp.glob(f"*.p{child}-*/video.mp4") if f.stat().st_size > 1000], 10,
                   "the render writing in its work folder")
        kill_and_check(child, attempt)
        done = wait_for(api, job, ("published", "failed"), timeout=90)
        assert done["status"] == "published", (done, srv.log.read_text()[-2000:])
        assert not [f for f in tmp.iterdir() if f".p{child}-" in f.name], "the dead attempt's folder is gone"
        assert not list(tmp.rglob("video.mp4")), "the retry's video is the only one, and it is stored"
        assert api.get(f"/jobs/{job}/files/video.mp4").status_code == 200


@pytest.fixture
def run_repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "afx.yaml").write_text("version: 1\n")
    for name in ("a", "b"):
        (root / f"{name}.yaml").write_text(f"entry: compose\ntopic: {name}\nplatforms: [tiktok]\n")
    env = {**os.environ, "AFX_PIPELINE": PIPELINE, "AFX_TEST_FFMPEG": "render:20", "NO_COLOR": "1"}
    env.pop("AFX_CACHE_DIR", None)
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen([AFX, "run", *args], cwd=root, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        started.append(proc)
        return proc

    start.root = root  # type: ignore[attr-defined]
    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def test_plain_afx_run_killed_mid_render_takes_its_ffmpeg(run_repo):
    run = run_repo("a")
    wait_until(lambda: ffmpegs_under(run.pid), 60, "the render's ffmpeg")
    kill_and_check(run.pid, {run.pid, *descendants(run.pid)})


def test_a_parallel_workers_death_takes_its_ffmpeg_and_afx_runs_takes_all(run_repo):
    run = run_repo("-j", "2", "--keep-going")  # the other job goes on when one fails
    ffmpegs = wait_until(lambda: (found := ffmpegs_under(run.pid)) and len(found) == 2 and found, 60,
                         "both workers' ffmpeg")
    (ff1, worker1), (ff2, worker2) = sorted(ffmpegs.items())
    tmp = run_repo.root / ".afx" / "tmp"
    assert list(tmp.glob(f"*.p{worker1}-*")), "the worker renders in its work folder"
    kill_and_check(worker1, {worker1, ff1, *descendants(worker1)})
    assert living({ff2, worker2}) == {ff2, worker2}, ("the other worker's job goes on", ffmpegs,
                                                      table().get(ff2), table().get(worker2))
    wait_until(lambda: not list(tmp.glob(f"*.p{worker1}-*")), 5, "the dead worker's work folder to go")
    kill_and_check(run.pid, {run.pid, *descendants(run.pid)})
