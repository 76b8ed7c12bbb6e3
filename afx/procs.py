"""Processes named `host:pid:start time`: who runs a job, who holds an Idempotency-Key,
who owns a work folder.

The start time (from /proc) tells a process from a later one that got the same pid, so a
name outlives its process safely: "gone" means that very process is gone.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from typing import Any

HOST = socket.gethostname()
_PROC = os.path.isdir("/proc/self")
IDENTIFIES = _PROC  # start times tell a process from a later one with its pid


def _stat(pid: int) -> tuple[str, str]:
    """(state, start time) of a process, or ("", "") when there is none."""
    if not _PROC:
        # No /proc (macOS): whether the pid exists, with "0" for a start time nobody can read.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "", ""
        except PermissionError:
            pass
        return "R", "0"
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), fields[19].decode()
    except (OSError, IndexError):
        return "", ""


def start_time(pid: int) -> str:
    return _stat(pid)[1]


def name(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{HOST}:{pid}:{start_time(pid)}"


def parse(named: str | None) -> tuple[str, int | None, str]:
    host, _, rest = (named or "").partition(":")
    pid_s, _, started = rest.partition(":")
    return host, (int(pid_s) if pid_s.isdigit() else None), started


def alive_here(named: str | None) -> bool:
    """That process runs on this machine now. A zombie does not: in a container whose first
    process never reaps, a killed server's children stay zombies for good."""
    host, pid, started = parse(named)
    if host != HOST or pid is None or not started:
        return False
    state, now = _stat(pid)
    return now == started and state not in ("Z", "X")


def gone_here(named: str | None) -> bool:
    """That process was on this machine and no longer runs."""
    host, pid, _ = parse(named)
    return host == HOST and pid is not None and not alive_here(named)


_TAG = re.compile(r"\.p(\d+)-(\d+)\.[^.]*$")


def tag() -> str:
    """This process, for the name of a work folder: `p<pid>-<start time>`."""
    pid = os.getpid()
    return f"p{pid}-{start_time(pid)}"


def tag_alive(folder: str) -> bool:
    """The process named in a work folder's name (`...{tag()}.<random>`) still runs."""
    m = _TAG.search(folder)
    return m is not None and alive_here(f"{HOST}:{m.group(1)}:{m.group(2)}")


def die_with_parent() -> Any:
    """A `preexec_fn` for a helper process (ffmpeg...): it is killed when the process that
    started it dies, however that dies (kill -9 included), instead of living on under init
    (issue 11). Linux only (PR_SET_PDEATHSIG); elsewhere None, and the group kill remains.

    The signal is tied to the starting *thread*: start helpers from a thread that waits for
    them, as afx.media.ffmpeg.run does. A parent that died between fork and prctl is caught
    by comparing the parent's pid afterwards.
    """
    if _PRCTL is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _PRCTL(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        if os.getppid() != parent:
            os._exit(137)

    return preexec


def die_with(parent: int) -> bool:
    """This process is killed when `parent` (the process that started it) dies (on Linux; on
    other systems the group kill remains). False if `parent` is gone already: the caller
    should exit, nobody waits for it."""
    if _PRCTL is not None:
        _PRCTL(1, 9)
    return os.getppid() == parent


def group_gone(pgid: int) -> bool:
    """No process of the group `pgid` runs (zombies waiting to be reaped do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    if not _PROC:
        return False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return False
    return True


def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    return fn


_PRCTL = _prctl()
