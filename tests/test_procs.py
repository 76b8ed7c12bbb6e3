"""afx.procs: naming processes so that a name outlives its process safely."""

from __future__ import annotations

import os
import subprocess
import sys

from afx import procs


def test_a_live_process_and_a_gone_one():
    assert procs.alive_here(procs.name())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    named = procs.name(child.pid)
    child.wait()
    assert not procs.alive_here(named) and procs.gone_here(named)
    assert not procs.gone_here(f"elsewhere:{os.getpid()}:1"), "another machine's process is not ours to judge"
    assert not procs.alive_here(f"{procs.HOST}:{os.getpid()}:1"), "the same pid with another start time"


def test_a_work_folder_name_carries_its_owner():
    assert procs.tag_alive(f"job.render.{procs.tag()}.abc123")
    assert not procs.tag_alive("job.render.abc123")


def test_without_proc_the_pid_alone_is_checked(monkeypatch):
    monkeypatch.setattr(procs, "_PROC", False)
    assert procs.start_time(os.getpid()) == "0"
    assert procs.alive_here(procs.name())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    named = procs.name(child.pid)
    child.wait()
    assert not procs.alive_here(named)
